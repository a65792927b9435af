"""Landing sensors and downstream automation, evaluated by Dagster on a real instance."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckSeverity,
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_sensor_context,
    evaluate_automation_conditions,
)

from medallion_assets.automation import FOLLOWS_UPSTREAM, landing_sensor
from medallion_assets.definitions import defs
from medallion_assets.domains import flights
from medallion_assets.domains.flights.landing import AIRLINES


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEDALLION_HOME", str(tmp_path))
    return tmp_path


def land(home: Path, day: str, content: str = "carrier,name\nAA,American Airlines Inc.\n") -> Path:
    folder = home / "landing/airlines" / day
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "airlines.csv").write_text(content)
    return folder / "airlines.csv"


def evaluate(cursor: str | None = None):
    sensor = landing_sensor(AIRLINES, flights.PARTITIONS)
    with DagsterInstance.ephemeral() as instance:
        context = build_sensor_context(instance=instance, cursor=cursor)
        result = sensor(context)
    return result


def test_new_days_are_requested_once_with_fingerprint_run_keys(home: Path) -> None:
    land(home, "2013-01-01")
    land(home, "2013-01-02")
    first = evaluate()
    assert [r.partition_key for r in first.run_requests] == ["2013-01-01", "2013-01-02"]
    assert all(isinstance(r, RunRequest) and r.run_key.startswith("airlines:2013-01-0") for r in first.run_requests)
    assert {tuple(key.path) for r in first.run_requests for key in r.asset_selection} == {("bronze", "airlines")}
    # The cursor is what Dagster stores for the sensor, so a restarted daemon resumes from it.
    again = evaluate(first.cursor)
    assert isinstance(again, SkipReason) and "no new or changed files" in again.skip_message


def test_a_changed_or_late_file_triggers_its_partition_again(home: Path) -> None:
    land(home, "2013-01-01")
    first = evaluate()
    land(home, "2013-01-01", "carrier,name\nAA,American Airlines Group\n")
    os.utime(home / "landing/airlines/2013-01-01/airlines.csv", ns=(1, 10**18))
    (home / "landing/airlines/2013-01-01/late.csv").write_text("carrier,name\nUA,United\n")
    second = evaluate(first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["2013-01-01"]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_malformed_folders_are_reported_not_crashed_on(home: Path) -> None:
    for name in ("2013-02-30", "yesterday", "2019-01-01"):
        (home / "landing/airlines" / name).mkdir(parents=True)
    result = evaluate()
    assert isinstance(result, SkipReason)
    assert "3 malformed folder(s)" in result.skip_message
    assert "2013-02-30" in result.skip_message


def test_nothing_landed_is_a_skip_reason(home: Path) -> None:
    result = evaluate()
    assert isinstance(result, SkipReason) and "nothing has landed yet" in result.skip_message


def test_refined_tables_follow_upstream_and_bronze_waits_for_sensors() -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        condition = graph.get(key).automation_condition
        assert (condition is None) == (key.path[0] == "bronze"), key
        if condition is not None:
            assert condition.get_label() == FOLLOWS_UPSTREAM.get_label()
    assert {s.name for s in defs.sensors} == {
        f"{s}_landing_sensor" for s in ("flights", "weather", "airlines", "airports", "planes")
    }
    assert defs.resolve_schedule_def("daily_tables_schedule").cron_schedule == "0 6 * * *"


def test_a_failed_blocking_check_stops_the_chain() -> None:
    bronze, silver = AssetKey(["bronze", "airlines"]), AssetKey(["silver", "airlines"])
    with DagsterInstance.ephemeral() as instance:
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        instance.report_runless_asset_event(AssetMaterialization(bronze, partition="2013-03-05"))
        instance.report_runless_asset_event(
            AssetCheckEvaluation(
                asset_key=bronze,
                check_name="landing_reconciliation",
                passed=False,
                severity=AssetCheckSeverity.ERROR,
                partition="2013-03-05",
            )
        )
        blocked = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert blocked.get_num_requested(silver) == 0

        instance.report_runless_asset_event(AssetMaterialization(bronze, partition="2013-03-06"))
        instance.report_runless_asset_event(
            AssetCheckEvaluation(
                asset_key=bronze, check_name="landing_reconciliation", passed=True, partition="2013-03-06"
            )
        )
        follows = evaluate_automation_conditions(defs=defs, instance=instance, cursor=blocked.cursor)
        # Dagster judges blocking checks by the asset's latest check result, so once the check passes
        # again the held day follows too.
        assert follows.get_requested_partitions(silver) == {"2013-03-05", "2013-03-06"}
