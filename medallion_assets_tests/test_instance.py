"""The local instance's storage: Dagster's SQLite files, written faster, read back by Dagster's own storage."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as db
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
from dagster._core.definitions.data_version import DATA_VERSION_TAG
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.base import EventLogRecord
from dagster._core.storage.event_log.schema import (
    AssetCheckExecutionsTable,
    AssetEventTagsTable,
    AssetKeyTable,
    SqlEventLogStorageTable,
)
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from dagster._serdes import deserialize_value

from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.orchestration.asset_factory import checks_per_day
from medallion_assets.orchestration.instance import PooledSqliteEventLogStorage, prepare_dagster_home

DAYS = DailyPartitionsDefinition(start_date="2013-01-01", end_date="2013-03-01")


@asset(
    partitions_def=DAYS, backfill_policy=BackfillPolicy.single_run(), check_specs=[AssetCheckSpec("rows", asset="days")]
)
def days(context) -> Iterator[MaterializeResult]:
    yield MaterializeResult(metadata={"days": len(context.partition_keys)})
    yield AssetCheckResult(check_name="rows", passed=True)


JUDGED = [AssetCheckSpec(name, asset="judged", blocking=True, partitions_def=DAYS) for name in ("rows", "fresh")]


@asset(partitions_def=DAYS, backfill_policy=BackfillPolicy.single_run(), check_specs=JUDGED)
def judged(context) -> Iterator[MaterializeResult]:
    """A range run's checks filed per day as the asset factory files them; one check fails."""
    window = context.partition_time_window
    result = MaterializeResult(
        check_results=[
            AssetCheckResult(check_name="rows", passed=True, metadata={"rows": 3}),
            AssetCheckResult(check_name="fresh", passed=False, description="two days late"),
        ]
    )
    yield result
    yield from checks_per_day(context, result, PartitionWindow(window.start.date(), window.end.date()))


@asset(
    partitions_def=DAYS,
    backfill_policy=BackfillPolicy.single_run(),
    check_specs=[AssetCheckSpec("never", asset="unjudged", blocking=True, partitions_def=DAYS)],
)
def unjudged(context) -> Iterator[MaterializeResult]:
    """Fails before judging anything: its checks stay planned, one row per day."""
    raise RuntimeError("no rows")
    yield MaterializeResult()


def check_history(instance: DagsterInstance, run_id: str) -> dict[tuple[str, str | None], tuple]:
    """Each (check, day) row of the run's check executions, as stored, with the two events it points at."""
    evaluation_event, materialization_event = (
        SqlEventLogStorageTable.alias("evaluation_event"),
        SqlEventLogStorageTable.alias("materialization_event"),
    )
    executions = AssetCheckExecutionsTable
    query = (
        db.select(
            executions.c.check_name,
            executions.c.partition,
            executions.c.execution_status,
            executions.c.evaluation_event,
            evaluation_event.c.event,
            materialization_event.c.partition,
            materialization_event.c.dagster_event_type,
        )
        .select_from(
            executions.outerjoin(
                evaluation_event, executions.c.evaluation_event_storage_id == evaluation_event.c.id
            ).outerjoin(
                materialization_event, executions.c.materialization_event_storage_id == materialization_event.c.id
            )
        )
        .where(executions.c.run_id == run_id)
    )
    with instance.event_log_storage.index_connection() as connection:  # type: ignore[attr-defined]
        rows = connection.execute(query).fetchall()
    history = {}
    for check_name, partition, status, stored, pointed_at, target_partition, target_type in rows:
        event = deserialize_value(stored, EventLogEntry).get_dagster_event()
        verdict = event.asset_check_evaluation_data if event.event_type_value == "ASSET_CHECK_EVALUATION" else None
        history[(check_name, partition)] = (
            status,
            event.event_type_value,
            (verdict.passed, verdict.description, dict(verdict.metadata)) if verdict else None,
            stored == pointed_at,  # the row's event is the one its storage id points at
            (target_partition, target_type),
        )
    return history


def asset_index(instance: DagsterInstance, run_id: str) -> tuple[dict[str, tuple], list[tuple]]:
    """Each asset's row in the asset-key table, and every asset event tag, with the events they point at."""
    events = SqlEventLogStorageTable
    with instance.event_log_storage.index_connection() as connection:  # type: ignore[attr-defined]
        keys = connection.execute(
            db.select(
                AssetKeyTable.c.asset_key,
                AssetKeyTable.c.last_materialization,
                AssetKeyTable.c.last_run_id,
                AssetKeyTable.c.last_materialization_timestamp,
            )
        ).fetchall()
        stored_events = {
            row.id: row for row in connection.execute(db.select(events.c.id, events.c.event, events.c.timestamp))
        }
        tags = connection.execute(
            db.select(
                AssetEventTagsTable.c.asset_key,
                AssetEventTagsTable.c.key,
                AssetEventTagsTable.c.value,
                events.c.partition,
                events.c.dagster_event_type,
            ).select_from(AssetEventTagsTable.join(events, AssetEventTagsTable.c.event_id == events.c.id))
        ).fetchall()
    rows = {}
    for asset_key, last_materialization, last_run_id, last_timestamp in keys:
        record = deserialize_value(last_materialization, EventLogRecord) if last_materialization else None
        pointed = stored_events[record.storage_id] if record else None
        rows[asset_key] = (
            last_run_id == run_id,
            record.event_log_entry.get_dagster_event().partition if record else None,
            # the recorded materialization is the stored event its storage id names
            pointed is not None and deserialize_value(pointed.event, EventLogEntry) == record.event_log_entry,
            # the asset's latest event time is the latest stored for it
            last_timestamp == max(e.timestamp for e in stored_events.values()),
        )
    # A root asset's data version derives from the run's id, which differs between the two instances.
    return rows, sorted(
        (key, name, "<the run's>" if name == DATA_VERSION_TAG else value, day, kind)
        for key, name, value, day, kind in tags
    )


def test_a_range_run_is_indexed_as_dagsters_own_storage_indexes_it(tmp_path: Path) -> None:
    """What this storage writes its own way (per-day materializations and planned materializations in batches,
    planned and evaluated checks) reads back from the index exactly as Dagster's storage would have written it."""
    tags = {"dagster/asset_partition_range_start": "2013-01-01", "dagster/asset_partition_range_end": "2013-01-05"}
    found = []
    for home in (prepare_dagster_home(tmp_path / "ours"), tmp_path / "dagsters"):
        home.mkdir(exist_ok=True)
        with DagsterInstance.from_config(str(home)) as instance:
            result = materialize([judged, unjudged], instance=instance, tags=tags, raise_on_error=False)
            assert not result.success  # a failed blocking check, and a step that raised
            found.append(
                (
                    type(instance.event_log_storage),
                    check_history(instance, result.run_id),
                    asset_index(instance, result.run_id),
                )
            )
    (ours, our_history, our_index), (dagsters, dagster_history, dagster_index) = found
    assert ours is PooledSqliteEventLogStorage and dagsters is not PooledSqliteEventLogStorage
    days = [f"2013-01-0{day}" for day in range(1, 6)]
    # Per day, as the asset factory files them, and the run's own verdicts, which Dagster files under no partition.
    judged_checks = {(name, day) for name in ("rows", "fresh") for day in [*days, None]}
    assert set(our_history) == judged_checks | {("never", day) for day in days}
    assert {verdict[0] for (name, _), verdict in our_history.items() if name == "fresh"} == {"FAILED"}
    assert {verdict[:2] for (name, _), verdict in our_history.items() if name == "never"} == {
        ("PLANNED", "ASSET_CHECK_EVALUATION_PLANNED")
    }
    for (name, day), (*_, pointed_at, target) in our_history.items():
        assert pointed_at and (day is None or name == "never" or target == (day, "ASSET_MATERIALIZATION"))
    assert our_history == dagster_history
    asset_rows, event_tags = our_index
    judged_row, unjudged_row = (asset_rows[AssetKey(name).to_string()] for name in ("judged", "unjudged"))
    assert judged_row[:3] == (True, days[-1], True) and unjudged_row[0]
    assert event_tags
    assert our_index == dagster_index


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
