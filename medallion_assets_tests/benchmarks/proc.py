"""Wall time and peak memory of a command's whole process tree (the Python driver and its JVM)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Sequence


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _tree_rss_bytes(root: int) -> int:
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/statm") as statm:
                total += int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            continue
        pending.extend(_children(pid))
    return total


def run_measured(command: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """Run `command`; return (wall seconds, peak tree RSS in bytes, exit code)."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_bytes(process.pid))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    code = process.wait()
    done.set()
    sampler.join()
    return time.monotonic() - started, peak, code


def _tree_rss_by_kind(root: int) -> dict[str, int]:
    """RSS of the tree's processes, summed by kind: "driver" (the command itself), "java" (the JVM), and "workers"
    (every other process: PySpark's Python workers, helpers)."""
    found: dict[str, int] = {}
    pending = [root]
    while pending:
        pid = pending.pop()
        try:
            with open(f"/proc/{pid}/statm") as statm:
                rss = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            with open(f"/proc/{pid}/comm") as comm:
                kind = "driver" if pid == root else "java" if comm.read().strip() == "java" else "workers"
        except OSError:
            continue
        found[kind] = found.get(kind, 0) + rss
        pending.extend(_children(pid))
    return found


def run_measured_by_process(
    command: Sequence[str], env: dict[str, str] | None = None, output: str | os.PathLike[str] | None = None
) -> tuple[float, dict[str, int], int]:
    """Run `command`; return (wall seconds, peak RSS in bytes of the JVM and of the Python side, exit code).

    Its stdout and stderr go to `output` when given.
    """
    started = time.monotonic()
    with open(output or os.devnull, "wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        peaks: dict[str, int] = {}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                for kind, rss in _tree_rss_by_kind(process.pid).items():
                    peaks[kind] = max(peaks.get(kind, 0), rss)
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        done.set()
        sampler.join()
    return time.monotonic() - started, peaks, code
