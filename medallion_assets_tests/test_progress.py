"""`medallion run` shows people one line per table and Dagster's event stream only with --verbose."""

from __future__ import annotations

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    DagsterInstance,
    Definitions,
    MaterializeResult,
    asset,
    define_asset_job,
)

from medallion_assets.framework.report import Meta
from medallion_assets.orchestration.progress import progress_logger
from medallion_assets.orchestration.reporting import FailureWithChecks


@asset(key=["bronze", "things"], check_specs=[AssetCheckSpec("landing_delivered", asset=["bronze", "things"])])
def bronze_things(context) -> MaterializeResult:
    context.log.info("starting local Spark")
    context.log.debug("a detail nobody asked for")
    return MaterializeResult(
        metadata={Meta.ROWS_OUT: 1234, Meta.PARTITION_WINDOW: "2013-01-01"},
        check_results=[AssetCheckResult(check_name="landing_delivered", passed=True)],
    )


@asset(
    key=["silver", "things"],
    deps=[bronze_things],
    check_specs=[AssetCheckSpec("quarantine_rate", asset=["silver", "things"])],
)
def silver_things():
    yield AssetCheckResult(check_name="quarantine_rate", passed=False)
    raise FailureWithChecks("silver/things 2013-01-01 was not written: quarantine_rate failed", [])


def test_one_line_per_table_and_the_failure_in_one_line(capsys) -> None:
    job = (
        Definitions(assets=[bronze_things, silver_things], jobs=[define_asset_job("things")])
        .resolve_job_def("things")
        .with_logger_defs({"progress": progress_logger})
    )
    with DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(
            run_config={"loggers": {"progress": {}}}, instance=instance, raise_on_error=False
        )
    assert not result.success
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "  starting local Spark"
    assert lines[1].startswith("✓ bronze/things 2013-01-01 (1,234 rows) in ")
    assert lines[2].startswith("✗ silver/things failed after ") and "was not written" in lines[2]
    assert len(lines) == 3, lines
