"""Helpers shared by the tests: run the real Dagster graph and read the real Delta tables."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    Definitions,
    ExecuteInProcessResult,
    deserialize_value,
    materialize,
    serialize_value,
)

from medallion_assets.definitions import assets_of
from medallion_assets.framework import delta_io
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableKey
from medallion_assets.orchestration.compute import LocalSparkCompute
from medallion_assets.orchestration.jobs import partition_range_tags

# The days the shared lakehouse of the integration tests holds (conftest's `lakehouse_two_days`).
TWO_DAYS = ("2013-01-01", "2013-01-02")


@dataclass
class LakehouseRun:
    home: Path
    result: ExecuteInProcessResult

    @property
    def lakehouse(self) -> PathLakehouse:
        return PathLakehouse(str(self.home))


def materialize_window(
    home: Path,
    first_day: str,
    last_day: str,
    selection: Any = None,
    raise_on_error: bool = True,
    domain: str = "flights",
) -> LakehouseRun:
    """One single-run backfill of `domain`'s tables (or `selection` of them) over the days."""
    result = materialize(
        assets_of[domain],
        resources={"compute": LocalSparkCompute(home=str(home))},
        tags=partition_range_tags(PartitionWindow.for_keys(first_day, last_day)),
        selection=selection,
        raise_on_error=raise_on_error,
    )
    return LakehouseRun(home, result)


RECORDED_RUN = "run.json"


def shared_lakehouse_run(home: Path, build: Callable[[Path], LakehouseRun], domain: str = "flights") -> LakehouseRun:
    """The lakehouse `build` makes in `home`, made once: a later call (another test process) reads it back.

    The run's events are recorded beside the tables, so every process sees the same run's results. The caller
    holds a lock, so no process reads a lakehouse still being built.
    """
    recorded = home / RECORDED_RUN
    if recorded.exists():
        stored = deserialize_value(recorded.read_text(), as_type=dict)
        events, run = stored["events"], stored["run"]
        compute = LocalSparkCompute(home=str(home))
        job = Definitions(
            assets=assets_of[domain], resources={"compute": compute}
        ).resolve_implicit_global_asset_job_def()
        return LakehouseRun(home, ExecuteInProcessResult(events, run, None, job))
    made = build(home)
    result = made.result
    written = recorded.with_suffix(".partial")
    written.write_text(serialize_value({"events": list(result.all_events), "run": result.dagster_run}))
    written.rename(recorded)
    return made


def read(spark, home: Path, layer: str, name: str):
    return spark.read.format("delta").load(PathLakehouse(str(home)).table(TableKey(layer, name)).identifier)


def check_evaluations(result: ExecuteInProcessResult) -> dict[tuple[str, str], Any]:
    evaluations = [
        event.asset_check_evaluation_data
        for event in result.all_events
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
    ]
    return {(e.asset_key.to_user_string(), e.check_name): e for e in evaluations}


def materialization_metadata(result: ExecuteInProcessResult, layer: str, name: str) -> dict[str, Any]:
    materializations = result.asset_materializations_for_node(f"{layer}__{name}")
    assert materializations, f"{layer}/{name} was not materialized"
    return {key: value.value for key, value in materializations[-1].metadata.items()}


def materialized_keys(result: ExecuteInProcessResult) -> set[AssetKey]:
    return {event.asset_key for event in result.all_events if event.is_step_materialization}


def sorted_rows(df, drop: tuple[str, ...] = ()) -> list[tuple]:
    columns = sorted(c for c in df.columns if c not in drop)
    return sorted((tuple(row) for row in df.select(*columns).collect()), key=repr)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def record_commit_conflicts(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """From now on, every Delta commit conflict that delta_io recognises, and so retries, lands in the list."""
    recognised: list[BaseException] = []
    is_conflict = delta_io.is_commit_conflict

    def recording(error: BaseException) -> bool:
        if is_conflict(error):
            recognised.append(error)
            return True
        return False

    monkeypatch.setattr(delta_io, "is_commit_conflict", recording)
    return recognised
