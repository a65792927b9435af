"""Benchmarks of the embedded default; prints figures and ratios.

    python -m medallion_assets_tests.benchmarks.bench_local [--history-days 60]

1. `dagster definitions validate`: wall time (no JVM may start at import).
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


def time_definitions_validate(runs: int = 3) -> float:
    timings = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "medallion_assets.definitions"],
            check=True,
            capture_output=True,
        )
        timings.append(time.monotonic() - started)
    return min(timings)


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

    validate_s = time_definitions_validate()
    print(f"dagster definitions validate: {validate_s:.2f} s (target < 3 s)", flush=True)

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
