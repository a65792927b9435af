"""Operating the lakehouse daily: landing sensors, downstream automation and a schedule."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from dagster import (
    AssetKey,
    AssetSelection,
    AutomationCondition,
    DefaultSensorStatus,
    PartitionsDefinition,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    build_schedule_from_partitioned_job,
    define_asset_job,
    sensor,
)

from medallion_assets.framework.partitions import InvalidPartitionKey, parse_partition_key
from medallion_assets.framework.table import LandingSource
from medallion_assets.settings import medallion_home

# Silver and gold follow their upstream partitions, any day of the year, once every upstream partition
# exists, nothing upstream is running, and no upstream blocking check failed. `eager()` would only
# consider the latest day, and our data lands for past days too.
FOLLOWS_UPSTREAM = (
    AutomationCondition.any_deps_updated().since_last_handled()
    & ~AutomationCondition.any_deps_missing()
    & ~AutomationCondition.any_deps_in_progress()
    & ~AutomationCondition.in_progress()
    & AutomationCondition.all_deps_blocking_checks_passed()
).with_label("follows upstream")


def folder_fingerprint(folder: Path) -> str:
    """Changes whenever a file in the day folder is added, removed, rewritten or touched."""
    entries = sorted(
        f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}" for path in folder.glob("*.csv") if (stat := path.stat())
    )
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()[:20]


def landing_sensor(source: LandingSource, partitions_def: PartitionsDefinition) -> SensorDefinition:
    bronze_key = AssetKey(["bronze", source.name])

    @sensor(
        name=f"{source.name}_landing_sensor",
        description=f"Materializes a day of bronze/{source.name} when files land in "
        f"$MEDALLION_HOME/landing/{source.name}/<YYYY-MM-DD>/ or change there.",
        asset_selection=[bronze_key],
        minimum_interval_seconds=15,
        default_status=DefaultSensorStatus.RUNNING,
    )
    def _sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
        root = medallion_home() / "landing" / source.name
        if not root.is_dir():
            return SkipReason(f"nothing has landed yet: {root} does not exist")
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        valid_keys = set(partitions_def.get_partition_keys())
        requests, malformed = [], []
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            try:
                day = parse_partition_key(folder.name).isoformat()
            except InvalidPartitionKey as error:
                malformed.append(f"{folder.name}: {error}")
                continue
            if day not in valid_keys:
                malformed.append(f"{folder.name}: outside the partitions of this domain")
                continue
            fingerprint = folder_fingerprint(folder)
            if not any(folder.glob("*.csv")) or seen.get(day) == fingerprint:
                continue
            seen[day] = fingerprint
            requests.append(
                RunRequest(
                    run_key=f"{source.name}:{day}:{fingerprint}",
                    partition_key=day,
                    asset_selection=[bronze_key],
                    tags={"medallion/landing_fingerprint": fingerprint, "medallion/source": source.name},
                )
            )
        for problem in malformed:
            context.log.warning(f"ignored landing folder {root}/{problem}")
        if requests:
            return SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))
        reason = f"no new or changed files under {root} ({len(seen)} days already landed)"
        if malformed:
            reason += f"; {len(malformed)} malformed folder(s): " + "; ".join(malformed[:3])
        return SkipReason(reason)

    return _sensor


def daily_schedule(partitions_def: PartitionsDefinition):
    """Materializes the newest partition every day, for when nobody lands files."""
    job = define_asset_job(
        "daily_tables",
        selection=AssetSelection.all(),
        partitions_def=partitions_def,
        description="Every table for one day; the daily schedule runs it for the newest day.",
    )
    return job, build_schedule_from_partitioned_job(job, hour_of_day=6, name="daily_tables_schedule")


def landing_sensors(sources: Sequence[LandingSource], partitions_def: PartitionsDefinition) -> list[SensorDefinition]:
    return [landing_sensor(source, partitions_def) for source in sources]
