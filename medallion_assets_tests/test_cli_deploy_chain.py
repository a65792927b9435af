"""The whole chain: the real Databricks CLI deploys the bundle to the emulator, Dagster runs the job the CLI
created with run-now, and the emulated cluster executes the wheel the CLI built and uploaded."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from dagster import AssetKey, materialize

from medallion_assets.definitions import table_assets
from medallion_assets.domains.flights.landing import stage
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.orchestration.databricks import DatabricksCompute
from medallion_assets.orchestration.jobs import partition_range_tags
from medallion_assets.runtime.protocol import COMPUTE_TAG, DOMAIN_TAG
from medallion_assets_tests.databricks_emulator import DatabricksEmulator
from medallion_assets_tests.emulated_driver import CODE_FROM
from medallion_assets_tests.support import materialization_metadata
from medallion_assets_tests.test_bundle_cli import CLI, NO_CLI, assert_clean, command_env, copy_of_the_repository, run

TOKEN = "dapi-emulated-chain"
DAY = PartitionWindow.single_day(date(2013, 1, 1))
CHAIN = [AssetKey(["bronze", "airlines"]), AssetKey(["silver", "airlines"])]


@pytest.mark.skipif(CLI is None, reason=NO_CLI)
def test_the_cli_deploys_to_the_emulator_and_dagster_runs_the_uploaded_wheel(spark, tmp_path: Path) -> None:
    root = tmp_path / "workspace"
    landing, pipes = root / "Volumes/main/landing/files", root / "Volumes/main/dagster/pipes"
    stage(landing, DAY, progress=False)
    home = tmp_path / "home"
    home.mkdir()
    bundle = copy_of_the_repository(tmp_path / "bundle")
    task_env = {"MEDALLION_SHUFFLE_PARTITIONS": "2", "MEDALLION_SPARK_MASTER": "local[2]"}
    with DatabricksEmulator(root, token=TOKEN, task_env=task_env) as emulator:
        variables = {"landing_volume": landing, "pipes_volume": pipes, "table_root": root / "external"}
        deploy = [CLI, "bundle", "deploy", "-t", "dev", *(f"--var={k}={v}" for k, v in variables.items())]
        assert_clean(run(deploy, cwd=bundle, env=command_env(home, emulator.host, TOKEN)), "bundle deploy")
        (serverless_job,) = [
            job_id
            for job_id, job in emulator.jobs.items()
            if job["settings"]["tags"][COMPUTE_TAG] == "serverless" and job["settings"]["tags"][DOMAIN_TAG] == "flights"
        ]
        (wheel,) = emulator.jobs[serverless_job]["settings"]["environments"][0]["spec"]["dependencies"]
        assert wheel.startswith("/Workspace/") and wheel in emulator.workspace_files  # the uploaded artifact

        compute = DatabricksCompute(
            host=emulator.host, token=TOKEN, pipes_volume=str(pipes), landing_volume=str(landing)
        )
        result = materialize(
            table_assets, resources={"compute": compute}, selection=CHAIN, tags=partition_range_tags(DAY)
        )
        assert result.success
        assert {run.job_id for run in emulator.runs.values()} == {serverless_job}
        drivers = "".join(log.read_text() for log in (root / "runs/drivers").glob("*.log"))
        (code_from,) = {line.removeprefix(CODE_FROM).strip() for line in drivers.splitlines() if CODE_FROM in line}
        assert Path(code_from).is_relative_to(root / "libraries"), code_from  # the wheel's code, not this checkout
    assert materialization_metadata(result, "silver", "airlines")["rows_out"] == 16
    silver = spark.read.format("delta").load(str(root / "external/warehouse/silver/airlines"))
    assert silver.count() == 16
