"""MEDALLION_TARGET=databricks against the local Databricks emulator: same tables, same checks, same counts."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterEventType,
    DagsterInstance,
    Failure,
    SkipReason,
    build_sensor_context,
    materialize,
)

from medallion_assets.definitions import maintenance_assets_of, partitions_of, table_assets
from medallion_assets.domains import DOMAIN_OF
from medallion_assets.domains.flights.landing import FLIGHTS, stage
from medallion_assets.framework.landing import folder_fingerprint
from medallion_assets.framework.maintenance import MaintenanceMeta
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.orchestration.asset_factory import build_assets
from medallion_assets.orchestration.automation import landing_sensor
from medallion_assets.orchestration.compute import LocalSparkCompute
from medallion_assets.orchestration.databricks import DatabricksCompute
from medallion_assets.orchestration.jobs import partition_range_tags
from medallion_assets.runtime.bundle import bundle_document
from medallion_assets.runtime.protocol import COMPUTE_TAG, PARTITION_START, TARGET_TAG
from medallion_assets_tests import remote_test_domain as meters
from medallion_assets_tests.databricks_emulator import DatabricksEmulator
from medallion_assets_tests.emulated_driver import PRELOAD
from medallion_assets_tests.support import TWO_DAYS, check_evaluations, materialization_metadata, sorted_rows, wait_for

REPO = Path(__file__).resolve().parents[1]
TOKEN = "dapi-emulated-0123456789abcdef"
CHAIN = [AssetKey(["bronze", "airlines"]), AssetKey(["silver", "airlines"]), AssetKey(["gold", "dim_carrier"])]
WINDOW = PartitionWindow(date(2013, 1, 1), date(2013, 1, 3))
# Run-specific, and `_landed_at` is the modification time of the Volume copy of each landed file.
AUDIT = ("_ingested_at", "_run_id", "_landed_at")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("databricks")
    landing = root / "Volumes/main/landing/files"
    stage(landing, WINDOW, progress=False)
    task_env = {
        "MEDALLION_SHUFFLE_PARTITIONS": "2",
        "MEDALLION_SPARK_MASTER": "local[2]",
        PRELOAD: "medallion_assets_tests.remote_test_domain:register",
    }
    variables = {
        "landing_volume": str(landing),
        "pipes_volume": str(root / "Volumes/main/dagster/pipes"),
        "table_root": str(root / "external"),
    }
    meters_bundle = root / "meters.yml"
    meters_bundle.write_text(yaml.safe_dump(bundle_document({meters.DOMAIN: meters.TABLES})))
    with DatabricksEmulator(root, token=TOKEN, task_env=task_env) as emulator:
        emulator.deploy_bundle(REPO / "databricks.yml", target="dev", variables=variables)
        # Production jobs in the same workspace carry the same domain and compute tags; Dagster must not pick them.
        emulator.deploy_bundle(
            REPO / "databricks.yml", target="prod", variables={**variables, "service_principal": "sp-1"}
        )
        emulator.deploy_bundle(meters_bundle, target="dev", variables=variables)
        yield emulator, root


@pytest.fixture
def meters_domain(monkeypatch: pytest.MonkeyPatch):
    """The test-only meters domain, known to this process for the length of one test."""
    for table in meters.TABLES:
        monkeypatch.setitem(DOMAIN_OF, table.key, meters.DOMAIN)
    return build_assets("meters", meters.TABLES, partitions_of["flights"])


def databricks_target(emulator: DatabricksEmulator, root: Path) -> DatabricksCompute:
    return DatabricksCompute(
        host=emulator.host,
        token=TOKEN,
        pipes_volume=str(root / "Volumes/main/dagster/pipes"),
        landing_volume=str(root / "Volumes/main/landing/files"),
        poll_interval_seconds=0.3,
    )


def run_chain(compute, selection, window: PartitionWindow = WINDOW, raise_on_error: bool = True, assets=None):
    return materialize(
        table_assets if assets is None else assets,
        resources={"compute": compute},
        selection=selection,
        tags=partition_range_tags(window),
        raise_on_error=raise_on_error,
    )


def test_bronze_to_gold_on_databricks_equals_the_local_path(spark, workspace, lakehouse_two_days) -> None:
    emulator, root = workspace
    calls_before = sum(emulator.calls.values())
    remote = run_chain(databricks_target(emulator, root), CHAIN)
    launches = sum(1 for run in emulator.runs.values() if run.job_id is not None)
    assert remote.success and launches == len(CHAIN)
    # A single-run backfill of two days is one launch per asset, with the window passed explicitly.
    assert all(run.job_parameters["partition_end"] == "2013-01-02" for run in emulator.runs.values())
    calls_per_launch = (sum(emulator.calls.values()) - calls_before) / launches

    # The local path built the same two days from the same staged files: the suite's shared lakehouse.
    local, local_home = lakehouse_two_days.result, lakehouse_two_days.home
    assert (WINDOW.start.isoformat(), WINDOW.last_day.isoformat()) == TWO_DAYS
    for key in CHAIN:
        layer, name = key.path
        remote_rows = spark.read.format("delta").load(str(root / "external/warehouse" / layer / name))
        local_rows = spark.read.format("delta").load(str(local_home / "warehouse" / layer / name))
        assert sorted_rows(remote_rows, drop=AUDIT) == sorted_rows(local_rows, drop=AUDIT), key
        remote_meta = materialization_metadata(remote, layer, name)
        local_meta = materialization_metadata(local, layer, name)
        for count in ("rows_in", "rows_out"):
            assert remote_meta[count] == local_meta[count], (key, count)
        assert remote_meta["databricks_run_url"].startswith(emulator.host)
    logs = "".join(path.read_text() for path in (root / "runs").rglob("*.log"))
    assert TOKEN not in logs and TOKEN not in "".join(map(repr, remote.all_events))
    remote_checks = {k: e.passed for k, e in check_evaluations(remote).items()}
    chain = {key.to_user_string() for key in CHAIN}
    local_checks = {k: e.passed for k, e in check_evaluations(local).items() if k[0] in chain}
    assert remote_checks == local_checks and all(remote_checks.values())
    # The task code (framework, domains, runtime) never loads Dagster: the wheel does not require it.
    assert all(not task.orchestration_modules for task in emulator.task_runs.values())
    print(f"\nDatabricks API calls per partition launch: {calls_per_launch:.1f}")


def test_table_maintenance_runs_as_its_bundle_task_over_pipes(workspace) -> None:
    emulator, root = workspace
    bronze = AssetKey(["bronze", "airlines"])
    assert run_chain(databricks_target(emulator, root), [bronze]).success
    earlier = set(emulator.runs)
    result = materialize(
        maintenance_assets_of["flights"],
        resources={"compute": databricks_target(emulator, root)},
        selection=[AssetKey(["maintenance", *bronze.path])],
    )
    assert result.success
    (run,) = _remote_runs_of(emulator, "maintain_bronze_airlines", earlier)
    assert run.result_state == "SUCCESS"
    metadata = materialization_metadata(result, "maintenance", "bronze__airlines")
    assert metadata[f"airlines/{MaintenanceMeta.FILES_AFTER}"] == 2  # one file per landed day
    assert metadata[MaintenanceMeta.RETAIN_HOURS] == 168
    assert metadata["databricks_run_url"].startswith(emulator.host)
    commits = (root / "external/warehouse/bronze/airlines/_delta_log").glob("*.json")
    actions = [json.loads(line) for commit in commits for line in commit.read_text().splitlines()]
    operations = {action["commitInfo"]["operation"] for action in actions if "commitInfo" in action}
    # One file per day and no Z-order declared: OPTIMIZE finds nothing to compact and commits nothing.
    assert metadata[f"airlines/{MaintenanceMeta.FILES_REWRITTEN}"] == 0
    assert {"VACUUM START", "VACUUM END"} <= operations


def test_a_remote_failure_shows_the_remote_error_in_dagster(workspace) -> None:
    emulator, root = workspace
    launched_before = len(emulator.runs)
    missing_day = PartitionWindow.single_day(date(2013, 1, 9))
    result = run_chain(
        databricks_target(emulator, root), [AssetKey(["bronze", "weather"])], missing_day, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.user_failure_data.description
    assert "no landed weather data for 1 day(s) of 2013-01-09" in message
    assert "Databricks run" in message
    assert len(emulator.runs) == launched_before + 1  # a data error is not retried


def _materialized(result, key: AssetKey) -> bool:
    return any(event.is_step_materialization and event.asset_key == key for event in result.all_events)


def _remote_runs_of(emulator: DatabricksEmulator, task: str, after: set[int]) -> list:
    return [run for run in emulator.runs.values() if run.run_id not in after and run.tasks[0].task_key == task]


def _land_meter_readings(root: Path, day: date, lines: str) -> None:
    folder = root / "Volumes/main/landing/files" / meters.SOURCE.name / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "readings.csv").write_text("meter,kwh\n" + lines)


def _silver_fails_after_its_bronze(emulator, root: Path, table: str, day: date, assets=None) -> str:
    """Build bronze then silver `table` for `day` remotely; bronze lands, silver fails unrecorded. Its error."""
    bronze, silver = AssetKey(["bronze", table]), AssetKey(["silver", table])
    result = run_chain(
        databricks_target(emulator, root), [bronze, silver], PartitionWindow.single_day(day), False, assets
    )
    assert _materialized(result, bronze) and not _materialized(result, silver)
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    return failure.step_failure_data.user_failure_data.description


def test_a_remote_fail_rule_fails_the_step_without_a_materialization(workspace, meters_domain) -> None:
    emulator, root = workspace
    day = date(2013, 1, 5)
    _land_meter_readings(root, day, "M1,10\nM2,-3\nM3,7\n")
    earlier = set(emulator.runs)
    message = _silver_fails_after_its_bronze(emulator, root, "meter_readings", day, meters_domain)
    assert "FailedRules" in message and "kwh_not_negative (1 rows)" in message
    (run,) = _remote_runs_of(emulator, "silver_meter_readings", earlier)  # a data error is not retried
    assert run.result_state == "FAILED"
    assert "FailedRules" in run.tasks[0].error and "Traceback" in run.tasks[0].error_trace


def test_a_remote_failed_blocking_check_fails_the_step_without_a_materialization(workspace) -> None:
    emulator, root = workspace
    day = date(2013, 1, 7)
    landing = root / "Volumes/main/landing/files"
    stage(landing, PartitionWindow.single_day(day), progress=False)
    # Upstream renamed a column: bronze keeps the file as received, silver's source_schema check must fail.
    (weather_file,) = (landing / "weather" / day.isoformat()).glob("*.csv")
    header, body = weather_file.read_text().split("\n", 1)
    weather_file.write_text(header.replace("temp", "temperature_f", 1) + "\n" + body)
    earlier = set(emulator.runs)
    message = _silver_fails_after_its_bronze(emulator, root, "weather", day)
    assert "BlockingChecksFailed" in message and "source_schema" in message and "temp" in message
    (run,) = _remote_runs_of(emulator, "silver_weather", earlier)
    assert run.result_state == "FAILED"
    for source in landing.iterdir():  # the landing sensor's test expects only the module's own days
        shutil.rmtree(source / day.isoformat(), ignore_errors=True)

    # The bundle's own schedule starts tasks without Pipes: the same failed check fails the task there too.
    job = databricks_target(emulator, root).deployed_job("flights")
    standalone = emulator.client_run_now(job.job_id, "silver_weather", {PARTITION_START: day.isoformat()})
    assert standalone.result_state == "FAILED" and "BlockingChecksFailed" in (standalone.tasks[0].error or "")


def test_a_standalone_task_on_a_day_that_never_landed_fails(workspace) -> None:
    emulator, root = workspace
    job = databricks_target(emulator, root).deployed_job("flights")
    # A python_wheel_task ignores the entry point's return value; only raising fails it.
    run = emulator.client_run_now(job.job_id, "bronze_airlines", {PARTITION_START: "2013-01-09"})
    assert run.result_state == "FAILED"
    assert "MissingLanding: no landed airlines data for 1 day(s) of 2013-01-09" in (run.tasks[0].error or "")


def test_a_remote_crash_is_retried_and_never_recorded_as_a_materialization(workspace) -> None:
    emulator, root = workspace
    emulator.crash_tasks.add("gold_dim_date")
    earlier = set(emulator.runs)
    try:
        result = run_chain(databricks_target(emulator, root), [AssetKey(["gold", "dim_date"])], raise_on_error=False)
    finally:
        emulator.crash_tasks.clear()
    assert not _materialized(result, AssetKey(["gold", "dim_date"]))
    runs = _remote_runs_of(emulator, "gold_dim_date", earlier)
    # The task never reported why, so the crash may be transient: the RetryPolicy's two retries ran.
    assert len(runs) == 3 and all(run.tasks[0].life_cycle_state == "INTERNAL_ERROR" for run in runs)
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "the cluster driver exited" in failure.step_failure_data.user_failure_data.description


def test_dagster_triggers_the_job_of_its_own_target_and_compute(workspace) -> None:
    emulator, root = workspace
    job = databricks_target(emulator, root).deployed_job("flights")
    settings = emulator.jobs[job.job_id]["settings"]
    assert settings["name"].startswith("[dev ") and settings["tags"][TARGET_TAG] == "dev"
    assert settings["tags"][COMPUTE_TAG] == "serverless"
    prod = databricks_target(emulator, root).model_copy(update={"bundle_target": "prod", "compute": "classic"})
    prod_job = prod.deployed_job("flights")
    assert emulator.jobs[prod_job.job_id]["settings"]["tags"][TARGET_TAG] == "prod"
    assert job.timeout_of("bronze_flights") <= job.timeout_seconds


def test_another_users_dev_job_is_never_picked_and_ambiguity_names_the_candidates(workspace) -> None:
    emulator, root = workspace
    mine = databricks_target(emulator, root).deployed_job("flights")
    theirs = emulator._create_job(emulator.jobs[mine.job_id]["settings"] | {"name": "[dev other] medallion_flights"})
    emulator.jobs[theirs]["creator_user_name"] = "other@example.com"
    try:
        assert databricks_target(emulator, root).deployed_job("flights").job_id == mine.job_id
        second = emulator._create_job(emulator.jobs[mine.job_id]["settings"])
        try:
            with pytest.raises(Failure, match=rf"found 2 Databricks jobs.*{mine.job_id}.*{second}"):
                databricks_target(emulator, root).deployed_job("flights")
        finally:
            del emulator.jobs[second]
    finally:
        del emulator.jobs[theirs]


def test_a_task_past_its_timeout_fails_without_a_retry(workspace) -> None:
    emulator, root = workspace
    compute = databricks_target(emulator, root)
    job_settings = emulator.jobs[compute.deployed_job("flights").job_id]["settings"]
    task = next(t for t in job_settings["tasks"] if t["task_key"] == "bronze_planes")
    deployed_timeout = task["timeout_seconds"]
    task["timeout_seconds"] = 1
    emulator.hang_tasks.add("bronze_planes")
    earlier = set(emulator.runs)
    try:
        result = run_chain(compute, [AssetKey(["bronze", "planes"])], raise_on_error=False)
    finally:
        emulator.hang_tasks.discard("bronze_planes")
        task["timeout_seconds"] = deployed_timeout
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "TIMEDOUT" in failure.step_failure_data.user_failure_data.description
    (run,) = _remote_runs_of(emulator, "bronze_planes", earlier)  # a timeout would time out again
    assert run.result_state == "TIMEDOUT"


def test_a_run_the_workspace_never_ends_is_cancelled_at_the_client_deadline(workspace) -> None:
    emulator, root = workspace
    compute = databricks_target(emulator, root).model_copy(update={"start_grace_seconds": 0.5})
    job = dataclasses.replace(compute.deployed_job("flights"), task_timeouts={"bronze_planes": 0.5})
    # No task timeout in the workspace: only Dagster's own deadline can end this wait.
    emulator.hang_tasks.add("bronze_planes")
    try:
        run_id = compute.client.jobs.run_now(job_id=job.job_id, only=["bronze_planes"]).bind()["run_id"]
        with pytest.raises(Failure, match=r"did not end within 0 s .* it has been cancelled"):
            compute._wait(run_id, job, "bronze_planes", expected_seconds=None)
    finally:
        emulator.hang_tasks.discard("bronze_planes")
    assert wait_for(lambda: emulator.runs[run_id].result_state == "CANCELED", timeout=30)


def test_an_infrastructure_failure_is_retried_then_reports_its_error(workspace) -> None:
    emulator, root = workspace
    emulator.fail_tasks["gold_dim_date"] = "ClusterTerminated: the driver was lost"
    try:
        before = len(emulator.runs)
        result = run_chain(databricks_target(emulator, root), [AssetKey(["gold", "dim_date"])], raise_on_error=False)
    finally:
        emulator.fail_tasks.clear()
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "ClusterTerminated: the driver was lost" in failure.step_failure_data.user_failure_data.description
    assert len(emulator.runs) == before + 3  # the first attempt and the RetryPolicy's two retries


def test_injected_429_and_503_responses_are_retried(workspace) -> None:
    emulator, root = workspace
    emulator.inject_status(429, times=2, path_contains="/jobs/run-now")
    emulator.inject_status(503, times=2, path_contains="/jobs/runs/get")
    result = run_chain(databricks_target(emulator, root), [AssetKey(["gold", "dim_date"])])
    assert result.success
    assert emulator.injected[429] == 2 and emulator.injected[503] == 2


def test_landing_sensors_watch_the_volume_through_the_files_api(workspace) -> None:
    emulator, root = workspace
    landing = root / "Volumes/main/landing/files"
    compute = databricks_target(emulator, root)
    sensor = landing_sensor("flights", [FLIGHTS], partitions_of["flights"])
    with DagsterInstance.ephemeral() as instance:
        # The remote bronze run fingerprints the Volume through its FUSE mount; the sensor, through the
        # Files API. They must agree, or every ingested day would be ingested again.
        instance.report_runless_asset_event(
            AssetMaterialization(
                AssetKey(["bronze", "flights"]),
                partition="2013-01-01",
                metadata={"landing_fingerprints": {"2013-01-01": folder_fingerprint(landing / "flights/2013-01-01")}},
            )
        )
        listed_before = emulator.calls["GET /api/2.0/fs/directories"]
        result = sensor(build_sensor_context(instance=instance, resources={"compute": compute}))
    assert not isinstance(result, SkipReason), result.skip_message
    assert [r.partition_key for r in result.run_requests] == ["2013-01-02"]
    assert emulator.calls["GET /api/2.0/fs/directories"] > listed_before


@pytest.mark.parametrize("interrupted", ["while_polling", "while_run_now_is_in_flight"])
def test_cancelling_the_dagster_run_cancels_the_databricks_run(workspace, tmp_path: Path, interrupted: str) -> None:
    emulator, root = workspace
    emulator.hang_tasks.add("bronze_planes")
    if interrupted == "while_run_now_is_in_flight":
        # The workspace starts the run at once, but its id reaches Dagster only after the interrupt.
        emulator.delay_responses(60, times=1, path_contains="/jobs/run-now")
    submitted_before = emulator.calls["POST /api/2.2/jobs/run-now"]
    earlier = set(emulator.runs)
    script = tmp_path / "launch.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from dagster import AssetKey, materialize
            from medallion_assets.definitions import table_assets
            from medallion_assets.framework.partitions import PartitionWindow
            from medallion_assets.orchestration.jobs import partition_range_tags
            from medallion_assets.orchestration.databricks import DatabricksCompute

            compute = DatabricksCompute(host={emulator.host!r}, token={TOKEN!r},
                                        pipes_volume={str(root / "Volumes/main/dagster/pipes")!r},
                                        poll_interval_seconds=0.3)
            materialize(table_assets, resources={{"compute": compute}}, selection=[AssetKey(["bronze", "planes"])],
                        tags=partition_range_tags(PartitionWindow.for_keys("2013-01-01", "2013-01-01")),
                        raise_on_error=False)
            """
        )
    )
    process = subprocess.Popen([sys.executable, str(script)], env=os.environ.copy())
    try:
        hanging = lambda: [  # noqa: E731
            r
            for r in list(emulator.runs.values())
            if r.run_id not in earlier and r.tasks[0].task_key == "bronze_planes"
        ]
        assert wait_for(lambda: hanging() and hanging()[0].life_cycle_state == "RUNNING", timeout=120)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
        run = hanging()[0]
        assert wait_for(lambda: run.life_cycle_state == "TERMINATED", timeout=30)
        assert run.result_state == "CANCELED" and run.cancel.is_set()
        assert len(hanging()) == 1  # the interrupt is not retried into a fresh Databricks run
        # The cancel repeats run-now with the run's idempotency token, which names the run without starting one.
        assert emulator.calls["POST /api/2.2/jobs/run-now"] == submitted_before + 2
    finally:
        process.kill()
        emulator.hang_tasks.discard("bronze_planes")


def test_the_token_never_appears_in_events_run_config_errors_or_logs(workspace, monkeypatch, caplog) -> None:
    emulator, root = workspace
    leaked = "dapi-this-token-must-never-be-printed"
    monkeypatch.setenv("DATABRICKS_HOST", emulator.host)
    monkeypatch.setenv("DATABRICKS_TOKEN", leaked)
    monkeypatch.setenv("MEDALLION_PIPES_VOLUME", str(root / "Volumes/main/dagster/pipes"))
    caplog.set_level("DEBUG")
    result = run_chain(DatabricksCompute.from_env(), [AssetKey(["gold", "dim_date"])], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert "refused the credentials" in failure.step_failure_data.user_failure_data.description
    attempts = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY]
    assert not attempts  # a rejected token is not retried
    surfaces = [
        "".join(map(repr, result.all_events)),
        repr(result.dagster_run.run_config),
        repr(result.dagster_run.tags),
        caplog.text,
        "".join(path.read_text() for path in (root / "runs").rglob("*.log")),
    ]
    assert all(leaked not in surface for surface in surfaces)


def test_definitions_select_the_databricks_target_from_the_environment(monkeypatch) -> None:
    from medallion_assets.orchestration.targets import compute_target_from_env

    monkeypatch.setenv("MEDALLION_TARGET", "databricks")
    monkeypatch.setenv("DATABRICKS_HOST", "https://example.cloud.databricks.com")
    monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
    target = compute_target_from_env()
    assert isinstance(target, DatabricksCompute)
    # The token stays an EnvVar reference: its value is read at run time and never stored in config.
    assert TOKEN not in repr(target) and TOKEN not in repr(target.model_dump())
    monkeypatch.setenv("MEDALLION_TARGET", "local")
    assert isinstance(compute_target_from_env(), LocalSparkCompute)
    assert AssetSelection.all()  # asset definitions are the same objects under both targets
