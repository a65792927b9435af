"""`medallion-run`: the entry point each Databricks job task executes.

It runs the same table declaration, transform, Delta write and Pandera checks as the local path
(`run_table`), and reports the materialization and every check back to Dagster over Pipes. Started
without Pipes parameters (the bundle's own schedule), it runs the table standalone. With `--maintain` it runs the
table's maintenance (OPTIMIZE, then VACUUM) instead, and reports it as the table's maintenance asset.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from medallion_assets.framework.errors import TableBuildError, is_data_error
from medallion_assets.framework.lakehouse import Lakehouse, PathLakehouse, UnityCatalogLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableKey
from medallion_assets.runtime import protocol

if TYPE_CHECKING:
    from medallion_assets.framework.maintenance import MaintenanceReport
    from medallion_assets.framework.report import TableRunReport

PIPES_TRANSPORTS = tuple(sorted(set(protocol.PIPES_TRANSPORT_OF.values())))


class UnknownTable(TableBuildError):
    """The task names a table no domain declares: the bundle and the installed wheel disagree."""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=protocol.ENTRY_POINT, description=__doc__)
    parser.add_argument("--table", required=True, help="layer/name, e.g. silver/flights")
    parser.add_argument(
        "--maintain", action="store_true", help="OPTIMIZE and VACUUM the table instead of building a window of it"
    )
    parser.add_argument("--partition-start", default="", help="first day; empty means yesterday (UTC)")
    parser.add_argument("--partition-end", default="", help="last day, inclusive; empty means the first day")
    parser.add_argument(
        "--accepted-checks", default="", help="comma-separated blocking checks whose failure the operator accepts"
    )
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
        return PartitionWindow.single_day(datetime.now(UTC).date() - timedelta(days=1))
    return PartitionWindow.for_keys(args.partition_start, args.partition_end or args.partition_start)


def lakehouse_for(args: argparse.Namespace) -> Lakehouse:
    if args.table_root:
        return PathLakehouse(home=args.table_root, landing=args.landing_root)
    schemas = {"bronze": args.bronze_schema, "silver": args.silver_schema, "gold": args.gold_schema}
    return UnityCatalogLakehouse(catalog=args.catalog, landing_volume=args.landing_root, schemas=schemas)


def table_key(name: str) -> TableKey:
    from medallion_assets.domains import CATALOG

    layer, _, table = name.partition("/")
    key = TableKey(layer, table)  # type: ignore[arg-type]
    if key not in CATALOG:
        raise UnknownTable(f"unknown table {name!r}; this wheel declares: {', '.join(map(str, CATALOG))}")
    return key


def _pipes_components(transport: str) -> tuple[object, object]:
    from dagster_pipes import PipesDbfsContextLoader, PipesDbfsMessageWriter, PipesUnityCatalogVolumesContextLoader

    from medallion_assets.runtime.pipes_writer import PromptVolumesMessageWriter

    # Chunks go up every MESSAGE_CHUNK_SECONDS and once more at the end: a short build sends one chunk, and
    # Dagster reads it with one call instead of polling for many small ones.
    if transport == "dbfs":
        return PipesDbfsContextLoader(), PipesDbfsMessageWriter(interval=protocol.MESSAGE_CHUNK_SECONDS)
    return (
        PipesUnityCatalogVolumesContextLoader(),
        PromptVolumesMessageWriter(interval=protocol.MESSAGE_CHUNK_SECONDS),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Build one table. Raises on every failure.

    A python_wheel_task calls the entry point and ignores what it returns; only an exception or a
    non-zero SystemExit fails the task (Databricks: "Python wheel task", and the CLI's wheel trampoline
    calls `entry.load()()`). So nothing here reports a failure by return value.
    """
    args = parse_args(sys.argv[1:] if argv is None else argv)
    window = partition_window(args)
    key = table_key(args.table)
    if args.maintain and args.dagster_pipes_context:
        maintain_with_pipes(args, key)
    elif args.maintain:
        maintain_standalone(args, key)
    elif args.dagster_pipes_context:
        run_with_pipes(args, key, window)
    else:
        run_standalone(args, key, window)


def _build(args: argparse.Namespace, key: TableKey, window: PartitionWindow, run_id: str) -> TableRunReport:
    from medallion_assets.domains import CATALOG
    from medallion_assets.embedded.spark import runtime_spark_session
    from medallion_assets.framework.execution import run_table

    return run_table(
        runtime_spark_session(),
        lakehouse_for(args),
        CATALOG[key],
        CATALOG,
        window,
        run_id=run_id,
        accepted_checks=protocol.parse_check_names(args.accepted_checks),
    )


def _maintain(args: argparse.Namespace, key: TableKey) -> MaintenanceReport:
    from medallion_assets.domains import CATALOG
    from medallion_assets.embedded.spark import runtime_spark_session
    from medallion_assets.framework.maintenance import maintain_table

    return maintain_table(runtime_spark_session(), lakehouse_for(args), CATALOG[key])


def _raise_unless_committed(report: TableRunReport) -> None:
    if not report.committed:
        raise report.blocked_error()


def run_standalone(args: argparse.Namespace, key: TableKey, window: PartitionWindow) -> TableRunReport:
    report = _build(args, key, window, run_id=f"databricks-{datetime.now(UTC):%Y%m%dT%H%M%S}")
    print(f"{protocol.ENTRY_POINT}: {key} {window}: {report.metadata}")
    _raise_unless_committed(report)
    return report


def maintain_standalone(args: argparse.Namespace, key: TableKey) -> MaintenanceReport:
    report = _maintain(args, key)
    print(f"{protocol.ENTRY_POINT}: maintained {key}: {report.metadata}")
    return report


@contextmanager
def _pipes(args: argparse.Namespace) -> Iterator[Any]:
    """A Pipes session to the Dagster run that launched this task. A failure inside it is reported, in a structure
    and not in log text, with whether the same input would fail the same way again; then the task fails by
    raising."""
    from dagster_pipes import PipesMappingParamsLoader, open_dagster_pipes

    context_loader, message_writer = _pipes_components(args.pipes_transport)
    params = PipesMappingParamsLoader(
        {"DAGSTER_PIPES_CONTEXT": args.dagster_pipes_context, "DAGSTER_PIPES_MESSAGES": args.dagster_pipes_messages}
    )
    with open_dagster_pipes(
        context_loader=context_loader, message_writer=message_writer, params_loader=params
    ) as pipes:
        try:
            yield pipes
        except Exception as error:
            pipes.report_custom_message(protocol.failure_message(error, retryable=not is_data_error(error)))
            raise


def run_with_pipes(args: argparse.Namespace, key: TableKey, window: PartitionWindow) -> None:
    from medallion_assets.runtime.reporting_pipes import report_checks_over_pipes, report_materialization_over_pipes

    with _pipes(args) as pipes:
        pipes.log.info(f"building {key} for {window} on Databricks")
        report = _build(args, key, window, run_id=pipes.run_id)
        report_checks_over_pipes(pipes, report)
        _raise_unless_committed(report)
        report_materialization_over_pipes(pipes, report)


def maintain_with_pipes(args: argparse.Namespace, key: TableKey) -> None:
    from medallion_assets.runtime.reporting_pipes import report_maintenance_over_pipes

    with _pipes(args) as pipes:
        pipes.log.info(f"maintaining {key} on Databricks: OPTIMIZE, then VACUUM")
        report_maintenance_over_pipes(pipes, _maintain(args, key))


if __name__ == "__main__":
    main()
