"""Operating the lakehouse daily: landing sensors, downstream automation and a schedule."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    AssetsDefinition,
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    AutomationContext,
    AutomationResult,
    DagsterInstance,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    PartitionsDefinition,
    RunRequest,
    ScheduleDefinition,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    build_schedule_from_partitioned_job,
    define_asset_job,
    sensor,
)

from medallion_assets.framework.landing import fingerprint
from medallion_assets.framework.partitions import InvalidPartitionKey, parse_partition_key
from medallion_assets.framework.report import Meta
from medallion_assets.framework.table import LandingSource
from medallion_assets.orchestration.compute import ComputeTarget

FOLLOWS_UPSTREAM = "follows upstream"


class DayLandingSettled(AutomationCondition):
    """True for the days that have no landing (bronze) run in progress, for any source.

    Sources of one day usually land together. Refining the day once they have all been ingested takes one
    Spark launch (on Databricks, one job run) for the day's silver and gold, rather than one per source,
    and gold is never built from a half-ingested day.
    """

    def __init__(self, landing_keys: Sequence[AssetKey]) -> None:
        self.landing_keys = tuple(landing_keys)

    @property
    def name(self) -> str:
        return "day_landing_settled"

    @property
    def description(self) -> str:
        return "no landing run of the same day is in progress"

    async def evaluate(self, context: AutomationContext) -> AutomationResult:
        candidates = context.candidate_subset
        if candidates.is_empty or not candidates.is_partitioned:
            return AutomationResult(context, candidates)
        busy_days: set[str] = set()
        for key in self.landing_keys:
            in_progress = await context.asset_graph_view.compute_run_in_progress_subset(key=key, from_subset=candidates)
            busy_days |= set(in_progress.expensively_compute_partition_keys())
        busy = candidates.compute_intersection_with_partition_keys(busy_days)
        return AutomationResult(context, candidates.compute_difference(busy))


def landing_asset_key(source: LandingSource) -> AssetKey:
    """The bronze table that a landing source's files are ingested into."""
    return AssetKey(["bronze", source.name])


def follows_upstream(sources: Sequence[LandingSource]) -> AutomationCondition:
    """The condition of every silver and gold table.

    A table follows its upstream partitions, any day of the year, once every upstream partition exists,
    nothing upstream is running, the day's landing has settled, and no upstream blocking check failed.
    `eager()` would only consider the latest day, and our data lands for past days too.
    """
    return (
        AutomationCondition.any_deps_updated().since_last_handled()
        & ~AutomationCondition.any_deps_missing()
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
        & DayLandingSettled([landing_asset_key(source) for source in sources])
        & AutomationCondition.all_deps_blocking_checks_passed()
    ).with_label(FOLLOWS_UPSTREAM)


def ingested_fingerprints(instance: DagsterInstance, asset_key: AssetKey, days: Sequence[str]) -> dict[str, str | None]:
    """The landing fingerprint that the latest materialization of each day's bronze partition read.

    A day ingested by a backfill or a manual run is not ingested again for the same files.
    """
    found: dict[str, str | None] = {}
    cursor = None
    while days and len(found) < len(days):
        page = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=asset_key, asset_partitions=list(days)), limit=1000, cursor=cursor
        )
        for record in page.records:  # newest first, so the first record of a day is its latest
            day = record.partition_key
            if day is None or day in found:
                continue
            materialization = record.asset_materialization
            recorded = materialization.metadata.get(Meta.LANDING_FINGERPRINTS) if materialization else None
            found[day] = recorded.value.get(day) if recorded is not None and isinstance(recorded.value, dict) else None
        if not page.has_more:
            break
        cursor = page.cursor
    return found


def _run_key(domain: str, day: str, fingerprints: dict[str, str]) -> str:
    digest = hashlib.sha256(json.dumps(fingerprints, sort_keys=True).encode()).hexdigest()[:20]
    return f"{domain}:{day}:{digest}"


def landing_sensor(
    domain: str, sources: Sequence[LandingSource], partitions_def: PartitionsDefinition
) -> SensorDefinition:
    """One sensor per domain: a day whose files land or change gets one run for all of that day's sources.

    Sources of one day usually land together, so the day is ingested by one run (one Spark start locally)
    instead of one per source; a source that changes alone gets a run of its own bronze table.
    """
    bronze_keys = {source.name: landing_asset_key(source) for source in sources}

    @sensor(
        name=f"{domain}_landing_sensor",
        description=f"Materializes a day of the {domain} bronze tables whose files land in "
        "<landing root>/<source>/<YYYY-MM-DD>/ or change there, one run per day (a static source's files, "
        "in <landing root>/<source>/, land with every day).",
        asset_selection=list(bronze_keys.values()),
        minimum_interval_seconds=15,
        default_status=DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: SensorEvaluationContext, compute: ComputeTarget) -> SensorResult | SkipReason:
        landing = compute.landing()
        seen: dict[str, dict[str, str]] = json.loads(context.cursor) if context.cursor else {}
        valid_keys = set(partitions_def.get_partition_keys())
        changed: dict[str, dict[str, str]] = {}  # source -> day -> fingerprint
        malformed: list[str] = []
        watched = [source for source in sources if landing.day_folders(source.name) is not None]
        if not watched:
            names = "|".join(bronze_keys)
            return SkipReason(f"nothing has landed yet: {landing.root}/<{names}> does not exist")
        landed: dict[str, dict[str, str]] = {}  # source -> day -> fingerprint
        for source in watched:
            if source.static:
                continue
            for folder in landing.day_folders(source.name) or []:
                try:
                    day = parse_partition_key(folder).isoformat()
                except InvalidPartitionKey as error:
                    malformed.append(f"{source.name}/{folder}: {error}")
                    continue
                if day not in valid_keys:
                    malformed.append(f"{source.name}/{folder}: outside the partitions of this domain")
                    continue
                # An existing folder with no file is a delivery too: its run fails loudly (landing_delivered)
                # instead of the day staying silently unbuilt.
                landed.setdefault(source.name, {})[day] = fingerprint(landing.entries(f"{source.name}/{folder}"))
        # A static source lands, as it stands, for every day the domain's dated sources landed.
        days = sorted({day for by_day in landed.values() for day in by_day})
        for source in watched:
            if source.static:
                current = fingerprint(landing.entries(source.name))
                landed[source.name] = dict.fromkeys(days, current)
        for name, by_day in landed.items():
            for day, current in by_day.items():
                if seen.get(name, {}).get(day) != current:
                    changed.setdefault(name, {})[day] = current
        pending: dict[str, dict[str, str]] = {}  # day -> source -> fingerprint
        for name, days in changed.items():
            already = ingested_fingerprints(context.instance, bronze_keys[name], sorted(days))
            for day, current in days.items():
                if already.get(day) != current:
                    pending.setdefault(day, {})[name] = current
        requests = [
            RunRequest(
                run_key=_run_key(domain, day, fingerprints),
                partition_key=day,
                asset_selection=[bronze_keys[name] for name in sorted(fingerprints)],
                tags={"medallion/domain": domain, "medallion/landed_sources": ",".join(sorted(fingerprints))},
            )
            for day, fingerprints in sorted(pending.items())
        ]
        for problem in malformed:
            context.log.warning(f"ignored landing folder {landing.root}/{problem}")
        for name, days in changed.items():
            seen.setdefault(name, {}).update(days)
        cursor = json.dumps(seen, sort_keys=True)
        if requests:
            return SensorResult(run_requests=requests, cursor=cursor)
        landed_days = len({day for days in seen.values() for day in days})
        reason = f"no new or changed files under {landing.root} ({landed_days} days already landed"
        reason += (
            f", {sum(map(len, changed.values()))} changed ones already ingested by earlier runs)" if changed else ")"
        )
        if malformed:
            reason += f"; {len(malformed)} malformed folder(s): " + "; ".join(malformed[:3])
        return SensorResult(skip_reason=reason, cursor=cursor)

    return _sensor


def daily_schedule(domain: str, selection: AssetSelection, partitions_def: PartitionsDefinition):
    """Materializes a domain's newest partition every day, for when nobody lands files."""
    job = define_asset_job(
        f"{domain}_daily_tables",
        selection=selection,
        partitions_def=partitions_def,
        description=f"Every {domain} table for one day; the daily schedule runs it for the newest day.",
    )
    return job, build_schedule_from_partitioned_job(job, hour_of_day=6, name=f"{domain}_daily_tables_schedule")


# Weekly, early on Sunday (UTC), when no daily build is due: OPTIMIZE's Z-order rewrites every file of a table, so
# running it more often costs more than the reads it speeds up on daily data, and VACUUM's seven days of retention
# make a weekly pass delete everything that has aged out.
MAINTENANCE_CRON = "0 3 * * 0"


def maintenance_schedule(domain: str, assets: Sequence[AssetsDefinition]):
    """OPTIMIZE and VACUUM every table of a domain, one table after another in one run (one Spark session)."""
    job = define_asset_job(
        f"{domain}_table_maintenance",
        selection=AssetSelection.assets(*assets),
        description=f"OPTIMIZE (Z-ordered where declared) and VACUUM every {domain} table and quarantine.",
    )
    schedule = ScheduleDefinition(
        name=f"{domain}_table_maintenance_schedule",
        job=job,
        cron_schedule=MAINTENANCE_CRON,
        execution_timezone="UTC",
        # Safe to run at any time (a write that meets it retries its commit), so it is on from the start.
        default_status=DefaultScheduleStatus.RUNNING,
    )
    return job, schedule


REFINED_TABLES_AUTOMATION = "refined_tables_automation"


def refined_tables_automation(layers: Sequence[str]) -> AutomationConditionSensorDefinition:
    """Evaluates the silver and gold tables' conditions; on by default, unlike Dagster's implicit sensor."""
    return AutomationConditionSensorDefinition(
        REFINED_TABLES_AUTOMATION,
        target=AssetSelection.groups(*layers),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=15,
        # DayLandingSettled is our own Python, so the conditions are evaluated where the code is loaded.
        use_user_code_server=True,
        description="Requests silver and gold partitions whose upstream partitions updated (condition "
        "'follows upstream'). Several days of one table at once are submitted as one single-run backfill.",
    )


def landing_sensors(
    domain: str, sources: Sequence[LandingSource], partitions_def: PartitionsDefinition
) -> list[SensorDefinition]:
    return [landing_sensor(domain, sources, partitions_def)]
