"""`medallion-run`: the entry point each Databricks job task executes.

It runs the same table declaration, transform, Delta write and Pandera checks as the local path
(`run_table`), and reports the materialization and every check back to Dagster over Pipes. Started
without Pipes parameters (the bundle's own schedule), it runs the table standalone.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from medallion_assets.framework.lakehouse import Lakehouse, PathLakehouse, UnityCatalogLakehouse
from medallion_assets.framework.partitions import InvalidPartitionKey, PartitionWindow, parse_partition_key
from medallion_assets.framework.table import TableKey

PIPES_TRANSPORTS = ("volumes", "dbfs")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="medallion-run", description=__doc__)
    parser.add_argument("--table", required=True, help="layer/name, e.g. silver/flights")
    parser.add_argument("--partition-start", default="", help="first day; empty means yesterday (UTC)")
    parser.add_argument("--partition-end", default="", help="last day, inclusive; empty means the first day")
    parser.add_argument("--catalog", default="main")
    parser.add_argument("--bronze-schema", default="bronze")
    parser.add_argument("--silver-schema", default="silver")
    parser.add_argument("--gold-schema", default="gold")
    parser.add_argument("--landing-root", required=True, help="the landing Volume, e.g. /Volumes/main/landing/files")
    parser.add_argument("--table-root", default="", help="empty: managed Unity Catalog tables; else a path root")
    parser.add_argument("--pipes-transport", choices=PIPES_TRANSPORTS, default="volumes")
    parser.add_argument("--dagster-pipes-context", default="")
    parser.add_argument("--dagster-pipes-messages", default="")
    return parser.parse_args(argv)


def partition_window(args: argparse.Namespace) -> PartitionWindow:
    if not args.partition_start:
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        return PartitionWindow.single_day(yesterday)
    first = parse_partition_key(args.partition_start)
    last = parse_partition_key(args.partition_end) if args.partition_end else first
    return PartitionWindow(first, last + timedelta(days=1))


def lakehouse_for(args: argparse.Namespace) -> Lakehouse:
    if args.table_root:
        return PathLakehouse(home=args.table_root, landing=args.landing_root)
    schemas = {"bronze": args.bronze_schema, "silver": args.silver_schema, "gold": args.gold_schema}
    return UnityCatalogLakehouse(catalog=args.catalog, landing_volume=args.landing_root, schemas=schemas)


def _pipes_components(transport: str) -> tuple[object, object]:
    from dagster_pipes import (
        PipesDbfsContextLoader,
        PipesDbfsMessageWriter,
        PipesUnityCatalogVolumesContextLoader,
        PipesUnityCatalogVolumesMessageWriter,
    )

    if transport == "dbfs":
        return PipesDbfsContextLoader(), PipesDbfsMessageWriter()
    return PipesUnityCatalogVolumesContextLoader(), PipesUnityCatalogVolumesMessageWriter()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from medallion_assets.resources.compute import DATA_ERRORS

    try:
        window = partition_window(args)
        layer, _, name = args.table.partition("/")
        key = TableKey(layer, name)  # type: ignore[arg-type]
    except InvalidPartitionKey as error:
        print(f"medallion-run: {error}", file=sys.stderr)
        return 2
    try:
        if args.dagster_pipes_context:
            run_with_pipes(args, key, window)
        else:
            report = run_standalone(args, key, window)
            failed = [check.name for check in report.checks if not check.passed and check.severity == "ERROR"]
            if failed:
                print(f"medallion-run: {key} {window}: blocking checks failed: {', '.join(failed)}", file=sys.stderr)
                return 1
    except DATA_ERRORS as error:
        print(f"medallion-run: {error}", file=sys.stderr)
        return 1
    return 0


def _build(args: argparse.Namespace, key: TableKey, window: PartitionWindow, run_id: str):
    from medallion_assets.domains import CATALOG
    from medallion_assets.framework.execution import run_table
    from medallion_assets.resources.spark import runtime_spark_session

    if key not in CATALOG:
        raise SystemExit(f"medallion-run: unknown table {key}; known: {', '.join(map(str, CATALOG))}")
    return run_table(runtime_spark_session(), lakehouse_for(args), CATALOG[key], CATALOG, window, run_id=run_id)


def run_standalone(args: argparse.Namespace, key: TableKey, window: PartitionWindow):
    report = _build(args, key, window, run_id=f"databricks-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    print(f"medallion-run: {key} {window}: {report.metadata}")
    return report


def run_with_pipes(args: argparse.Namespace, key: TableKey, window: PartitionWindow) -> None:
    from dagster_pipes import PipesMappingParamsLoader, open_dagster_pipes

    from medallion_assets.framework.reporting_pipes import report_over_pipes

    context_loader, message_writer = _pipes_components(args.pipes_transport)
    params = PipesMappingParamsLoader(
        {"DAGSTER_PIPES_CONTEXT": args.dagster_pipes_context, "DAGSTER_PIPES_MESSAGES": args.dagster_pipes_messages}
    )
    with open_dagster_pipes(
        context_loader=context_loader, message_writer=message_writer, params_loader=params
    ) as pipes:
        pipes.log.info(f"building {key} for {window} on Databricks")
        report = _build(args, key, window, run_id=pipes.run_id)
        report_over_pipes(pipes, report)


if __name__ == "__main__":
    sys.exit(main())
