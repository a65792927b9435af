"""Alerts: a failed run, a failed blocking check, a quarantine-rate breach and a late table, each sent once.

They ride on Dagster's own sensors: a run failure sensor (its cursor is Dagster's, so a failed run is seen once)
and a sensor over the freshness states that Dagster's freshness daemon records for every table with a freshness
policy. An alert goes to a webhook as one JSON POST, or, with no webhook configured, to the sensor's log.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from typing import Any, Literal

from dagster import (
    AssetKey,
    AssetsDefinition,
    ConfigurableResource,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunFailureSensorContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
    WILL_RETRY_TAG,
)

from medallion_assets.framework import checks
from medallion_assets.orchestration.reporting import BLOCKED_BY_CHECKS

AlertKind = Literal["run_failure", "blocking_check_failed", "quarantine_rate_breach", "table_late"]

# Where a webhook's URL comes from: the URL itself, or a Databricks secret "<scope>/<key>" that holds it. Either
# way the URL is a credential (Slack and Teams webhooks carry their token in the path): it is never logged.
WEBHOOK_URL_SETTING = "MEDALLION_ALERT_WEBHOOK_URL"
WEBHOOK_SECRET_SETTING = "MEDALLION_ALERT_WEBHOOK_SECRET"
# The Dagster UI that an alert links to.
UI_URL_SETTING = "MEDALLION_DAGSTER_URL"
DEFAULT_UI_URL = "http://127.0.0.1:3000"

FAILURE_ALERTS = "medallion_failure_alerts"
FRESHNESS_ALERTS = "medallion_freshness_alerts"


@dataclass(frozen=True)
class Alert:
    """The JSON body of one alert: what broke, for which day, why, and where to look."""

    kind: AlertKind
    asset: str
    partition: str | None
    reason: str
    run_id: str | None
    run_url: str | None

    def summary(self) -> str:
        day = f" [{self.partition}]" if self.partition else ""
        link = f" ({self.run_url})" if self.run_url else ""
        return f"{self.kind}: {self.asset}{day}: {self.reason}{link}"


class AlertDeliveryError(Exception):
    """The webhook did not take an alert; the message never contains the webhook's URL."""


class AlertSink(ConfigurableResource):
    """Sends alerts to a webhook, or to the log when none is configured.

    The sink holds the names of the settings, not their values, so neither the resource's config in the UI nor
    any log line shows the URL. A Databricks secret is read through the workspace API with the SDK's own
    authentication ([Databricks: Secrets API, get a secret](https://docs.databricks.com/api/workspace/secrets/getsecret):
    the value comes back base64-encoded).
    """

    url_setting: str = WEBHOOK_URL_SETTING
    secret_setting: str = WEBHOOK_SECRET_SETTING
    ui_url_setting: str = UI_URL_SETTING
    timeout_seconds: float = 10.0

    def ui_url(self) -> str:
        return os.environ.get(self.ui_url_setting, "").strip().rstrip("/") or DEFAULT_UI_URL

    def run_url(self, run_id: str) -> str:
        return f"{self.ui_url()}/runs/{run_id}"

    def webhook_url(self) -> str | None:
        direct = os.environ.get(self.url_setting, "").strip()
        if direct:
            return direct
        secret = os.environ.get(self.secret_setting, "").strip()
        if not secret:
            return None
        scope, _, key = secret.partition("/")
        if not scope or not key:
            raise AlertDeliveryError(f"{self.secret_setting} must name a Databricks secret as <scope>/<key>")
        from databricks.sdk import WorkspaceClient

        value = WorkspaceClient().secrets.get_secret(scope=scope, key=key).value or ""
        return base64.b64decode(value).decode().strip()

    def send(self, alerts: Sequence[Alert], log: Any) -> int:
        """Sends each alert; returns how many reached the webhook (all of them are logged when there is none)."""
        if not alerts:
            return 0
        url = self.webhook_url()
        if url is None:
            for alert in alerts:
                log.warning(f"alert (no webhook configured, set {self.url_setting}): {alert.summary()}")
            return 0
        for alert in alerts:
            self._post(url, alert)
            log.info(f"alert sent: {alert.summary()}")
        return len(alerts)

    def _post(self, url: str, alert: Alert) -> None:
        request = urllib.request.Request(
            url, data=json.dumps(asdict(alert)).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read()
        except urllib.error.HTTPError as error:
            raise AlertDeliveryError(f"the alert webhook answered HTTP {error.code} to {alert.summary()}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise AlertDeliveryError(
                f"the alert webhook could not be reached ({reason}) for {alert.summary()}"
            ) from None


def run_partition(tags: Mapping[str, str]) -> str | None:
    """The day a run built, or the range of a single-run backfill as `start...end`."""
    if PARTITION_NAME_TAG in tags:
        return tags[PARTITION_NAME_TAG]
    if ASSET_PARTITION_RANGE_START_TAG in tags:
        start, end = tags[ASSET_PARTITION_RANGE_START_TAG], tags.get(ASSET_PARTITION_RANGE_END_TAG)
        return start if start == end else f"{start}...{end}"
    return None


def failed_check_alerts(instance: DagsterInstance, run_id: str, run_url: str, partition: str | None) -> list[Alert]:
    """One alert per failed blocking check of the run, per asset, check and day."""
    found: dict[tuple[str, str, str | None], Alert] = {}
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.asset_check_evaluation_data if entry.dagster_event else None
        if evaluation is None or evaluation.passed or not evaluation.blocking:
            continue
        asset = evaluation.asset_key.to_user_string()
        day = evaluation.partition or partition
        kind: AlertKind = (
            "quarantine_rate_breach" if evaluation.check_name == checks.QUARANTINE_RATE else "blocking_check_failed"
        )
        reason = f"{evaluation.check_name}: {evaluation.description or 'failed'}"
        found.setdefault((asset, evaluation.check_name, day), Alert(kind, asset, day, reason, run_id, run_url))
    return list(found.values())


def failure_alerts(context: RunFailureSensorContext, sink: AlertSink, assets_of_step: Mapping[str, str]) -> list[Alert]:
    """What one failed run sends: its failed blocking checks, and each step that failed for another reason."""
    run = context.dagster_run
    if run.tags.get(WILL_RETRY_TAG) == "true":
        return []  # Dagster retries the run; only the last attempt's failure is news
    run_url, partition = sink.run_url(run.run_id), run_partition(run.tags)
    alerts = failed_check_alerts(context.instance, run.run_id, run_url, partition)
    step_failures = context.get_step_failure_events()
    for event in step_failures:
        failure = event.step_failure_data
        user = failure.user_failure_data if failure else None
        if user is not None and BLOCKED_BY_CHECKS in user.metadata:
            continue  # its checks' own alerts above say why
        message = (user.description if user is not None else None) or (
            failure.error.message.strip() if failure and failure.error else "the step failed"
        )
        asset = assets_of_step.get(event.step_key or "", event.step_key or run.job_name)
        alerts.append(Alert("run_failure", asset, partition, message, run.run_id, run_url))
    if not step_failures and not alerts:
        # The run failed before or between its steps (a lost run worker, a launch error).
        reason = context.failure_event.message or "the run failed"
        alerts.append(Alert("run_failure", run.job_name, partition, reason, run.run_id, run_url))
    return alerts


def failure_alerts_sensor(assets: Iterable[AssetsDefinition]) -> SensorDefinition:
    assets_of_step = {asset.op.name: key.to_user_string() for asset in assets for key in asset.keys}

    @run_failure_sensor(
        name=FAILURE_ALERTS,
        description="Sends an alert for each failed blocking check (a quarantine-rate breach among them) of a "
        "failed run, and for each step that failed for any other reason.",
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=15,
    )
    def _alert_on_failure(context: RunFailureSensorContext, alerts: AlertSink) -> None:
        alerts.send(failure_alerts(context, alerts, assets_of_step), context.log)

    return _alert_on_failure


def next_day_due(instance: DagsterInstance, key: AssetKey) -> str | None:
    """The day a late table is waiting for: the one after the newest day it holds."""
    days = [date.fromisoformat(day) for day in instance.get_materialized_partitions(key)]
    return (max(days) + timedelta(days=1)).isoformat() if days else None


def late_table_alerts(
    instance: DagsterInstance,
    keys: Sequence[AssetKey],
    already: Mapping[str, float],
    describe: Callable[[AssetKey], str],
) -> tuple[list[Alert], dict[str, float]]:
    """An alert per table whose freshness turned to FAIL since the last one sent for it."""
    records = instance.event_log_storage.get_freshness_state_records(keys)
    alerts, sent = [], dict(already)
    for key, record in records.items():
        name = key.to_user_string()
        changed_at = record.updated_at.timestamp()
        if record.freshness_state != FreshnessState.FAIL or changed_at <= already.get(name, 0.0):
            continue
        sent[name] = changed_at
        alerts.append(Alert("table_late", name, next_day_due(instance, key), describe(key), None, None))
    return alerts, sent


def freshness_alerts_sensor(assets: Iterable[AssetsDefinition]) -> SensorDefinition:
    policies = {key: spec.freshness_policy for asset in assets for key, spec in asset.specs_by_key.items()}
    watched = sorted((key for key, policy in policies.items() if policy is not None), key=AssetKey.to_user_string)

    def describe(key: AssetKey) -> str:
        window = getattr(policies[key], "fail_window", None)
        within = f" within {window.to_timedelta().total_seconds() / 3600:g} h" if window is not None else ""
        return f"not materialized{within}, as its freshness policy requires; the day it waits for has not been built"

    @sensor(
        name=FRESHNESS_ALERTS,
        description="Sends an alert when a table's freshness (evaluated by Dagster's freshness daemon against the "
        "policy its declaration sets) turns to failing; once per lapse.",
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
    )
    def _alert_on_late_tables(context: SensorEvaluationContext, alerts: AlertSink) -> SkipReason:
        already: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
        late, sent = late_table_alerts(context.instance, watched, already, describe)
        alerts.send(late, context.log)
        context.update_cursor(json.dumps(sent, sort_keys=True))
        return SkipReason(f"{len(late)} late table(s) alerted" if late else "every table is fresh or already alerted")

    return _alert_on_late_tables
