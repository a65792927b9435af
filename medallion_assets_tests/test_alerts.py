"""Alerts through Dagster's own sensors, delivered to a real webhook served on 127.0.0.1.

A failing day sends exactly its alerts, once each; a later tick sends nothing again. Each day's quality figures
land on that day's materialization, where the UI plots them per partition.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, build_sensor_context, instance_for_test, materialize

from medallion_assets.definitions import assets_of
from medallion_assets.domains.flights.landing import stage
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.report import Meta
from medallion_assets.orchestration.alerts import WEBHOOK_URL_SETTING, AlertSink, failure_alerts_sensor
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


def test_an_unreachable_webhook_is_a_clear_error_that_never_shows_its_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from medallion_assets.orchestration.alerts import Alert, AlertDeliveryError

    monkeypatch.setenv(WEBHOOK_URL_SETTING, "http://127.0.0.1:9/hooks/S3CR3T")
    alert = Alert("run_failure", "bronze/airlines", DAY, "MissingLanding", "r1", "http://ui/runs/r1")
    with pytest.raises(AlertDeliveryError, match="could not be reached") as raised:
        AlertSink(timeout_seconds=2).send([alert], log=None)
    assert "S3CR3T" not in str(raised.value) and "127.0.0.1:9" not in str(raised.value)
