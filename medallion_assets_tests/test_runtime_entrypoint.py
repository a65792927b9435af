"""The task entry point as Databricks runs it: loaded and called, its return value ignored, without Dagster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

from medallion_assets.domains.flights.landing import stage
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.runtime.protocol import ENTRY_POINT

# What a python_wheel_task does with the entry point (the CLI's wheel trampoline: `entry.load()()`): it calls
# it with the task's parameters in sys.argv and ignores what it returns. Only an exception fails the task.
WHEEL_TASK = textwrap.dedent(
    """
    import json, sys
    from importlib.metadata import entry_points

    (entry,) = entry_points(group="console_scripts", name={entry_point!r})
    for parameters in json.loads(sys.argv[1]):
        sys.argv = [entry.name, *parameters]
        returned = entry.load()()
        loaded = sorted(
            name for name in sys.modules
            if name.split(".")[0] in ("dagster", "dagster_databricks", "dagster_pyspark", "dagster_webserver")
        )
        print(json.dumps({{"table": parameters[1], "returned": repr(returned), "dagster_modules": loaded}}), flush=True)
    """
)


def run_as_wheel_task(tasks: list[list[str]]) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "MEDALLION_SHUFFLE_PARTITIONS": "2", "MEDALLION_SPARK_MASTER": "local[2]"}
    return subprocess.run(
        [sys.executable, "-c", WHEEL_TASK.format(entry_point=ENTRY_POINT), json.dumps(tasks)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )


def test_a_task_builds_real_tables_without_dagster_and_fails_by_raising(spark, tmp_path: Path) -> None:
    landing, tables = tmp_path / "landing", tmp_path / "tables"
    stage(landing, PartitionWindow.single_day(date(2013, 1, 1)), progress=False)

    def task(table: str, day: str) -> list[str]:
        return ["--table", table, "--partition-start", day, "--landing-root", str(landing), "--table-root", str(tables)]

    process = run_as_wheel_task(
        [
            task("bronze/airlines", "2013-01-01"),
            task("silver/airlines", "2013-01-01"),
            # No airlines landed on this day: the task must fail, whatever the entry point would have returned.
            task("bronze/airlines", "2013-01-09"),
        ]
    )
    reports = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    assert [report["table"] for report in reports] == ["bronze/airlines", "silver/airlines"], process.stderr
    assert all(report["dagster_modules"] == [] for report in reports), reports
    silver = spark.read.format("delta").load(str(tables / "warehouse/silver/airlines"))
    assert silver.count() == 16
    assert process.returncode != 0
    assert "MissingLanding: no landed airlines data for 1 day(s) of 2013-01-09" in process.stderr


def test_blocking_checks_that_fail_a_standalone_run_fail_the_task(tmp_path: Path) -> None:
    landing, tables = tmp_path / "landing", tmp_path / "tables"
    day = date(2013, 1, 1)
    stage(landing, PartitionWindow.single_day(day), progress=False)
    # The landed weather lost a column: silver/weather's source_schema check fails after the build.
    (weather_file,) = (landing / "weather" / day.isoformat()).glob("*.csv")
    header, body = weather_file.read_text().split("\n", 1)
    weather_file.write_text(header.replace("temp", "temperature_f", 1) + "\n" + body)
    common = ["--partition-start", day.isoformat(), "--landing-root", str(landing), "--table-root", str(tables)]
    process = run_as_wheel_task([["--table", "bronze/weather", *common], ["--table", "silver/weather", *common]])
    assert process.returncode != 0
    assert "BlockingChecksFailed" in process.stderr and "source_schema" in process.stderr
