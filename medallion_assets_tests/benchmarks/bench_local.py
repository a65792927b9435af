"""Benchmarks of the embedded default; prints figures and ratios.

    python -m medallion_assets_tests.benchmarks.bench_local [--history-days 60]

1. Loading the definitions: a fresh process that imports the code location and builds the repository snapshot a
   code server serves, against one that only imports dagster (medians of 5); and `dagster definitions validate`
   against the same command on a one-asset project, since the command itself costs seconds.
2. Day-N cost: re-materialize one day when 1 versus `--history-days` days already exist; the ratio
   should be close to 1 because every read and write is scoped to the partition window.
3. `medallion run --days 7`: wall time and peak memory of the process tree.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from medallion_assets_tests.benchmarks.proc import run_measured

FIRST_DAY = date(2013, 1, 1)


LOAD_AND_SNAPSHOT = (
    "from dagster._core.remote_representation.external_data import RepositorySnap\n"
    "from medallion_assets.definitions import defs\n"
    "RepositorySnap.from_def(defs.get_repository_def())\n"
)
ONE_ASSET_PROJECT = "import dagster as dg\n\n@dg.asset\ndef one() -> None: ...\n\ndefs = dg.Definitions(assets=[one])\n"


def median_wall(command: list[str], runs: int = 5, cwd: str | None = None) -> float:
    timings = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run(command, check=True, capture_output=True, cwd=cwd)
        timings.append(time.monotonic() - started)
    return sorted(timings)[len(timings) // 2]


def report_definitions_load() -> None:
    load = median_wall([sys.executable, "-c", LOAD_AND_SNAPSHOT])
    bare = median_wall([sys.executable, "-c", "import dagster"])
    print(f"definitions load (import + repository snapshot): {load:.2f} s; import dagster: {bare:.2f} s", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch, "one_asset.py").write_text(ONE_ASSET_PROJECT, encoding="utf-8")
        validate = [sys.executable, "-m", "dagster", "definitions", "validate"]
        ours = median_wall([*validate, "-m", "medallion_assets.definitions"])
        floor = median_wall([*validate, "-f", "one_asset.py"], cwd=scratch)
    print(f"dagster definitions validate: {ours:.2f} s; on a one-asset project {floor:.2f} s", flush=True)


def day_cost(home: Path, history_days: int, repeats: int = 2) -> float:
    """Build `history_days + 1` days, then time re-materializing day 2 alone (best of `repeats`)."""
    from medallion_assets.domains.flights.landing import stage
    from medallion_assets.framework.partitions import PartitionWindow
    from medallion_assets_tests.support import materialize_window

    last = FIRST_DAY + timedelta(days=history_days)
    stage(home / "landing", PartitionWindow(FIRST_DAY, last + timedelta(days=1)), progress=False)
    assert materialize_window(home, FIRST_DAY.isoformat(), last.isoformat()).result.success
    timings = []
    for _ in range(repeats):
        started = time.monotonic()
        day = (FIRST_DAY + timedelta(days=1)).isoformat()
        assert materialize_window(home, day, day).result.success
        timings.append(time.monotonic() - started)
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history-days", type=int, default=60)
    args = parser.parse_args()
    os.environ.setdefault("MEDALLION_SHUFFLE_PARTITIONS", "2")

    report_definitions_load()

    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "MEDALLION_HOME": f"{scratch}/seven", "DAGSTER_HOME": f"{scratch}/dagster"}
        wall, peak, code = run_measured(["medallion", "run", "--days", "7", "--quiet"], env=env)
        print(f"medallion run --days 7: exit {code}, wall {wall:.1f} s, peak memory {peak / 2**30:.2f} GiB", flush=True)

        small = day_cost(Path(scratch) / "one", 1)
        large = day_cost(Path(scratch) / "many", args.history_days)
        print(f"re-materialize one day, 1 day of history: {small:.1f} s", flush=True)
        print(f"re-materialize one day, {args.history_days} days of history: {large:.1f} s", flush=True)
        print(f"ratio {args.history_days}-day / 1-day: {large / small:.2f}")


if __name__ == "__main__":
    main()
