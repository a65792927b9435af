"""The Dagster code location: every domain's tables as assets, with the compute target chosen once.

Each domain (a folder under `domains/`) brings its tables, its landing sources and the span of days it covers;
nothing here names one.
"""

import warnings

from dagster import AssetSelection, BetaWarning, Definitions, PreviewWarning, in_process_executor

from medallion_assets.domains import DOMAINS
from medallion_assets.orchestration.alerts import AlertSink, failure_alerts_sensor, freshness_alerts_sensor
from medallion_assets.orchestration.asset_factory import build_assets, build_maintenance_asset, daily_partitions
from medallion_assets.orchestration.automation import (
    daily_schedule,
    follows_upstream,
    landing_sensors,
    maintenance_schedule,
    refined_tables_automation,
)
from medallion_assets.orchestration.jobs import domain_jobs
from medallion_assets.orchestration.targets import compute_target_from_env

# We use partitioned asset checks (preview), single-run backfills and automation on the code server (beta) on
# purpose (docs/architecture.md says why). Their warnings, raised while the definitions are built, would greet
# every `dagster dev` and `medallion run` without telling the user anything they can act on.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", PreviewWarning)
    warnings.simplefilter("ignore", BetaWarning)
    partitions_of = {name: daily_partitions(domain.PARTITION_DAYS) for name, domain in DOMAINS.items()}
    assets_of = {
        name: build_assets(
            name, domain.TABLES, partitions_of[name], downstream_automation=follows_upstream(domain.LANDING_SOURCES)
        )
        for name, domain in DOMAINS.items()
    }
    table_assets = [asset for assets in assets_of.values() for asset in assets]
    maintenance_assets_of = {
        name: [build_maintenance_asset(table, name) for table in domain.TABLES] for name, domain in DOMAINS.items()
    }
    schedules = [
        *(daily_schedule(name, AssetSelection.assets(*assets_of[name]), partitions_of[name]) for name in DOMAINS),
        *(maintenance_schedule(name, maintenance_assets_of[name]) for name in DOMAINS),
    ]
    defs = Definitions(
        assets=[*table_assets, *(asset for assets in maintenance_assets_of.values() for asset in assets)],
        jobs=[
            *(job for name in DOMAINS for job in domain_jobs(name, assets_of[name])),
            *(job for job, _ in schedules),
        ],
        schedules=[schedule for _, schedule in schedules],
        sensors=[
            *(
                s
                for name, domain in DOMAINS.items()
                for s in landing_sensors(name, domain.LANDING_SOURCES, partitions_of[name])
            ),
            refined_tables_automation(["silver", "gold"]),
            failure_alerts_sensor(table_assets),
            freshness_alerts_sensor(table_assets),
        ],
        resources={"compute": compute_target_from_env(), "alerts": AlertSink()},
        # One process per run keeps one Spark JVM (or one Databricks client) for every step of the run.
        executor=in_process_executor,
    )
