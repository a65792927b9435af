"""Where a graph build's time goes, table by table: wall time, Spark jobs, and the time those jobs ran.

    python -m medallion_assets_tests.benchmarks.profile_steps [--domain flights] [--start 2013-01-01] [--days 2]
        [--home DIR] [--top-jobs 15]

Stages `--days` days of flights from `--start` (other domains must be staged into `--home` already, with
`MEDALLION_HOME=DIR medallion stage --domain ...`), builds
every table of the domain in one single-run backfill on local Spark with Spark's UI on, then prints, per table, its
step's wall time, the Spark jobs that started during the step and their summed duration. The difference is driver
work between jobs: planning, Delta's log and commit work, Dagster. `--top-jobs` also groups all jobs by the call
that started them. For the JVM's own view, run with
`MEDALLION_SPARK_JAVA_OPTIONS="-XX:StartFlightRecording=filename=build.jfr,settings=profile"`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import urllib.request
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path

os.environ.setdefault("MEDALLION_SHUFFLE_PARTITIONS", "2")
os.environ.setdefault("MEDALLION_SPARK_MASTER", "local[2]")

FIRST_DAY = date(2013, 1, 1)
STEP_EVENTS = ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE")


def spark_jobs(session) -> list[tuple[float, float, str]]:
    """(submitted, completed, call site) of every finished job, from the UI's REST API."""
    url = session.sparkContext.uiWebUrl
    with urllib.request.urlopen(f"{url}/api/v1/applications/{session.sparkContext.applicationId}/jobs") as answer:
        jobs = json.load(answer)

    def seconds(stamp: str) -> float:
        return datetime.strptime(stamp.replace("GMT", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()

    return [
        (seconds(job["submissionTime"]), seconds(job["completionTime"]), job["name"].split(" at ")[0])
        for job in jobs
        if "completionTime" in job
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", default="flights")
    parser.add_argument("--start", type=date.fromisoformat, default=FIRST_DAY)
    parser.add_argument("--days", type=int, default=2)
    parser.add_argument("--home", type=Path, default=None, help="lakehouse folder (default: a new temporary one)")
    parser.add_argument("--top-jobs", type=int, default=0)
    args = parser.parse_args()

    from medallion_assets.embedded import spark as local_engine

    local_engine.LOCAL_SPARK_CONF.update(
        {"spark.ui.enabled": "true", "spark.ui.retainedJobs": "100000", "spark.ui.retainedStages": "100000"}
    )
    session = local_engine.local_spark_session()

    from dagster import DagsterInstance, materialize

    from medallion_assets.definitions import assets_of
    from medallion_assets.domains.flights.landing import stage
    from medallion_assets.framework.partitions import PartitionWindow
    from medallion_assets.orchestration.compute import LocalSparkCompute
    from medallion_assets.orchestration.jobs import partition_range_tags

    home = args.home or Path(tempfile.mkdtemp(prefix="medallion-profile-"))
    window = PartitionWindow(args.start, args.start + timedelta(days=args.days))
    if args.domain == "flights":
        stage(home / "landing", window, progress=False)
    instance = DagsterInstance.ephemeral()
    started = time.monotonic()
    result = materialize(
        assets_of[args.domain],
        resources={"compute": LocalSparkCompute(home=str(home))},
        tags=partition_range_tags(window),
        instance=instance,
        raise_on_error=False,
    )
    wall = time.monotonic() - started
    jobs = spark_jobs(session)

    spans: dict[str, list[float]] = defaultdict(list)
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is not None and event.step_key and event.event_type_value in STEP_EVENTS:
            spans[event.step_key].append(entry.timestamp)
    outcome = "ok" if result.success else "FAILED"
    print(f"{args.domain}, {args.days} day(s): {wall:.1f} s, {len(jobs)} Spark jobs, run {outcome}")
    print(f"{'step':40s} {'wall s':>7s} {'jobs':>5s} {'in jobs s':>9s} {'between s':>9s}")
    for step, (first, last) in sorted(((k, (min(v), max(v))) for k, v in spans.items()), key=lambda kv: kv[1][0]):
        inside = [job for job in jobs if first <= job[0] <= last]
        in_jobs = sum(done - submitted for submitted, done, _ in inside)
        print(f"{step:40s} {last - first:7.1f} {len(inside):5d} {in_jobs:9.1f} {last - first - in_jobs:9.1f}")
    if args.top_jobs:
        by_call: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
        for submitted, done, call in jobs:
            by_call[call][0] += 1
            by_call[call][1] += done - submitted
        print("\njobs by the call that started them")
        for call, (count, seconds) in sorted(by_call.items(), key=lambda kv: -kv[1][1])[: args.top_jobs]:
            print(f"{count:5d} {seconds:7.1f} s  {call or '(no call site)'}")


if __name__ == "__main__":
    main()
