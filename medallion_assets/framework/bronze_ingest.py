"""Bronze ingestion: landed CSV files kept exactly as received, plus audit columns."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from medallion_assets.framework.errors import MissingLanding
from medallion_assets.framework.lakehouse import Lakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import LandingSource

CORRUPT_RECORD = "_corrupt_record"
SOURCE_COLUMNS = "_source_columns"
AUDIT_COLUMNS: tuple[str, ...] = (
    CORRUPT_RECORD,
    "_source_file",
    "_source_encoding",
    SOURCE_COLUMNS,
    "_ingested_at",
    "_run_id",
    "_record_hash",
)
UTF8 = "UTF-8"
# Every byte decodes in Latin-1, so a non-UTF-8 file is still landed byte for byte and can be re-read.
FALLBACK_ENCODING = "ISO-8859-1"


@dataclass(frozen=True)
class LandedFile:
    path: str
    relative_path: str
    day: date
    encoding: str
    header: tuple[str, ...]
    data_lines: int

    @property
    def is_empty(self) -> bool:
        return not self.header


def _column_names(header_line: str) -> tuple[str, ...]:
    names = next(csv.reader([header_line]), [])
    cleaned: list[str] = []
    for position, name in enumerate(names):
        name = name.strip()
        # Spark cannot hold blank or repeated column names; positional names keep the value.
        cleaned.append(name if name and name not in cleaned and not name.startswith("_") else f"_c{position}")
    return tuple(cleaned)


def inspect_file(path: Path, landing_root: Path, day: date) -> LandedFile:
    # Relative to the landing root, so the audit trail reads the same locally and on a Volume.
    relative = path.relative_to(landing_root).as_posix()
    raw = path.read_bytes()
    try:
        text, encoding = raw.decode("utf-8"), UTF8
    except UnicodeDecodeError:
        text, encoding = raw.decode("latin-1"), FALLBACK_ENCODING
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return LandedFile(str(path), relative, day, encoding, (), 0)
    return LandedFile(str(path), relative, day, encoding, _column_names(lines[0]), len(lines) - 1)


def discover_landed_files(lakehouse: Lakehouse, source: LandingSource, window: PartitionWindow) -> list[LandedFile]:
    """Every landed file of the window, in a deterministic order; a missing day folder is an error."""
    files: list[LandedFile] = []
    missing: list[str] = []
    for day in window.days():
        folder = lakehouse.landing_dir(source.name, day)
        if not folder.is_dir():
            missing.append(str(folder))
            continue
        files.extend(inspect_file(path, Path(lakehouse.landing_root), day) for path in sorted(folder.glob("*.csv")))
    if missing:
        raise MissingLanding(
            f"no landed {source.name} data for {len(missing)} day(s) of {window}: missing folder(s) "
            + ", ".join(missing[:5])
            + (" ..." if len(missing) > 5 else "")
            + ". Stage or land the files, then re-run these partitions."
        )
    return files


def _record_hash(columns: list[str]) -> Column:
    # A separator that cannot appear in CSV text keeps ("a,b", "c") apart from ("a", "b,c").
    return F.sha2(F.concat_ws("\u001f", *[F.coalesce(F.col(c), F.lit("\u0000")) for c in columns]), 256)


def _read_file(spark: SparkSession, landed: LandedFile) -> DataFrame:
    schema = T.StructType(
        [T.StructField(name, T.StringType()) for name in landed.header]
        + [T.StructField(CORRUPT_RECORD, T.StringType())]
    )
    frame = (
        spark.read.schema(schema)
        .option("header", "true")
        .option("mode", "PERMISSIVE")
        .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        .option("encoding", landed.encoding)
        .csv(landed.path)
    )
    return frame.select(
        *landed.header,
        F.col(CORRUPT_RECORD),
        F.lit(landed.relative_path).alias("_source_file"),
        F.lit(landed.encoding).alias("_source_encoding"),
        F.array(*[F.lit(name) for name in landed.header]).alias(SOURCE_COLUMNS),
        F.lit(landed.day).alias("__day"),
    )


def empty_bronze_frame(spark: SparkSession, source: LandingSource, partition_column: str) -> DataFrame:
    return spark.createDataFrame([], bronze_schema(source, partition_column))


def bronze_schema(source: LandingSource, partition_column: str) -> T.StructType:
    string_fields = [*source.columns, CORRUPT_RECORD, "_source_file", "_source_encoding"]
    return T.StructType(
        [T.StructField(name, T.StringType()) for name in string_fields]
        + [
            T.StructField(SOURCE_COLUMNS, T.ArrayType(T.StringType())),
            T.StructField("_ingested_at", T.TimestampType()),
            T.StructField("_run_id", T.StringType()),
            T.StructField("_record_hash", T.StringType()),
            T.StructField(partition_column, T.DateType()),
        ]
    )


def ingest(
    spark: SparkSession,
    source: LandingSource,
    files: list[LandedFile],
    *,
    run_id: str,
    ingested_at: datetime,
    partition_column: str,
) -> DataFrame:
    """One DataFrame of every landed row; columns a file lacks are null, extra columns are kept."""
    frames = [_read_file(spark, landed) for landed in files if not landed.is_empty]
    combined = empty_bronze_frame(spark, source, "__day").drop("_ingested_at", "_run_id", "_record_hash")
    for frame in frames:
        combined = combined.unionByName(frame, allowMissingColumns=True)
    received = [c for c in combined.columns if c not in AUDIT_COLUMNS and c != "__day"]
    return combined.select(
        *received,
        *[c for c in AUDIT_COLUMNS if c in combined.columns],
        F.lit(ingested_at).cast(T.TimestampType()).alias("_ingested_at"),
        F.lit(run_id).alias("_run_id"),
        _record_hash([*received, CORRUPT_RECORD]).alias("_record_hash"),
        F.col("__day").alias(partition_column),
    )
