"""The Dagster code location: every table's asset and checks, with the compute target chosen once."""

from dagster import Definitions, in_process_executor

from medallion_assets.automation import daily_schedule, follows_upstream, landing_sensors, refined_tables_automation
from medallion_assets.domains import flights
from medallion_assets.domains.flights.landing import LANDING_SOURCES
from medallion_assets.jobs import JOBS
from medallion_assets.orchestration.asset_factory import build_assets, daily_partitions
from medallion_assets.resources.targets import compute_target_from_env

partitions = daily_partitions(flights.PARTITION_DAYS)
table_assets = build_assets(flights.TABLES, partitions, downstream_automation=follows_upstream(LANDING_SOURCES))
daily_job, daily_tables_schedule = daily_schedule(partitions)

defs = Definitions(
    assets=table_assets,
    jobs=[*JOBS, daily_job],
    schedules=[daily_tables_schedule],
    sensors=[*landing_sensors(LANDING_SOURCES, partitions), refined_tables_automation(["silver", "gold"])],
    resources={"compute": compute_target_from_env()},
    # One process per run keeps one Spark JVM (or one Databricks client) for every step of the run.
    executor=in_process_executor,
)
