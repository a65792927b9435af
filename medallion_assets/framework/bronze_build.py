"""Build a bronze table: land every line of the window's files, judged before the commit."""

from __future__ import annotations

from datetime import UTC, datetime

from medallion_assets.framework import bronze_ingest, checks
from medallion_assets.framework.build import Build, expect_committed, may_commit
from medallion_assets.framework.delta_io import write_window
from medallion_assets.framework.landing import folder_fingerprint
from medallion_assets.framework.partitions import describe_days
from medallion_assets.framework.quality import CheckOutcome
from medallion_assets.framework.report import Meta, TableRunReport


def build_bronze(build: Build) -> TableRunReport:
    table, window = build.table, build.window
    assert table.source is not None
    # Taken before any file is read: a file that changes mid-ingest gets a new fingerprint, and the sensor
    # re-runs its day.
    fingerprints = {
        day.isoformat(): folder_fingerprint(build.lakehouse.landing_dir(table.source, day)) for day in window.days()
    }
    files = bronze_ingest.discover_landed_files(build.lakehouse, table.source, window)
    rows = bronze_ingest.ingest(
        build.spark,
        table.source,
        files,
        run_id=build.run_id,
        ingested_at=datetime.now(UTC),
        partition_column=table.partition_column,
    )
    per_day = {
        row[table.partition_column]: row["counts"].asDict()
        for row in rows.groupBy(table.partition_column).agg(bronze_ingest.line_counts().alias("counts")).collect()
    }
    totals = {name: sum(counts[name] for counts in per_day.values()) for name in bronze_ingest.LINE_COUNTS}
    counted_lines = sum(landed.physical_lines for landed in files)
    empty_days = [
        day
        for day in window.days()
        if not per_day.get(day, {}).get("data_lines")
        and not (table.source.days_without_rows and per_day.get(day, {}).get("header_lines"))
    ]
    report = TableRunReport(table.key, window)
    report.checks += [
        CheckOutcome(
            checks.LANDING_DELIVERED,
            passed=not empty_days,
            description=checks.DESCRIPTIONS[checks.LANDING_DELIVERED],
            metadata={"days_without_data": [day.isoformat() for day in empty_days]},
            summary=f"no data line landed for {describe_days(empty_days)}"
            + " (the day folder is missing, or holds no file or only empty"
            + ("" if table.source.days_without_rows else " or header-only")
            + " files)",
        ),
        CheckOutcome(
            checks.LANDING_RECONCILIATION,
            passed=counted_lines == totals["lines"],
            description=checks.DESCRIPTIONS[checks.LANDING_RECONCILIATION],
            metadata={
                "landed_lines": counted_lines,
                "bronze_rows": totals["data_lines"],
                "header_lines": totals["header_lines"],
                "blank_lines": totals["blank_lines"],
            },
            summary=f"the files hold {counted_lines} lines and Spark read {totals['lines']}",
        ),
    ]
    report.metadata.update(
        {
            Meta.ROWS_IN: totals["data_lines"],
            "landed_lines": counted_lines,
            **totals,
            "landed_files": len(files),
            "empty_files": sum(not landed.has_lines for landed in files),
            "file_encodings": sorted({landed.encoding for landed in files}),
            Meta.LANDING_FINGERPRINTS: fingerprints,
        }
    )
    if not may_commit(build, report):
        return report
    location = build.lakehouse.table(table.key)
    commit = write_window(
        bronze_ingest.data_lines(rows),
        location,
        window,
        table.partition_column,
        evolve_schema=True,
        note=build.commit_note(),
    )
    # The files were read twice, to judge and to write; a file that changed in between is caught here.
    expect_committed(build, table.key, commit.window_rows, totals["data_lines"])
    report.committed = True
    report.metadata.update(
        {Meta.ROWS_OUT: commit.window_rows, Meta.DELTA_VERSION: commit.version, Meta.TABLE: str(location)}
    )
    return report
