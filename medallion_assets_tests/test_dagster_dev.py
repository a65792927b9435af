"""The daily operating loop through Dagster's own server: `dagster dev`, its GraphQL API and its daemon.

A 3-day backfill of the whole graph is launched over GraphQL, then a new day lands and the landing
sensors and Declarative Automation carry it through gold without anyone clicking. The runs build on one
local Spark that every run process connects to over Spark Connect, as with `medallion engine` (the README's
advice for `dagster dev`): this test process's own, already warm. A run process that starts local Spark
itself is what `materialize` does in the other tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from medallion_assets.domains.flights.landing import stage
from medallion_assets.embedded.spark import REMOTE_SETTING, serve_connect
from medallion_assets.framework.maintenance import MAINTENANCE_PREFIX
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.orchestration.instance import instance_yaml
from medallion_assets.runtime.protocol import DOMAIN_TAG
from medallion_assets_tests.support import read, wait_for

BACKFILL_DAYS = ["2013-01-01", "2013-01-02", "2013-01-03"]
NEW_DAY = "2013-01-04"
ALL_DAYS = [*BACKFILL_DAYS, NEW_DAY]
BACKFILL_TIMEOUT_S = 600
FOLLOW_TIMEOUT_S = 900
# The day's landing run, then its silver and gold: never more than two runs at once on two cores.
RUN_QUEUE_YAML = """
run_queue:
  max_concurrent_runs: 2
"""
ACTIVE_RUN_STATUSES = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]
FINISHED_BACKFILL_STATUSES = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class DagsterDev:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, document: str, **variables: Any) -> dict[str, Any]:
        request = urllib.request.Request(
            f"{self.url}/graphql",
            data=json.dumps({"query": document, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            payload = json.load(response)
        assert not payload.get("errors"), payload["errors"]
        return payload["data"]

    def is_serving(self) -> bool:
        assert self.process.poll() is None, f"dagster dev exited early:\n{self.tail()}"
        try:
            repositories = self.query("{ repositoriesOrError { __typename } }")["repositoriesOrError"]
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return repositories["__typename"] == "RepositoryConnection"

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def repository(self) -> dict[str, Any]:
        data = self.query(
            """{ repositoriesOrError { ... on RepositoryConnection { nodes {
                 name location { name } sensors { name sensorState { id status } } } } } }"""
        )
        (repository,) = data["repositoriesOrError"]["nodes"]
        return repository

    def set_landing_sensors(self, running: bool) -> None:
        repository = self.repository()
        for sensor in repository["sensors"]:
            if not sensor["name"].endswith("_landing_sensor"):
                continue
            if running:
                selector = {
                    "repositoryLocationName": repository["location"]["name"],
                    "repositoryName": repository["name"],
                    "sensorName": sensor["name"],
                }
                result = self.query(
                    "mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }", s=selector
                )["startSensor"]
                assert result["__typename"] == "Sensor", result
            else:
                result = self.query(
                    "mutation($id: String) { stopSensor(id: $id) { __typename } }", id=sensor["sensorState"]["id"]
                )["stopSensor"]
                assert result["__typename"] == "StopSensorMutationResult", result

    def domain_asset_nodes(self, fields: str) -> list[dict[str, Any]]:
        """The flights domain's tables: the other domains' tables cover other days, and maintenance runs weekly."""
        nodes = self.query(f"{{ assetNodes {{ assetKey {{ path }} tags {{ key value }} {fields} }} }}")["assetNodes"]
        return [
            n
            for n in nodes
            if {"key": DOMAIN_TAG, "value": "flights"} in n["tags"] and n["assetKey"]["path"][0] != MAINTENANCE_PREFIX
        ]

    def asset_keys(self) -> list[list[str]]:
        return [node["assetKey"]["path"] for node in self.domain_asset_nodes("")]

    def launch_backfill(self, days: list[str], asset_keys: list[list[str]]) -> str:
        result = self.query(
            """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
                 __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
            params={"partitionNames": days, "assetSelection": [{"path": key} for key in asset_keys]},
        )["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result
        return result["backfillId"]

    def backfill_status(self, backfill_id: str) -> str:
        backfill = self.query(
            "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
            id=backfill_id,
        )["partitionBackfillOrError"]
        return backfill["status"]

    def runs(self, statuses: list[str] | None = None) -> list[dict[str, Any]]:
        data = self.query(
            """query($filter: RunsFilter) { runsOrError(filter: $filter) { ... on Runs {
                 results { runId status tags { key value } } } } }""",
            filter={"statuses": statuses} if statuses else {},
        )
        runs = data["runsOrError"]["results"]
        for run in runs:
            run["tags"] = {tag["key"]: tag["value"] for tag in run["tags"]}
        return runs

    def materialized_partition_counts(self) -> dict[str, int]:
        nodes = self.domain_asset_nodes("partitionStats { numMaterialized }")
        return {"/".join(n["assetKey"]["path"]): n["partitionStats"]["numMaterialized"] for n in nodes}

    def check_executions(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        nodes = self.domain_asset_nodes("assetChecksOrError { ... on AssetChecks { checks { name } } }")
        checks = [(node["assetKey"]["path"], c["name"]) for node in nodes for c in node["assetChecksOrError"]["checks"]]
        # One request with an aliased field per check, rather than a round trip per check.
        fields = "\n".join(
            f"c{i}: assetCheckExecutions(assetKey: {{path: {json.dumps(path)}}}, checkName: {json.dumps(name)}, "
            "limit: 50) { status partition }"
            for i, (path, name) in enumerate(checks)
        )
        found = self.query(f"{{ {fields} }}")
        return {("/".join(path), name): found[f"c{i}"] for i, (path, name) in enumerate(checks)}


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """dagster dev, its daemon, code server and run workers all live in the session started for it."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=60)
    # Whatever outlived a graceful shutdown, such as a run worker still building a table.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture
def dagster_dev(tmp_path: Path, spark) -> Iterator[tuple[DagsterDev, Path]]:
    home, dagster_home = tmp_path / "lakehouse", tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(instance_yaml(dagster_home, telemetry=False) + RUN_QUEUE_YAML)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        "MEDALLION_HOME": str(home),
        "MEDALLION_TARGET": "local",
        # Each run is a process of its own: it builds on this process's warm JVM, served over Spark Connect as
        # `medallion engine` serves it, rather than starting and warming up a JVM of its own.
        REMOTE_SETTING: serve_connect(spark),
    }
    port = free_port()
    log = tmp_path / "dagster_dev.log"
    dagster = Path(sys.executable).with_name("dagster")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(dagster), "dev", "-m", "medallion_assets.definitions", "-h", "127.0.0.1", "-p", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = DagsterDev(f"http://127.0.0.1:{port}", process, log)
    try:
        assert wait_for(server.is_serving, timeout=180, interval=1), f"dagster dev did not serve:\n{server.tail()}"
        yield server, home
    finally:
        stop_process_group(process)


def test_a_backfill_then_a_landed_day_flow_through_gold_in_dagster_dev(dagster_dev, spark) -> None:
    server, home = dagster_dev
    # Held while the backfill's days land, so the backfill alone ingests them.
    server.set_landing_sensors(running=False)
    stage(home / "landing", PartitionWindow.for_keys(BACKFILL_DAYS[0], BACKFILL_DAYS[-1]), progress=False)
    asset_keys = server.asset_keys()
    backfill_id = server.launch_backfill(BACKFILL_DAYS, asset_keys)

    def backfill_runs() -> list[dict[str, Any]]:
        return [r for r in server.runs() if r["tags"].get("dagster/backfill") == backfill_id]

    # The backfill's run, not the backfill: Dagster's backfill daemon marks a backfill complete on its next pass
    # after the run ends, up to 30 s later (its interval is fixed), and nothing below waits on that mark.
    assert wait_for(
        lambda: bool(backfill_runs()) and not any(r["status"] in ACTIVE_RUN_STATUSES for r in backfill_runs()),
        timeout=BACKFILL_TIMEOUT_S,
        interval=3,
    ), f"backfill still {server.backfill_status(backfill_id)}:\n{server.tail()}"
    assert all(r["status"] == "SUCCESS" for r in backfill_runs()), server.tail()

    # The sensors see three landed days that the backfill already ingested, and one new day.
    server.set_landing_sensors(running=True)
    stage(home / "landing", PartitionWindow.single_day(date.fromisoformat(NEW_DAY)), progress=False)

    def every_table_has_every_day() -> bool:
        counts = server.materialized_partition_counts()
        return all(n == len(ALL_DAYS) for n in counts.values()) and not server.runs(ACTIVE_RUN_STATUSES)

    assert wait_for(every_table_has_every_day, timeout=FOLLOW_TIMEOUT_S, interval=5), (
        f"{server.materialized_partition_counts()}\n{server.tail()}"
    )

    runs = server.runs()
    assert all(run["status"] == "SUCCESS" for run in runs), [(r["runId"], r["status"]) for r in runs]
    assert wait_for(lambda: server.backfill_status(backfill_id) in FINISHED_BACKFILL_STATUSES, timeout=120, interval=3)
    assert server.backfill_status(backfill_id) in {"COMPLETED", "COMPLETED_SUCCESS"}, server.tail()
    backfill_runs = [r for r in runs if r["tags"].get("dagster/backfill") == backfill_id]
    assert len(backfill_runs) == 1  # single-run backfill policy: three days, the whole graph, one run
    sensor_runs = [r for r in runs if r["tags"].get("dagster/sensor_name") == "flights_landing_sensor"]
    # The five sources of the new day land together and are ingested by one run.
    assert [r["tags"]["medallion/landed_sources"] for r in sensor_runs] == ["airlines,airports,flights,planes,weather"]
    follow_up_runs = [r for r in runs if r not in backfill_runs and r not in sensor_runs]
    # The day's silver and gold wait for the landing run, then follow in one run.
    assert len(follow_up_runs) == 1, [r["tags"] for r in follow_up_runs]
    assert {r["tags"].get("dagster/partition") for r in [*sensor_runs, *follow_up_runs]} == {NEW_DAY}
    assert {r["tags"].get("dagster/sensor_name") for r in follow_up_runs} == {"refined_tables_automation"}

    executions = server.check_executions()
    statuses = {key: [e["status"] for e in found] for key, found in executions.items()}
    assert executions and all(set(found) == {"SUCCEEDED"} for found in statuses.values()), statuses
    # Every check of every table holds a passing result for every day, the backfilled ones included.
    checked_days = {key: {e["partition"] for e in found} for key, found in executions.items()}
    assert all(set(ALL_DAYS) <= days for days in checked_days.values()), checked_days

    tables = [
        read(spark, home, layer, name).groupBy(F.col("partition_date").alias("day")).count()
        for layer, name in (("bronze", "flights"), ("silver", "flights"), ("gold", "fact_flights"))
    ]
    kpi = read(spark, home, "gold", "carrier_daily_performance")
    tables.append(kpi.groupBy(F.col("flight_date").alias("day")).agg(F.sum("scheduled_flights").alias("count")))
    per_day = [{row["day"].isoformat(): row["count"] for row in table.collect()} for table in tables]
    assert sorted(per_day[0]) == ALL_DAYS and per_day[0][NEW_DAY] > 0
    assert per_day[0] == per_day[1] == per_day[2] == per_day[3]  # no row lost on the way to gold

    # Every run built on the served engine: none started local Spark of its own.
    assert "starting local Spark" not in server.log.read_text(errors="replace")
