"""The local instance's storage: Dagster's SQLite files, written faster, read back by Dagster's own storage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetKey,
    BackfillPolicy,
    DagsterInstance,
    DailyPartitionsDefinition,
    MaterializeResult,
    asset,
    materialize,
)
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage

from medallion_assets.orchestration.instance import PooledSqliteEventLogStorage, prepare_dagster_home

DAYS = DailyPartitionsDefinition(start_date="2013-01-01", end_date="2013-03-01")


@asset(
    partitions_def=DAYS, backfill_policy=BackfillPolicy.single_run(), check_specs=[AssetCheckSpec("rows", asset="days")]
)
def days(context) -> Iterator[MaterializeResult]:
    yield MaterializeResult(metadata={"days": len(context.partition_keys)})
    yield AssetCheckResult(check_name="rows", passed=True)


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = prepare_dagster_home(tmp_path / "dagster")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    return home


def test_a_range_run_is_recorded_per_day_and_dagsters_own_storage_reads_it(dagster_home: Path) -> None:
    with DagsterInstance.get() as instance:
        assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
        # The storage turns on Dagster's event batching for its process.
        assert os.environ["DAGSTER_EVENT_BATCH_SIZE"]
        result = materialize(
            [days],
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": "2013-01-01",
                "dagster/asset_partition_range_end": "2013-01-31",
            },
        )
        assert result.success
        run_id = result.run_id
    expected = {f"2013-01-{day:02d}" for day in range(1, 32)}
    # Dagster's default SQLite storage, over the same folder, finds every day's planned and done materialization.
    storage = DagsterSqliteStorage.from_local(str(dagster_home / "storage"))
    try:
        events = storage.event_log_storage
        assert type(events) is not PooledSqliteEventLogStorage
        assert events.get_materialized_partitions(AssetKey("days")) == expected
        records = events.get_records_for_run(run_id, limit=1000).records
        planned = {
            r.event_log_entry.dagster_event.partition
            for r in records
            if r.event_log_entry.dagster_event
            and r.event_log_entry.dagster_event.event_type_value == "ASSET_MATERIALIZATION_PLANNED"
        }
        assert planned == expected
        materialized = [
            r
            for r in records
            if r.event_log_entry.dagster_event
            and r.event_log_entry.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
        ]
        assert len(materialized) == len(expected)
    finally:
        storage.dispose()


def test_a_users_own_dagster_yaml_is_left_alone(tmp_path: Path) -> None:
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    prepare_dagster_home(home)
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
