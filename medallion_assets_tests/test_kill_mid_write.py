"""SIGKILL in the middle of a partition write: Delta still reads the previous version; a re-run is clean."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

from medallion_assets.domains import CATALOG
from medallion_assets.framework.execution import run_table
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableKey
from medallion_assets_tests.support import LakehouseRun, read, sorted_rows

DAY = date(2013, 1, 2)
AUDIT = ("_ingested_at", "_run_id")


def data_files(table: Path) -> set[Path]:
    return set(table.glob("partition_date=*/*.parquet"))


def kill_during_write(home: Path, table: Path) -> bool:
    """Start a writer and SIGKILL its whole process group once its data files exist but are not committed."""
    committed_logs = set((table / "_delta_log").glob("*.json"))
    files_before = data_files(table)
    script = textwrap.dedent(
        f"""
        from datetime import date
        from medallion_assets.domains import CATALOG
        from medallion_assets.framework.execution import run_table
        from medallion_assets.framework.lakehouse import PathLakehouse
        from medallion_assets.framework.partitions import PartitionWindow
        from medallion_assets.framework.table import TableKey
        from medallion_assets.embedded.spark import local_spark_session
        run_table(local_spark_session(), PathLakehouse({str(home)!r}), CATALOG[TableKey("bronze", "flights")], CATALOG,
                  PartitionWindow.single_day(date(2013, 1, 2)), run_id="killed")
        """
    )
    writer = subprocess.Popen([sys.executable, "-c", script], start_new_session=True, env=os.environ.copy())
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and writer.poll() is None:
            if data_files(table) - files_before:
                os.killpg(writer.pid, signal.SIGKILL)
                writer.wait()
                return set((table / "_delta_log").glob("*.json")) == committed_logs
            time.sleep(0.005)
        return False
    finally:
        if writer.poll() is None:
            os.killpg(writer.pid, signal.SIGKILL)


def test_a_killed_write_leaves_the_previous_version_and_a_rerun_is_clean(
    spark, lakehouse_two_days: LakehouseRun, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    shutil.copytree(lakehouse_two_days.home / "landing", home / "landing")
    lakehouse = PathLakehouse(str(home))
    table = Path(lakehouse.table(TableKey("bronze", "flights")).identifier)
    run_table(
        spark,
        lakehouse,
        CATALOG[TableKey("bronze", "flights")],
        CATALOG,
        PartitionWindow.single_day(date(2013, 1, 1)),
        run_id="day1",
    )
    before = sorted_rows(read(spark, home, "bronze", "flights"))
    version_before = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").agg({"version": "max"}).first()[0]

    killed_mid_write = any(kill_during_write(home, table) for _ in range(3))
    assert killed_mid_write, "could not catch the writer between its data files and its commit"
    assert data_files(table), "the killed writer left uncommitted files behind"
    version_after = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").agg({"version": "max"}).first()[0]
    assert version_after == version_before
    assert sorted_rows(read(spark, home, "bronze", "flights")) == before

    run_table(
        spark,
        lakehouse,
        CATALOG[TableKey("bronze", "flights")],
        CATALOG,
        PartitionWindow.single_day(DAY),
        run_id="rerun",
    )
    clean = read(spark, lakehouse_two_days.home, "bronze", "flights")
    assert sorted_rows(read(spark, home, "bronze", "flights"), AUDIT) == sorted_rows(clean, AUDIT)
