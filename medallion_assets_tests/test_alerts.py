"""Alerts through Dagster's own sensors, delivered to a real webhook served on 127.0.0.1.

A failing day sends exactly its alerts, once each; a later tick sends nothing again. Each day's quality figures
land on that day's materialization, where the UI plots them per partition. A gold table whose next day lands late
turns late by Dagster's own freshness daemon, and that lapse sends one alert.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    build_sensor_context,
    instance_for_test,
    materialize,
)
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.freshness import FreshnessDaemon

from medallion_assets.definitions import assets_of
from medallion_assets.domains.flights.landing import stage
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.report import Meta
from medallion_assets.orchestration.alerts import (
    WEBHOOK_URL_SETTING,
    AlertSink,
    failure_alerts_sensor,
    freshness_alerts_sensor,
)
from medallion_assets.orchestration.compute import LocalSparkCompute
from medallion_assets.orchestration.jobs import partition_range_tags

DAY = "2013-01-03"
TABLES = [AssetKey(path) for path in (["bronze", s] for s in ("airlines", "airports", "flights"))] + [
    AssetKey(["silver", "airports"]),
    AssetKey(["silver", "flights"]),
]


class Webhook:
    """An HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        received: list[dict[str, Any]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0K3N"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Webhook]:
    hook = Webhook()
    monkeypatch.setenv(WEBHOOK_URL_SETTING, hook.url)
    monkeypatch.setenv("MEDALLION_DAGSTER_URL", "http://dagster.example:3000")
    yield hook
    hook.server.shutdown()


def run_day(instance: DagsterInstance, home: Path) -> Any:
    return materialize(
        assets_of["flights"],
        selection=TABLES,
        instance=instance,
        resources={"compute": LocalSparkCompute(home=str(home))},
        tags=partition_range_tags(PartitionWindow.for_keys(DAY, DAY)),
        raise_on_error=False,
    )


def tick(sensor, instance: DagsterInstance, cursor: str | None) -> str | None:
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": AlertSink()})
    return sensor.evaluate_tick(context).cursor


def test_a_failing_day_sends_each_of_its_alerts_once(spark, tmp_path: Path, webhook: Webhook) -> None:
    home = tmp_path / "home"
    stage(home / "landing", PartitionWindow.for_keys(DAY, DAY), progress=False)
    # The day's flights arrive with most lines cut short, and its airlines never arrive.
    (flights_file,) = (home / "landing/flights" / DAY).glob("*.csv")
    lines = flights_file.read_text().splitlines()
    flights_file.write_text("\n".join([lines[0], *(line.rsplit(",", 3)[0] for line in lines[1:]), ""]))
    for landed in (home / "landing/airlines" / DAY).iterdir():
        landed.unlink()
    (home / "landing/airlines" / DAY).rmdir()

    sensor = failure_alerts_sensor(assets_of["flights"])
    with instance_for_test() as instance:
        cursor = tick(sensor, instance, None)  # Dagster starts a run failure sensor's cursor at "now"
        result = run_day(instance, home)
        assert not result.success
        cursor = tick(sensor, instance, cursor)
        alerts = sorted(webhook.received, key=lambda alert: alert["asset"])
        run_url = f"http://dagster.example:3000/runs/{result.run_id}"
        assert [(a["kind"], a["asset"], a["partition"], a["run_url"]) for a in alerts] == [
            ("run_failure", "bronze/airlines", DAY, run_url),
            ("quarantine_rate_breach", "silver/flights", DAY, run_url),
        ]
        assert alerts[0]["reason"].startswith("no landed airlines data for 1 day(s) of 2013-01-03")
        assert alerts[1]["reason"].startswith("quarantine_rate: ") and "quarantined" in alerts[1]["reason"]

        # Seen once: the next tick sends nothing, and a good re-run of the day sends nothing either.
        tick(sensor, instance, cursor)
        assert len(webhook.received) == 2
        stage(home / "landing", PartitionWindow.for_keys(DAY, DAY), progress=False)
        rerun = run_day(instance, home)
        assert rerun.success
        tick(sensor, instance, cursor)
        assert len(webhook.received) == 2

        # The day's quality figures are numbers on the day's own materialization, for the UI's plots.
        (record,) = instance.fetch_materializations(AssetKey(["silver", "flights"]), limit=1).records
        metadata = record.asset_materialization.metadata
        assert record.partition_key == DAY and Meta.BY_DAY not in metadata
        assert isinstance(metadata[Meta.of_day(Meta.QUARANTINE_RATE)].value, float)
        prefix = Meta.of_day(Meta.RULE_FAILURES_PREFIX)
        rule_counts = {k: v.value for k, v in metadata.items() if k.startswith(prefix)}
        assert metadata[Meta.of_day(Meta.ROWS_IN)].value > 0 and rule_counts
        assert all(isinstance(count, int) for count in rule_counts.values())


# The code location as `dagster dev` serves it (pyproject's [tool.dagster]), loaded in this process.
CODE_LOCATION = InProcessCodeLocationOrigin(
    LoadableTargetOrigin(module_name="medallion_assets.definitions", attribute="defs"), location_name="medallion_assets"
)
LATE = AssetKey(["gold", "carrier_daily_performance"])


@contextmanager
def freshness_daemon(instance: DagsterInstance) -> Iterator[Callable[[datetime], None]]:
    """Runs an iteration of Dagster's own freshness daemon over the code location at each moment the test picks.

    The daemon reads each table's policy from the code location and its last materialization from the instance,
    and records a state change when a table's state differs from the last one recorded; it reads the clock through
    `dagster._time`, which `freeze_time` sets.
    """
    daemon = FreshnessDaemon()
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(CODE_LOCATION)) as workspace:

        def evaluate_at(moment: datetime) -> None:
            with freeze_time(moment):
                list(daemon.run_iteration(workspace))

        yield evaluate_at


def built(instance: DagsterInstance, keys: list[AssetKey], day: str, at: datetime) -> None:
    """Records that the tables were materialized for the day at that moment, as the day's run would."""
    with freeze_time(at):
        for key in keys:
            instance.report_runless_asset_event(AssetMaterialization(key, partition=day))


def test_a_table_whose_next_day_lands_late_sends_one_alert_per_lapse(webhook: Webhook) -> None:
    sensor = freshness_alerts_sensor(assets_of["flights"])
    gold = [key for asset in assets_of["flights"] for key in asset.keys if key.path[0] == "gold"]
    others = [key for key in gold if key != LATE]
    assert LATE in gold and len(others) >= 1
    # Day D is built the next morning; every gold table must then be rebuilt within 29 hours (it warns after 25).
    built_at = datetime(2013, 1, 4, 6, tzinfo=UTC)

    def hours(n: float) -> datetime:
        return built_at + timedelta(hours=n)

    def states() -> dict[AssetKey, FreshnessState]:
        return {k: r.freshness_state for k, r in instance.get_freshness_state_records(gold).items()}

    with instance_for_test() as instance, freshness_daemon(instance) as evaluate_at:
        built(instance, gold, DAY, at=built_at)
        evaluate_at(built_at)
        assert states() == dict.fromkeys(gold, FreshnessState.PASS)
        cursor = tick(sensor, instance, None)
        assert webhook.received == []

        # Day D+1 lands on time for every gold table but one: its day lands late.
        built(instance, others, "2013-01-04", at=hours(24))
        evaluate_at(hours(26))
        assert states() == {**dict.fromkeys(others, FreshnessState.PASS), LATE: FreshnessState.WARN}
        cursor = tick(sensor, instance, cursor)
        assert webhook.received == []  # warning is not late

        evaluate_at(hours(29) + timedelta(minutes=1))
        assert states() == {**dict.fromkeys(others, FreshnessState.PASS), LATE: FreshnessState.FAIL}
        cursor = tick(sensor, instance, cursor)
        assert [(a["kind"], a["asset"], a["partition"], a["run_id"], a["run_url"]) for a in webhook.received] == [
            ("table_late", "gold/carrier_daily_performance", "2013-01-04", None, None)
        ]
        assert webhook.received[0]["reason"] == (
            "not materialized within 29 h, as its freshness policy requires; the day it waits for has not been built"
        )

        # Still late an hour on: the daemon records no new change, and the lapse is not sent again.
        lapse = instance.get_freshness_state_records([LATE])[LATE]
        evaluate_at(hours(30))
        assert instance.get_freshness_state_records([LATE])[LATE] == lapse
        cursor = tick(sensor, instance, cursor)
        assert len(webhook.received) == 1

        # The late day lands and the table is built: fresh again, and nothing to send.
        built(instance, [LATE], "2013-01-04", at=hours(31))
        evaluate_at(hours(31))
        assert states() == dict.fromkeys(gold, FreshnessState.PASS)
        cursor = tick(sensor, instance, cursor)
        assert len(webhook.received) == 1

        # Day D+2 lands late for it too: a new lapse, and one new alert for the day it now waits for.
        built(instance, others, "2013-01-05", at=hours(48))
        evaluate_at(hours(31 + 29) + timedelta(minutes=1))
        assert states() == {**dict.fromkeys(others, FreshnessState.PASS), LATE: FreshnessState.FAIL}
        cursor = tick(sensor, instance, cursor)
        tick(sensor, instance, cursor)
        assert [(a["kind"], a["asset"], a["partition"]) for a in webhook.received] == [
            ("table_late", "gold/carrier_daily_performance", "2013-01-04"),
            ("table_late", "gold/carrier_daily_performance", "2013-01-05"),
        ]


def test_an_unreachable_webhook_is_a_clear_error_that_never_shows_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from medallion_assets.orchestration.alerts import Alert, AlertDeliveryError

    monkeypatch.setenv(WEBHOOK_URL_SETTING, "http://127.0.0.1:9/hooks/S3CR3T")
    alert = Alert("run_failure", "bronze/airlines", DAY, "MissingLanding", "r1", "http://ui/runs/r1")
    with pytest.raises(AlertDeliveryError, match="could not be reached") as raised:
        AlertSink(timeout_seconds=2).send([alert], log=None)
    assert "S3CR3T" not in str(raised.value) and "127.0.0.1:9" not in str(raised.value)
