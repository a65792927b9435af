"""Bronze ingests a large landed file within fixed driver memory; prints peak memory and the ratio.

    python -m medallion_assets_tests.benchmarks.bench_large_file [--small-mb 200] [--large-mb 2048]

Each size is a flights file built from the real year's lines (repeated to reach the size) and ingested into
`bronze/flights` by `run_table` in a fresh process, so each peak is that file's own. The Python process
(the driver program: file inspection, the line count and the plan) is measured by its peak RSS; the JVM by its
own peak RSS (VmHWM), which its heap limit bounds however large the file.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

JVM_HEAP = "2g"
DAY = "2013-01-01"


def write_file(path: Path, megabytes: int) -> int:
    from medallion_assets.domains.flights.landing import _package_csv

    lines = _package_csv("flights").splitlines()
    header, body = lines[0], ("\n".join(lines[1:]) + "\n").encode()
    target = megabytes << 20
    written = 0
    with path.open("wb") as out:
        out.write(header.encode() + b"\n")
        while written < target:
            chunk = body[: target - written]
            chunk = chunk[: chunk.rfind(b"\n") + 1] or body
            out.write(chunk)
            written += len(chunk)
    return path.stat().st_size


def ingest(home: str) -> None:
    """Runs in the child process: ingest the day and print the measurements as JSON."""
    from medallion_assets.domains import CATALOG
    from medallion_assets.embedded.spark import local_spark_session
    from medallion_assets.framework.execution import run_table
    from medallion_assets.framework.lakehouse import PathLakehouse
    from medallion_assets.framework.partitions import PartitionWindow
    from medallion_assets.framework.table import TableKey

    spark = local_spark_session()
    jvm_pid = int(spark.sparkContext._jvm.ProcessHandle.current().pid())  # type: ignore[union-attr]
    baseline_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    started = time.monotonic()
    key = TableKey("bronze", "flights")
    report = run_table(
        spark, PathLakehouse(home), CATALOG[key], CATALOG, PartitionWindow.for_keys(DAY, DAY), run_id="bench"
    )
    seconds = time.monotonic() - started
    status = Path(f"/proc/{jvm_pid}/status").read_text()
    jvm_peak_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
    print(
        json.dumps(
            {
                "seconds": round(seconds, 1),
                "rows": report.metadata["rows_out"],
                "committed": report.committed,
                "python_before_mib": baseline_mib,
                "python_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                "jvm_peak_mib": jvm_peak_kib // 1024,
            }
        )
    )


def measure(megabytes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-large-") as home:
        folder = Path(home) / "landing" / "flights" / DAY
        folder.mkdir(parents=True)
        size = write_file(folder / "flights.csv", megabytes)
        completed = subprocess.run(
            [sys.executable, "-m", "medallion_assets_tests.benchmarks.bench_large_file", "--child", home],
            check=True,
            capture_output=True,
            text=True,
            env={**os.environ, "MEDALLION_SPARK_DRIVER_MEMORY": JVM_HEAP},
        )
        result = json.loads(completed.stdout.strip().splitlines()[-1])
        return {"file_mib": size >> 20, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small-mb", type=int, default=200)
    parser.add_argument("--large-mb", type=int, default=2048)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        ingest(args.child)
        return
    small, large = measure(args.small_mb), measure(args.large_mb)
    for name, result in (("small", small), ("large", large)):
        print(f"{name}: {json.dumps(result)}")
    print(
        f"file size ratio {large['file_mib'] / small['file_mib']:.1f}x; "
        f"Python peak ratio {large['python_peak_mib'] / small['python_peak_mib']:.2f}x; "
        f"JVM peak ratio {large['jvm_peak_mib'] / small['jvm_peak_mib']:.2f}x; "
        f"time ratio {large['seconds'] / small['seconds']:.1f}x"
    )


if __name__ == "__main__":
    main()
