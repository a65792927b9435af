"""Wall time and peak memory of a command's whole process tree (the Python driver and its JVM)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Sequence


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


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _command_name(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as comm:
        return comm.read().strip()


def _tree_rss_by_kind(root: int) -> dict[str, int]:
    """RSS of the command ("driver"), of the JVMs it started ("java"), and of the Python processes under those JVMs:
    PySpark's daemon and the workers it forks ("workers").

    A JVM's other children are commands it runs (Hadoop's `chmod` and `readlink` on a machine without its native
    library); one caught between fork and exec still reports the JVM's own pages, and counting it would add the JVM
    again (the year's "workers" figure equalled the JVM's). The driver's other helpers (Dagster's log tailing) are
    a few MiB and not counted.
    """
    found = {"driver": 0, "java": 0, "workers": 0}
    try:
        found["driver"] = _rss(root)
    except OSError:
        return found
    for child in _children(root):
        try:
            if _command_name(child) != "java":
                continue
            found["java"] += _rss(child)
            pending = _children(child)
            while pending:
                descendant = pending.pop()
                if _command_name(descendant).startswith("python"):
                    found["workers"] += _rss(descendant)
                    pending.extend(_children(descendant))
        except OSError:
            continue
    return found


def _run_sampled(
    command: Sequence[str],
    env: dict[str, str] | None,
    output: str | os.PathLike[str] | None,
    measure: Callable[[int], dict[str, int]],
) -> tuple[float, dict[str, int], int]:
    """Run `command`, sampling `measure(pid)` every 0.25 s; return (wall seconds, peak of each measure, exit code)."""
    started = time.monotonic()
    with open(output or os.devnull, "wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        peaks: dict[str, int] = {}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                for name, value in measure(process.pid).items():
                    peaks[name] = max(peaks.get(name, 0), value)
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        done.set()
        sampler.join()
    return time.monotonic() - started, peaks, code


def run_measured(command: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """Run `command`; return (wall seconds, peak tree RSS in bytes, exit code)."""
    wall, peaks, code = _run_sampled(command, env, None, lambda pid: {"tree": sum(_tree_rss_by_kind(pid).values())})
    return wall, peaks.get("tree", 0), code


def run_measured_by_process(
    command: Sequence[str], env: dict[str, str] | None = None, output: str | os.PathLike[str] | None = None
) -> tuple[float, dict[str, int], int]:
    """Run `command`; return (wall seconds, peak RSS in bytes of the driver, the JVM and the workers, exit code).

    Its stdout and stderr go to `output` when given.
    """
    return _run_sampled(command, env, output, _tree_rss_by_kind)
