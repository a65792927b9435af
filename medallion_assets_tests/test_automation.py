"""Landing sensors and downstream automation, evaluated by Dagster on a real instance."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    AssetRecordsFilter,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_sensor_context,
    evaluate_automation_conditions,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData
from dagster._core.events import AssetMaterializationPlannedData
from dagster._core.utils import make_new_run_id

from medallion_assets.definitions import defs, partitions_of
from medallion_assets.domains import CATALOG, DOMAINS
from medallion_assets.domains.flights.landing import AIRLINES, AIRPORTS
from medallion_assets.framework.landing import folder_fingerprint
from medallion_assets.framework.maintenance import MAINTENANCE_PREFIX
from medallion_assets.framework.table import LandingSource, TableKey
from medallion_assets.orchestration.alerts import FAILURE_ALERTS, FRESHNESS_ALERTS
from medallion_assets.orchestration.automation import FOLLOWS_UPSTREAM, landing_sensor
from medallion_assets.orchestration.compute import LocalSparkCompute


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path))
    return tmp_path


def land(home: Path, day: str, content: str = "carrier,name\nAA,American Airlines Inc.\n") -> Path:
    folder = home / "landing/airlines" / day
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "airlines.csv").write_text(content)
    return folder / "airlines.csv"


def evaluate(home: Path, cursor: str | None = None, instance: DagsterInstance | None = None):
    sensor = landing_sensor("flights", [AIRLINES], partitions_of["flights"])
    with contextlib.ExitStack() as stack:
        instance = instance or stack.enter_context(DagsterInstance.ephemeral())
        context = build_sensor_context(
            instance=instance, cursor=cursor, resources={"compute": LocalSparkCompute(home=str(home))}
        )
        return sensor(context)


def skip_message(result) -> str:
    if isinstance(result, SkipReason):
        return result.skip_message
    assert not result.run_requests, result.run_requests
    return result.skip_reason.skip_message


def test_new_days_are_requested_once_with_fingerprint_run_keys(home: Path) -> None:
    land(home, "2013-01-01")
    land(home, "2013-01-02")
    first = evaluate(home)
    assert [r.partition_key for r in first.run_requests] == ["2013-01-01", "2013-01-02"]
    assert all(isinstance(r, RunRequest) and r.run_key.startswith("flights:2013-01-0") for r in first.run_requests)
    assert {tuple(key.path) for r in first.run_requests for key in r.asset_selection} == {("bronze", "airlines")}
    # The cursor is what Dagster stores for the sensor, so a restarted daemon resumes from it.
    again = evaluate(home, first.cursor)
    assert "no new or changed files" in skip_message(again)


def test_sources_that_land_the_same_day_are_ingested_by_one_run(home: Path) -> None:
    land(home, "2013-01-01")
    airports = home / "landing/airports/2013-01-01"
    airports.mkdir(parents=True)
    (airports / "airports.csv").write_text("faa,name,lat,lon,alt,tz,dst,tzone\nEWR,Newark,40.69,-74.17,18,-5,A,x\n")
    sensor = landing_sensor("flights", [AIRLINES, AIRPORTS], partitions_of["flights"])
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, resources={"compute": LocalSparkCompute(home=str(home))})
        (request,) = sensor(context).run_requests
    assert request.partition_key == "2013-01-01"
    assert {tuple(key.path) for key in request.asset_selection} == {("bronze", "airlines"), ("bronze", "airports")}


def test_a_static_source_lands_for_every_landed_day_and_again_when_delivered_again(home: Path) -> None:
    codes = LandingSource("codes", ("code", "label"), "a static code list", static=True)
    static_file = home / "landing/codes/codes.csv"
    static_file.parent.mkdir(parents=True)
    static_file.write_text("code,label\nA,first\n")
    sensor = landing_sensor("flights", [AIRLINES, codes], partitions_of["flights"])

    def requests(cursor: str | None = None):
        with DagsterInstance.ephemeral() as instance:
            context = build_sensor_context(
                instance=instance, cursor=cursor, resources={"compute": LocalSparkCompute(home=str(home))}
            )
            result = sensor(context)
        return result, {r.partition_key: {key.path[1] for key in r.asset_selection} for r in result.run_requests}

    first, by_day = requests()
    assert by_day == {}, "a static file alone lands for no day"
    land(home, "2013-01-01")
    land(home, "2013-01-02")
    second, by_day = requests(first.cursor)
    assert by_day == {"2013-01-01": {"airlines", "codes"}, "2013-01-02": {"airlines", "codes"}}
    land(home, "2013-01-03")
    third, by_day = requests(second.cursor)
    assert by_day == {"2013-01-03": {"airlines", "codes"}}
    static_file.write_text("code,label\nA,first\nB,second\n")
    _, by_day = requests(third.cursor)
    assert by_day == {day: {"codes"} for day in ("2013-01-01", "2013-01-02", "2013-01-03")}


def test_a_changed_or_late_file_triggers_its_partition_again(home: Path) -> None:
    land(home, "2013-01-01")
    first = evaluate(home)
    land(home, "2013-01-01", "carrier,name\nAA,American Airlines Group\n")
    os.utime(home / "landing/airlines/2013-01-01/airlines.csv", ns=(1, 10**18))
    (home / "landing/airlines/2013-01-01/late.csv").write_text("carrier,name\nUA,United\n")
    second = evaluate(home, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["2013-01-01"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_malformed_folders_are_reported_not_crashed_on(home: Path) -> None:
    for name in ("2013-02-30", "yesterday", "2019-01-01"):
        (home / "landing/airlines" / name).mkdir(parents=True)
    message = skip_message(evaluate(home))
    assert "3 malformed folder(s)" in message
    assert "2013-02-30" in message


def test_an_empty_day_folder_is_requested_so_its_run_fails_loudly(home: Path) -> None:
    (home / "landing/airlines/2013-01-05").mkdir(parents=True)
    first = evaluate(home)
    # bronze fails `landing_delivered` for it, rather than the day staying silently unbuilt.
    assert [r.partition_key for r in first.run_requests] == ["2013-01-05"]
    land(home, "2013-01-05")
    assert [r.partition_key for r in evaluate(home, first.cursor).run_requests] == ["2013-01-05"]


def test_nothing_landed_is_a_skip_reason(home: Path) -> None:
    assert "nothing has landed yet" in skip_message(evaluate(home))


def test_a_day_already_ingested_from_the_same_files_is_not_requested_again(home: Path) -> None:
    ingested = land(home, "2013-01-01").parent
    land(home, "2013-01-02")
    with DagsterInstance.ephemeral() as instance:
        # What a backfill's bronze run records: the fingerprint of the files it read, per day.
        instance.report_runless_asset_event(
            AssetMaterialization(
                AssetKey(["bronze", "airlines"]),
                partition="2013-01-01",
                metadata={"landing_fingerprints": {"2013-01-01": folder_fingerprint(ingested)}},
            )
        )
        first = evaluate(home, instance=instance)
        assert [r.partition_key for r in first.run_requests] == ["2013-01-02"]
        (ingested / "late.csv").write_text("carrier,name\nUA,United Air Lines Inc.\n")
        second = evaluate(home, first.cursor, instance=instance)
        assert [r.partition_key for r in second.run_requests] == ["2013-01-01"]


def test_refined_tables_follow_upstream_and_bronze_waits_for_sensors() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        condition = graph.get(key).automation_condition
        # Bronze waits for its landing sensor; maintenance for its weekly schedule.
        assert (condition is None) == (key.path[0] in ("bronze", MAINTENANCE_PREFIX)), key
        if condition is not None:
            assert condition.get_label() == FOLLOWS_UPSTREAM
    landing_sensors = {f"{domain}_landing_sensor" for domain in DOMAINS}
    alert_sensors = {FAILURE_ALERTS, FRESHNESS_ALERTS}
    assert {s.name for s in defs.sensors} == {*landing_sensors, "refined_tables_automation", *alert_sensors}
    for domain in DOMAINS:
        assert defs.resolve_schedule_def(f"{domain}_daily_tables_schedule").cron_schedule == "0 6 * * *"


def materialize_with_check(instance: DagsterInstance, key: AssetKey, day: str, passed: bool) -> None:
    """What a bronze run records: the day's materialization, then its blocking checks pointing at it."""
    instance.report_runless_asset_event(AssetMaterialization(key, partition=day))
    (record,) = instance.fetch_materializations(AssetRecordsFilter(asset_key=key, asset_partitions=[day]), 1).records
    for check_name in CATALOG[TableKey(*key.path)].check_names:
        instance.report_runless_asset_event(
            AssetCheckEvaluation(
                asset_key=key,
                check_name=check_name,
                passed=passed,
                severity=AssetCheckSeverity.ERROR,
                partition=day,
                blocking=True,
                target_materialization_data=AssetCheckEvaluationTargetMaterializationData(
                    storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
                ),
            )
        )


def test_a_failed_blocking_check_stops_the_chain_for_its_day() -> None:
    bronze, silver = AssetKey(["bronze", "airlines"]), AssetKey(["silver", "airlines"])
    with DagsterInstance.ephemeral() as instance:
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        materialize_with_check(instance, bronze, "2013-03-05", passed=False)
        materialize_with_check(instance, bronze, "2013-03-06", passed=True)
        # Checks are partitioned like their assets: only the day whose check failed is held.
        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert second.get_requested_partitions(silver) == {"2013-03-06"}


def start_landing_run(instance: DagsterInstance, key: AssetKey, day: str) -> DagsterRun:
    """A started run that plans to materialize `day` of `key`, as a landing sensor's run does."""
    run = instance.add_run(
        DagsterRun(
            job_name="__ASSET_JOB",
            run_id=make_new_run_id(),
            status=DagsterRunStatus.STARTED,
            asset_selection=frozenset({key}),
            tags={"dagster/partition": day},
        )
    )
    instance.report_dagster_event(
        DagsterEvent(
            DagsterEventType.ASSET_MATERIALIZATION_PLANNED.value,
            job_name=run.job_name,
            event_specific_data=AssetMaterializationPlannedData(key, partition=day),
        ),
        run_id=run.run_id,
    )
    return run


def test_a_day_is_refined_once_all_its_landing_runs_have_finished() -> None:
    airlines, flights_key = AssetKey(["bronze", "airlines"]), AssetKey(["bronze", "flights"])
    silver_airlines = AssetKey(["silver", "airlines"])
    with DagsterInstance.ephemeral() as instance:
        cursor = evaluate_automation_conditions(defs=defs, instance=instance).cursor
        materialize_with_check(instance, airlines, "2013-03-06", passed=True)
        materialize_with_check(instance, airlines, "2013-03-07", passed=True)
        landing = start_landing_run(instance, flights_key, "2013-03-06")
        held = evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        # Only the day whose flights are still landing waits; the other day is refined at once.
        assert held.get_requested_partitions(silver_airlines) == {"2013-03-07"}
        instance.report_dagster_event(
            DagsterEvent(DagsterEventType.RUN_SUCCESS.value, job_name=landing.job_name), run_id=landing.run_id
        )
        settled = evaluate_automation_conditions(defs=defs, instance=instance, cursor=held.cursor)
        assert settled.get_requested_partitions(silver_airlines) == {"2013-03-06"}
