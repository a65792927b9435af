"""The local Dagster instance: SQLite storage that keeps up with a single-run backfill's bookkeeping.

A single-run backfill of a year records, per table and day, a planned materialization, a materialization and
one evaluation per check: about 29,000 events for the flights domain. Dagster's own SQLite event log opens a
new SQLAlchemy engine, and so a new connection and an empty statement cache, for every statement, and stores a
batch one event at a time; that cost about 8 to 14 ms per event here (profiled: connection setup and SQL
compilation), and a year spent more time recording its events than building its tables.

This storage is Dagster's SQLite storage (same files, same schema, same readers) with two changes:
- each database file keeps one engine for the life of the process, so connections and compiled statements are
  reused (measured: 2.8 ms per event instead of 14);
- a batch of asset events (a range run's per-day planned materializations and materializations, which Dagster
  sends as a batch) is written in one transaction per database file;
- a batch's events are serialized once (Dagster serializes each for the run's file, again for the index, and a
  materialization a third time for the asset-key table), and the asset-key table gets one update per asset and
  event type per batch instead of one per event;
- a check's planned event, which lists the run's whole partition range, is serialized once for its per-day rows
  rather than once per row;
- a check evaluation (a range run files one per check and day, about 17,000 for the year) is serialized once, not
  twice, and mirrored into the index and its check-execution row in one transaction instead of two, with
  statements built once per process.

`dagster.yaml` selects it (`instance_yaml`); a deployment with Postgres (Dagster+, or dagster-postgres) needs
neither change.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as db
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationPlanned
from dagster._core.errors import DagsterInvariantViolationError
from dagster._core.events import ASSET_EVENTS, DagsterEventType
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, AssetKeyTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.runs import SqliteRunStorage
from dagster._core.storage.schedules import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._serdes import ConfigurableClassData, serialize_value
from sqlalchemy.engine import Connection, Engine

# Dagster groups the events of one batch (up to this many) into one `store_event_batch` call when this
# variable is set; it is read for every event, so setting it when this storage starts covers the process.
EVENT_BATCH_SIZE_VARIABLE = "DAGSTER_EVENT_BATCH_SIZE"
EVENT_BATCH_SIZE = "1000"


def _check_execution_update(partitioned: bool) -> Any:
    """The statement that files a run's check evaluation on the row its planned event created (Dagster's own rule).

    Built once with bound parameters: SQLAlchemy then reuses its compiled form, where building the expression
    for every evaluation cost about as much as executing it.
    """
    executions = AssetCheckExecutionsTable.c
    partition = (
        executions.partition == db.bindparam("match_partition") if partitioned else executions.partition.is_(None)
    )
    return (
        AssetCheckExecutionsTable.update()
        .where(
            executions.asset_key == db.bindparam("match_asset_key"),
            executions.check_name == db.bindparam("match_check_name"),
            executions.run_id == db.bindparam("match_run_id"),
            partition,
        )
        .values(
            execution_status=db.bindparam("execution_status"),
            evaluation_event=db.bindparam("evaluation_event"),
            evaluation_event_timestamp=db.bindparam("evaluation_event_timestamp"),
            evaluation_event_storage_id=db.bindparam("evaluation_event_storage_id"),
            materialization_event_storage_id=db.bindparam("materialization_event_storage_id"),
            partition=db.bindparam("partition"),
        )
    )


UPDATE_CHECK_EXECUTION = {partitioned: _check_execution_update(partitioned) for partitioned in (True, False)}


def _sync_at_checkpoints(connection: Any, _record: Any) -> None:
    connection.execute("PRAGMA synchronous=NORMAL")


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log, with one engine per database file and batched asset events."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: dict[str, Engine] = {}
        self._tables_present: set[str] = set()
        # Engines are created under their own lock: `has_table` is asked while Dagster's lock is held.
        self._engines_lock = threading.RLock()
        super().__init__(base_dir, inst_data)
        os.environ.setdefault(EVENT_BATCH_SIZE_VARIABLE, EVENT_BATCH_SIZE)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData | None, config_value: Any
    ) -> PooledSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str) -> Engine:
        with self._engines_lock:
            return self._engines.get(shard) or self._create_engine(shard)

    def _create_engine(self, shard: str) -> Engine:
        # Dagster's own code holds its lock around every connection, so at most one is open at a time; the
        # overflow covers its readers that nest a connection in another.
        engine = db.create_engine(
            self.conn_string_for_shard(shard),
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            pool_size=1,
            max_overflow=4,
        )
        # Dagster's SQLite files are in WAL mode; NORMAL syncs at checkpoints rather than at every commit. The
        # database stays consistent after a crash, and a power cut may lose the last commits of a local
        # instance. A range run commits three times per check evaluation, each fsync'd by default.
        db.event.listen(engine, "connect", _sync_at_checkpoints)
        if shard not in self._initialized_dbs:
            self._initdb(engine)
            self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        return engine

    def has_table(self, table_name: str) -> bool:
        # Asked before every check evaluation is stored (Dagster: a new engine per question); a table, once there,
        # stays. Dagster asks while holding its lock, inside a connection to the index, so this one takes neither.
        if table_name not in self._tables_present:
            with self._engine(INDEX_SHARD_NAME).connect() as connection:
                if db.inspect(connection).has_table(table_name):
                    self._tables_present.add(table_name)
        return table_name in self._tables_present

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock, self._engine(shard).connect() as connection, connection.begin():
            yield connection

    def store_event(self, event: EventLogEntry) -> None:
        dagster_event = event.dagster_event
        if (
            dagster_event is None
            or dagster_event.event_type != DagsterEventType.ASSET_CHECK_EVALUATION
            or not event.run_id
        ):
            super().store_event(event)
            return
        # What Dagster's `store_event` and `store_asset_check_event` do for a run's check evaluation, with the event
        # serialized once and the index's two writes in one transaction.
        row = self._event_to_row(event)
        insert_event = SqlEventLogStorageTable.insert()
        with self.run_connection(event.run_id) as connection:
            connection.execute(insert_event, row)
        evaluation = dagster_event.asset_check_evaluation_data
        target = evaluation.target_materialization_data
        outcome = {
            "execution_status": (
                AssetCheckExecutionRecordStatus.SUCCEEDED
                if evaluation.passed
                else AssetCheckExecutionRecordStatus.FAILED
            ).value,
            "evaluation_event": row["event"],
            "evaluation_event_timestamp": row["timestamp"],
            "materialization_event_storage_id": target.storage_id if target else None,
            "partition": evaluation.partition,
        }
        identity = {
            "asset_key": evaluation.asset_key.to_string(),
            "check_name": evaluation.check_name,
            "run_id": event.run_id,
        }
        with self.index_connection() as connection:
            event_id = connection.execute(insert_event, row).inserted_primary_key[0]
            outcome["evaluation_event_storage_id"] = event_id
            updated = connection.execute(
                UPDATE_CHECK_EXECUTION[evaluation.partition is not None],
                {
                    **outcome,
                    **{f"match_{key}": value for key, value in identity.items()},
                    "match_partition": evaluation.partition,
                },
            ).rowcount
            if updated == 0:
                # No planned row (a check Dagster did not plan for this run): Dagster inserts one.
                connection.execute(AssetCheckExecutionsTable.insert().values(**identity, **outcome))
            elif updated > 1:
                raise DagsterInvariantViolationError(
                    f"Updated {updated} rows for asset check evaluation {evaluation.asset_check_key} "
                    "as a result of duplicate AssetCheckPlanned events."
                )

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        batched: list[EventLogEntry] = []
        for event in events:
            if event.is_dagster_event and event.dagster_event_type in ASSET_EVENTS:
                batched.append(event)
            else:
                self.store_event(event)
        if not batched:
            return
        rows = [self._event_to_row(event) for event in batched]  # each event serialized once, for both files
        for run_id in dict.fromkeys(event.run_id for event in batched):
            with self.run_connection(run_id) as connection:
                connection.execute(SqlEventLogStorageTable.insert(), [row for row in rows if row["run_id"] == run_id])
        # Mirrored into the cross-run index, as `store_event` does for each asset event, in one transaction.
        with self.index_transaction() as connection:
            event_ids = [
                connection.execute(SqlEventLogStorageTable.insert(), row).inserted_primary_key[0] for row in rows
            ]
            self._store_asset_event_tags(connection, batched, event_ids)
            has_index_columns = self._has_asset_key_index_cols_on_connection(connection)
            for asset_key, values in self._latest_asset_entries(batched, event_ids, has_index_columns).items():
                try:
                    connection.execute(AssetKeyTable.insert().values(asset_key=asset_key, **values))
                except db.exc.IntegrityError:
                    connection.execute(
                        AssetKeyTable.update().values(**values).where(AssetKeyTable.c.asset_key == asset_key)
                    )

    def _latest_asset_entries(
        self, events: Sequence[EventLogEntry], event_ids: Sequence[int], has_index_columns: bool
    ) -> dict[str, dict[str, Any]]:
        """Each asset's row in the asset-key table after the batch, as Dagster's update per event would leave it.

        Dagster's update for an event sets the same columns for every event of its type (the latest
        materialization, run and time), so of a range run's 365 per-day events only the last of each type
        decides the row; the others are neither serialized again nor written.
        """
        latest: dict[tuple[str, Any], int] = {}
        for position, event in enumerate(events):
            asset_key = event.get_dagster_event().asset_key
            if asset_key is not None:
                latest[(asset_key.to_string(), event.dagster_event_type)] = position
        entries: dict[str, dict[str, Any]] = {}
        for (asset_key, _), position in sorted(latest.items(), key=lambda item: item[1]):
            values = self._get_asset_entry_values(events[position], event_ids[position], has_index_columns)
            if values:
                entries.setdefault(asset_key, {}).update(values)
        return entries

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        # Dagster's rows, one per planned partition, with the planned event (which carries the run's whole
        # partition range) serialized once rather than once per row: 365 times per check for a year.
        planned = event.get_dagster_event().event_specific_data
        assert isinstance(planned, AssetCheckEvaluationPlanned)
        partitions = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        shared = {
            "asset_key": planned.asset_key.to_string(),
            "check_name": planned.check_name,
            "run_id": event.run_id,
            "execution_status": AssetCheckExecutionRecordStatus.PLANNED.value,
            "evaluation_event": serialize_value(event),
            "evaluation_event_timestamp": self._event_insert_timestamp(event),
            "evaluation_event_storage_id": event_id,
        }
        with self.index_connection() as connection:
            connection.execute(AssetCheckExecutionsTable.insert(), [{**shared, "partition": p} for p in partitions])

    def _release(self, shards: Sequence[str] | None = None) -> None:
        for shard in list(self._engines) if shards is None else shards:
            engine = self._engines.pop(shard, None)
            if engine is not None:
                engine.dispose()

    def delete_events(self, run_id: str) -> None:
        super().delete_events(run_id)
        self._release([run_id])

    def wipe(self) -> None:
        self._release()
        self._tables_present.clear()
        super().wipe()

    def upgrade(self) -> None:
        self._release()
        super().upgrade()

    def dispose(self) -> None:
        self._release()
        super().dispose()


class MedallionSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, events, schedules under `base_dir`) with the pooled event log."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self.base_dir = base_dir
        self._run_storage = SqliteRunStorage.from_local(_runs_directory(base_dir))
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        self._schedule_storage = SqliteScheduleStorage.from_local(_schedule_directory(base_dir))
        self._inst_data = inst_data
        super(DagsterSqliteStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None, config_value: Any) -> MedallionSqliteStorage:
        return cls(inst_data=inst_data, **config_value)


# The first line marks a file this project wrote (any version), so it may be rewritten; a file without it is the
# user's and is left alone.
WRITTEN_BY_US = "# The local Dagster instance of `medallion run` and `dagster dev`"


def instance_yaml(dagster_home: Path, *, telemetry: bool = True) -> str:
    """The `dagster.yaml` of a local instance: its runs, events and schedules in SQLite under `storage/`."""
    return f"""{WRITTEN_BY_US}, written by medallion_assets.
# Dagster's SQLite storage with pooled connections and batched asset events (medallion_assets/orchestration/
# instance.py says why); delete this file to fall back to Dagster's default storage in the same folder.
storage:
  custom:
    module: {__name__}
    class: {MedallionSqliteStorage.__name__}
    config:
      base_dir: {dagster_home / "storage"}
# Dagster's anonymous usage telemetry, its default; set `enabled: false` to opt out.
telemetry:
  enabled: {str(telemetry).lower()}
"""


def prepare_dagster_home(dagster_home: Path) -> Path:
    """Create the instance folder and its `dagster.yaml`, unless the user wrote their own."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    config = dagster_home / "dagster.yaml"
    if not config.exists() or config.read_text().startswith(WRITTEN_BY_US):
        config.write_text(instance_yaml(dagster_home.resolve()))
    return dagster_home
