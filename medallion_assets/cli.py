"""`medallion`: stage real data and run the lakehouse on the embedded default."""

from __future__ import annotations

import argparse
import inspect
import os
import sys
import threading
from datetime import date, timedelta
from pathlib import Path

from medallion_assets.framework.partitions import InvalidPartitionKey, PartitionWindow, parse_partition_key
from medallion_assets.settings import medallion_home


class UsageError(ValueError):
    """A command line the command cannot act on; argparse reports it with the usage line."""


def _window(args: argparse.Namespace) -> PartitionWindow:
    from medallion_assets.domains import DOMAINS

    start: date = DOMAINS[args.domain].PARTITION_DAYS.start if args.start is None else parse_partition_key(args.start)
    if args.days < 1:
        raise InvalidPartitionKey("--days must be at least 1")
    return PartitionWindow(start, start + timedelta(days=args.days))


def stage_command(args: argparse.Namespace) -> int:
    from medallion_assets.domains import DOMAINS

    home = medallion_home()
    window = _window(args)
    stage = DOMAINS[args.domain].stage
    options = {}
    if args.scale is not None:
        if "scale" not in inspect.signature(stage).parameters:
            raise UsageError(f"the {args.domain} domain stages real data and has no --scale")
        if args.scale <= 0:
            raise UsageError("--scale must be positive")
        options["scale"] = args.scale
    result = stage(home / "landing", window, progress=not args.quiet, **options)
    print(
        f"staged {args.domain} {window} under {home / 'landing'}: {result['files_written']} files written, "
        f"{result['files_unchanged']} already up to date"
    )
    return 0


def _dagster_home(home: Path) -> Path:
    from medallion_assets.orchestration.instance import prepare_dagster_home

    # Dagster writes runs to the instance under DAGSTER_HOME; without a dagster.yaml it warns on every start.
    dagster_home = prepare_dagster_home(Path(os.environ.get("DAGSTER_HOME") or home / "dagster"))
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home


def run_command(args: argparse.Namespace) -> int:
    from dagster import DagsterEventType, DagsterInstance

    from medallion_assets.definitions import defs
    from medallion_assets.orchestration.jobs import partition_range_tags, tables_job_name
    from medallion_assets.orchestration.progress import progress_logger

    home = medallion_home()
    window = _window(args)
    if not args.no_stage:
        stage_command(args)
    dagster_home = _dagster_home(home)
    job = defs.resolve_job_def(tables_job_name(args.domain))
    run_config: dict[str, object] = {}
    if not args.verbose:
        # One line per table instead of Dagster's event stream; the events still go to the instance. Dagster
        # falls back to its console logger unless the run config names the loggers.
        job = job.with_logger_defs({"progress": progress_logger})
        run_config = {"loggers": {"progress": {}}}
    print(f"materializing every {args.domain} table for {window} (one single-run backfill) ...", flush=True)
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            run_config=run_config, instance=instance, tags=partition_range_tags(window), raise_on_error=False
        )
    failed_checks = [
        event.asset_check_evaluation_data
        for event in result.all_events
        if event.event_type == DagsterEventType.ASSET_CHECK_EVALUATION and not event.asset_check_evaluation_data.passed
    ]
    materialized = {event.asset_key for event in result.all_events if event.is_step_materialization}
    failed_steps = [event for event in result.all_events if event.is_step_failure]
    print(f"\n{len(materialized)} tables materialized, {len(failed_steps)} failed, {len(failed_checks)} failed checks")
    for event in failed_steps:
        error = event.step_failure_data.error
        print(f"  failed: {event.step_key}: {error.message.strip().splitlines()[-1] if error else 'unknown error'}")
    for evaluation in failed_checks:
        print(
            f"  check failed: {evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
            f" ({evaluation.severity.value})"
        )
    print(f"tables: {home / 'warehouse'}/<bronze|silver|gold>/<table>  (path-based Delta tables)")
    print(f"open the UI:  DAGSTER_HOME={dagster_home} MEDALLION_HOME={home} dagster dev")
    return 0 if result.success and not failed_checks else 1


ENGINE_READY = "export {setting}="


def engine_command(args: argparse.Namespace) -> int:
    """Serve local Spark over Spark Connect until Ctrl-C or SIGTERM, so that every run connects to one warm JVM."""
    import signal

    stopped = threading.Event()
    previous = {
        received: signal.signal(received, lambda *_: stopped.set()) for received in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return serve_engine(stopped)
    finally:
        for received, handler in previous.items():
            signal.signal(received, handler)


def serve_engine(stopped: threading.Event) -> int:
    from medallion_assets.embedded.spark import REMOTE_SETTING, local_spark_session, serve_connect

    print("starting local Spark ...", flush=True)
    url = serve_connect(local_spark_session())
    print(
        "local Spark is serving Spark Connect on this machine. In the shell that runs `dagster dev` or "
        "`medallion run`, set:\n"
        f"  {ENGINE_READY.format(setting=REMOTE_SETTING)}'{url}'\n"
        "and each run builds on this engine instead of starting its own. Stop with Ctrl-C.",
        flush=True,
    )
    stopped.wait()
    print("stopped", flush=True)
    return 0


def bundle_command(args: argparse.Namespace) -> int:
    from medallion_assets.runtime.bundle import render

    Path(args.output).write_text(render())
    print(f"wrote {args.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from medallion_assets.domains import DEFAULT_DOMAIN, DOMAINS

    parser = argparse.ArgumentParser(prog="medallion", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("stage", "land a domain's source files per day under $MEDALLION_HOME/landing"),
        ("run", "stage, then materialize every table for the days on local Spark"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--start", help="first day, YYYY-MM-DD (default: the domain's first day)")
        command.add_argument("--days", type=int, default=7, help="number of days (default 7)")
        command.add_argument("--domain", default=DEFAULT_DOMAIN, choices=sorted(DOMAINS), help="the business domain")
        command.add_argument("--scale", type=float, help="the generator's scale factor, for a generated domain")
        command.add_argument("--quiet", action="store_true", help="no progress bar")
        if name == "run":
            command.add_argument("--no-stage", action="store_true", help="use what is already landed")
            command.add_argument("--verbose", action="store_true", help="Dagster's full event stream")
    commands.add_parser("engine", help="keep local Spark running, served over Spark Connect, for every run to share")
    bundle = commands.add_parser("bundle", help="write databricks.yml from the table declarations")
    bundle.add_argument("--output", default="databricks.yml")
    args = parser.parse_args(argv)
    try:
        handlers = {"stage": stage_command, "run": run_command, "engine": engine_command, "bundle": bundle_command}
        return handlers[args.command](args)
    except (InvalidPartitionKey, UsageError) as error:
        parser.error(str(error))
    return 2


if __name__ == "__main__":
    sys.exit(main())
