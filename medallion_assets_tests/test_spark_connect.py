"""The runtime path over Spark Connect, the way serverless Databricks compute runs it, equals classic local Spark.

The Connect server runs inside the test process's own JVM (`serve_connect`): its sessions share the classic
session's SparkContext, Delta extension, catalog and settings, so no second JVM starts. A local server accepts
APIs serverless rejects (`cache()`); test_serverless_rules.py enforces those rules on the source instead.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterEventType

from medallion_assets.cli import ENGINE_READY, serve_engine
from medallion_assets.domains import flights
from medallion_assets.domains.flights.landing import stage
from medallion_assets.embedded.spark import REMOTE_SETTING, runtime_spark_session
from medallion_assets.framework import delta_io
from medallion_assets.framework.delta_io import read_window, table_exists, write_window
from medallion_assets.framework.execution import run_table
from medallion_assets.framework.lakehouse import PathLakehouse, TableLocation, UnityCatalogLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.report import Meta, split_by_day
from medallion_assets.framework.table import TableKey
from medallion_assets.runtime import entrypoint
from medallion_assets_tests.conftest import TWO_DAYS
from medallion_assets_tests.support import (
    LakehouseRun,
    materialization_metadata,
    record_commit_conflicts,
    sorted_rows,
    wait_for,
)

# The tables of the shared two-day lakehouse, in dependency order.
CATALOG = {table.key: table for table in flights.TABLES}

# pyspark's switch for building Connect expressions; process-wide, so it is set only while a test uses Connect.
CONNECT_MODE = "SPARK_CONNECT_MODE_ENABLED"

# Differ between any two runs by construction: when the bronze run started, and which run it was (a Dagster run
# id against the runtime's standalone `databricks-<timestamp>`). Quarantined rows carry them inside the bronze
# columns they keep. Every other column, including the record and SCD2 row hashes, must be equal.
AUDIT_COLUMNS = ("_ingested_at", "_run_id")
# Materialization metadata about where and how long, not what: the wall time and the table's location under a
# different lakehouse root. Counts, rule failures, Delta versions and landing fingerprints must be equal.
RUN_SPECIFIC_METADATA = frozenset({"duration_s", "table", "quarantine_table", Meta.BUILD_ID})
# Dagster adds this to a range run's check results; the runtime reports the run's own result.
DAGSTER_ONLY_CHECK_METADATA = frozenset({"partition_window"})


@pytest.fixture
def connect_spark(spark) -> Iterator[Any]:
    """The runtime's own session with MEDALLION_SPARK_REMOTE set: Spark Connect, served from the shared JVM."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    saved = {name: os.environ.get(name) for name in (REMOTE_SETTING, CONNECT_MODE)}
    os.environ[REMOTE_SETTING] = "local[2]"
    try:
        started = time.monotonic()
        session = runtime_spark_session()
        session.range(1).collect()
        print(f"\nSpark Connect session to the shared JVM, first query answered: {time.monotonic() - started:.2f}s")
        assert isinstance(session, ConnectSession)
        # The same SparkContext: the server runs inside the classic session's JVM.
        assert session.conf.get("spark.app.id") == spark.sparkContext.applicationId
        yield session
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _plain(value: Any) -> str:
    """One comparable form for a metadata value, whether raw (the runtime's report) or as Dagster stored it."""
    return json.dumps(getattr(value, "value", value), sort_keys=True, default=str)


def _dagster_checks(run: LakehouseRun) -> dict[tuple[str, str], set[tuple[bool, str, str]]]:
    """Every check outcome of the classic run, by asset and check: the run's own results, which the runtime reports.

    A range run also files a copy per day (asset_factory.checks_per_day), with that day's share of per-day values.
    """
    outcomes: dict[tuple[str, str], set[tuple[bool, str, str]]] = {}
    for event in run.result.all_events:
        if event.event_type != DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        evaluation = event.asset_check_evaluation_data
        if evaluation.partition is not None:
            continue
        metadata = {k: _plain(v) for k, v in evaluation.metadata.items() if k not in DAGSTER_ONLY_CHECK_METADATA}
        outcomes.setdefault((evaluation.asset_key.to_user_string(), evaluation.check_name), set()).add(
            (evaluation.passed, evaluation.severity.value, json.dumps(metadata, sort_keys=True))
        )
    return outcomes


def _rows(session: Any, location: TableLocation) -> tuple[list[tuple[str, str]], list[tuple]]:
    frame = delta_io.read_table(session, location)
    dtypes = sorted((name, kind) for name, kind in frame.dtypes if name not in AUDIT_COLUMNS)
    return dtypes, sorted_rows(frame, AUDIT_COLUMNS)


def test_every_table_built_over_spark_connect_equals_classic_local_spark(
    lakehouse_two_days: LakehouseRun, connect_spark: Any, tmp_path: Path
) -> None:
    home = tmp_path / "connect"
    shutil.copytree(lakehouse_two_days.home / "landing", home / "landing")
    window = PartitionWindow.for_keys(*TWO_DAYS)
    reports = {}
    started = time.monotonic()
    for key in CATALOG:
        missing = [str(upstream) for upstream in CATALOG[key].upstream_keys if upstream not in reports]
        assert not missing, f"CATALOG lists {key} before its upstream {missing}"
        args = entrypoint.parse_args(
            [
                *("--table", str(key), "--partition-start", TWO_DAYS[0], "--partition-end", TWO_DAYS[1]),
                *("--table-root", str(home), "--landing-root", str(home / "landing")),
            ]
        )
        assert entrypoint.partition_window(args) == window
        reports[key] = entrypoint.run_standalone(args, key, window)
    print(f"built {len(reports)} tables over Spark Connect in {time.monotonic() - started:.1f}s")

    classic, connect = lakehouse_two_days.lakehouse, PathLakehouse(str(home))
    classic_checks = _dagster_checks(lakehouse_two_days)
    mismatches: list[str] = []
    for key, table in CATALOG.items():
        parts = []
        for stored in [key, *([table.quarantine_key] if table.has_quarantine else [])]:
            expected, actual = _rows(connect_spark, classic.table(stored)), _rows(connect_spark, connect.table(stored))
            if expected[0] != actual[0]:
                mismatches.append(f"{stored}: columns {actual[0]} != {expected[0]}")
            if expected[1] != actual[1]:
                mismatches.append(f"{stored}: {len(actual[1])} rows differ from the classic {len(expected[1])}")
            parts.append(
                f"{stored.name} {len(actual[1])} rows x {len(actual[0])} columns {'=' if expected == actual else '!='}"
            )

        checks = {outcome.name: outcome for outcome in reports[key].checks}
        for name in sorted(set(checks) | {check for asset, check in classic_checks if asset == str(key)}):
            classic_outcomes = classic_checks.get((str(key), name), set())
            outcome = checks.get(name)
            mine = (
                {
                    (
                        outcome.passed,
                        outcome.severity,
                        json.dumps({k: _plain(v) for k, v in outcome.metadata.items()}, sort_keys=True),
                    )
                }
                if outcome is not None
                else set()
            )
            if mine != classic_outcomes:
                mismatches.append(f"{key} check {name}: Connect {mine} != classic {classic_outcomes}")
        verdicts = ", ".join(f"{n} {'passed' if c.passed else 'FAILED'}" for n, c in checks.items())

        # Dagster files each day's own quality figures on that day's materialization: the last day's is compared.
        classic_metadata = materialization_metadata(lakehouse_two_days.result, key.layer, key.name)
        window_metadata, by_day = split_by_day(reports[key].metadata)
        runtime_metadata = {**window_metadata, **by_day.get(TWO_DAYS[-1], {})}
        differing = sorted(
            name
            for name in set(classic_metadata) | set(runtime_metadata)
            if name not in RUN_SPECIFIC_METADATA
            and _plain(classic_metadata.get(name)) != _plain(runtime_metadata.get(name))
        )
        if differing:
            mismatches.append(f"{key} materialization metadata differs: {differing}")
        print(
            f"parity {key}: {'; '.join(parts)}; {len(checks)} checks equal ({verdicts}); "
            f"{len(runtime_metadata) - len(RUN_SPECIFIC_METADATA & set(runtime_metadata))} metadata "
            f"{'equal' if not differing else 'DIFFER'}"
        )
    assert not mismatches, "\n".join(mismatches)


ROWS_SCHEMA = "id bigint, day date"
FIRST, SECOND = PartitionWindow.single_day(date(2013, 1, 1)), PartitionWindow.single_day(date(2013, 1, 2))


def _write_reread_and_look_up(session: Any, location: TableLocation) -> None:
    def rows(day: date, count: int) -> Any:
        return session.createDataFrame([(i, day) for i in range(count)], ROWS_SCHEMA)

    assert not table_exists(session, location)
    assert read_window(session, location, FIRST, "day") is None
    mine = write_window(rows(FIRST.start, 4), location, FIRST, "day")
    token = delta_io.commit_note(delta_io.history(session, location, 1).first()["userMetadata"])[delta_io.WRITE_TOKEN]
    # Another writer commits on top; then the first day is written again and replaces its window.
    other = write_window(rows(SECOND.start, 7), location, SECOND, "day")
    again = write_window(rows(FIRST.start, 2), location, FIRST, "day")
    assert [(c.version, c.window_rows) for c in (mine, other, again)] == [(0, 4), (1, 7), (2, 2)]
    assert delta_io.tagged_commit(session, location, token) == (0, 4)
    assert table_exists(session, location)
    first = read_window(session, location, FIRST, "day")
    assert first is not None and sorted(r["id"] for r in first.collect()) == [0, 1]
    # Nothing into an empty window counts zero. A path write commits nothing; saveAsTable records a commit even
    # so. Either way the version is the table's newest.
    third = PartitionWindow.single_day(date(2013, 1, 3))
    empty = write_window(rows(third.start, 0), location, third, "day")
    assert empty.window_rows == 0
    assert empty.version == delta_io.history(session, location, 1).first()["version"] in (2, 3)


def test_a_path_table_over_spark_connect(connect_spark: Any, tmp_path: Path) -> None:
    _write_reread_and_look_up(connect_spark, TableLocation(str(tmp_path / "table"), is_path=True))


def test_a_three_part_named_table_over_spark_connect(connect_spark: Any, tmp_path: Path) -> None:
    schema = f"dev_alice_connect_{os.getpid()}"
    connect_spark.sql(f"CREATE SCHEMA IF NOT EXISTS `spark_catalog`.`{schema}` LOCATION '{tmp_path / 'schema'}'")
    try:
        lakehouse = UnityCatalogLakehouse(catalog="spark_catalog", landing_volume="/unused", schemas={"bronze": schema})
        location = lakehouse.table(TableKey("bronze", "events"))
        assert location.identifier == f"`spark_catalog`.`{schema}`.`events`"
        _write_reread_and_look_up(connect_spark, location)
        assert connect_spark.table(location.identifier).count() == 2 + 7
    finally:
        connect_spark.sql(f"DROP SCHEMA IF EXISTS `spark_catalog`.`{schema}` CASCADE")


def _concurrently(work: Any, threads: int = 3) -> None:
    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_commit_conflicts_over_spark_connect_are_recognised_and_retried(
    connect_spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over Connect a Delta conflict arrives as a generic error carrying Delta's condition, not as Delta's class."""
    location = TableLocation(str(tmp_path / "table"), is_path=True)
    frame = connect_spark.createDataFrame([(i, FIRST.start) for i in range(50)], ROWS_SCHEMA)
    write_window(frame, location, FIRST, "day")
    raw_errors: list[Exception] = []

    def raw_writes() -> None:
        for _ in range(2):
            try:
                frame.write.format("delta").mode("overwrite").option("replaceWhere", FIRST.predicate("day")).save(
                    location.identifier
                )
            except Exception as error:
                raw_errors.append(error)

    # Writers replacing the same window at once conflict; a few rounds make at least one conflict all but certain.
    for _ in range(5):
        _concurrently(raw_writes)
        if raw_errors:
            break
    assert raw_errors, "three writers replacing one window never conflicted"
    assert all(delta_io.is_commit_conflict(error) for error in raw_errors), [type(e) for e in raw_errors]

    recognised = record_commit_conflicts(monkeypatch)
    monkeypatch.setattr(delta_io.random, "uniform", lambda low, high: 0.0)  # retry at once
    commits: list[delta_io.Commit] = []
    _concurrently(lambda: commits.append(write_window(frame, location, FIRST, "day")))
    assert len(commits) == 3 and all(commit.window_rows == 50 for commit in commits)
    assert read_window(connect_spark, location, FIRST, "day").count() == 50
    print(f"\n{len(raw_errors)} raw conflicts recognised; write_window retried {len(recognised)} conflicts")


@contextmanager
def classic_expressions() -> Iterator[None]:
    """Classic Spark inside a Connect test: pyspark.sql.functions builds classic expressions while this lasts."""
    mode = os.environ.pop(CONNECT_MODE, None)
    try:
        yield
    finally:
        if mode is not None:
            os.environ[CONNECT_MODE] = mode


def test_rejected_rows_are_quarantined_alike_over_spark_connect(spark, connect_spark: Any, tmp_path: Path) -> None:
    """The two-day parity build quarantines nothing; here a bad snapshot line takes the quarantine path too."""
    stage(tmp_path / "landing", FIRST, progress=False)
    landed = tmp_path / "landing" / "airports" / FIRST.start.isoformat() / "airports.csv"
    # An airport code the contract rejects, and a line with a field too many: 2 of 1,460 lines.
    bad = "TOOLONGX,Not An Airport,41,-73,10,-5,A,America/New_York\nZZZ,Extra,41,-73,10,-5,A,America/New_York,x\n"
    landed.write_text(landed.read_text(encoding="utf-8") + bad, "utf-8")
    keys = (TableKey("bronze", "airports"), TableKey("silver", "airports"))
    homes = {"classic": tmp_path / "classic", "connect": tmp_path / "connect"}
    reports: dict[str, Any] = {}
    for engine, home in homes.items():
        lakehouse = PathLakehouse(str(home), landing=str(tmp_path / "landing"))
        session = connect_spark if engine == "connect" else spark
        with classic_expressions() if engine == "classic" else nullcontext():
            for key in keys:
                reports[engine] = run_table(session, lakehouse, CATALOG[key], CATALOG, FIRST, run_id=engine)
    assert reports["connect"].metadata["rows_quarantined"] == 2
    for stored in (TableKey("silver", "airports"), TableKey("silver", "airports_quarantine")):
        classic_rows, connect_rows = (
            _rows(connect_spark, PathLakehouse(str(home)).table(stored)) for home in homes.values()
        )
        assert connect_rows == classic_rows, stored
    quarantined = _rows(
        connect_spark, PathLakehouse(str(homes["connect"])).table(TableKey("silver", "airports_quarantine"))
    )
    assert len(quarantined[1]) == 2
    outcomes = {
        engine: [(c.name, c.passed, c.severity, _plain(c.metadata)) for c in report.checks]
        for engine, report in reports.items()
    }
    assert outcomes["connect"] == outcomes["classic"]


def test_medallion_engine_serves_the_local_engine_over_connect_until_stopped(spark, capsys) -> None:
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    stopped = threading.Event()
    serving = threading.Thread(target=serve_engine, args=(stopped,))
    serving.start()
    said = ""
    ready = ENGINE_READY.format(setting=REMOTE_SETTING)
    try:

        def announced() -> bool:
            nonlocal said
            said += capsys.readouterr().out
            return ready in said

        assert wait_for(announced, timeout=120), said
        (line,) = [line.strip() for line in said.splitlines() if line.strip().startswith(ready)]
        # What a run does with the exported value: connect, build, and leave the engine running for the next run.
        session = ConnectSession.builder.remote(line.removeprefix(ready).strip("'")).create()
        assert session.range(5).count() == 5
        assert session.conf.get("spark.app.id") == spark.sparkContext.applicationId  # this process's JVM
        session.stop()
        assert serving.is_alive()
    finally:
        stopped.set()
        serving.join(timeout=60)
    assert not serving.is_alive()
    assert capsys.readouterr().out.strip().endswith("stopped")
