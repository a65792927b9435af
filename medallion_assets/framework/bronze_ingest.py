"""Bronze ingestion: every landed line kept exactly as received, judged line by line, plus audit columns.

Spark's text reader yields each line's bytes untouched, whatever their encoding, so `_raw_line` is the line as
delivered (without its terminator) and a line can always be recovered byte for byte. Each line is then decoded
and parsed on its own: a line with bytes its file's encoding cannot hold, or with the wrong field count, is
marked in `_line_error` and costs that line only; its neighbours parse as usual.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from medallion_assets.framework.errors import MissingLanding
from medallion_assets.framework.lakehouse import Lakehouse
from medallion_assets.framework.landed_files import UTF8, LandedFile, inspect_file, is_landed_file
from medallion_assets.framework.local_frames import empty_frame
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import LandingSource

RAW_LINE = "_raw_line"
LINE_KIND = "_line_kind"
LINE_ERROR = "_line_error"
SOURCE_FILE = "_source_file"
SOURCE_COLUMNS = "_source_columns"
LANDED_AT = "_landed_at"
AUDIT_COLUMNS: tuple[str, ...] = (
    RAW_LINE,
    LINE_ERROR,
    SOURCE_FILE,
    "_source_encoding",
    SOURCE_COLUMNS,
    LANDED_AT,
    "_ingested_at",
    "_run_id",
    "_record_hash",
)


class LineKind:
    """What a landed line is. Bronze keeps the data lines; header and blank lines are counted, not stored."""

    DATA = "data"
    HEADER = "header"
    BLANK = "blank"


class LineError:
    """Why a data line could not be read, one code per cause: silver quarantines each under its own rule."""

    UNDECODABLE = "undecodable"
    MALFORMED = "malformed"


_MALFORMED = "__malformed"
# Longer than any line Spark can hold in one string: `substring` needs a length.
MAX_LINE_CHARS = 2**31 - 1


def discover_landed_files(lakehouse: Lakehouse, source: LandingSource, window: PartitionWindow) -> list[LandedFile]:
    """Every landed file of each day of the window, in a deterministic order; a missing folder is an error.

    A static source's files land for every day: each day gets its own entry for the same file, judged once.
    """
    files: list[LandedFile] = []
    missing: list[str] = []
    root = Path(lakehouse.landing_root)
    inspected: dict[Path, LandedFile] = {}
    for day in window.days():
        folder = lakehouse.landing_dir(source, day)
        if not folder.is_dir():
            if str(folder) not in missing:  # a static source's one folder is missing for every day
                missing.append(str(folder))
            continue
        for path in sorted(folder.iterdir()):
            if path.is_file() and is_landed_file(path.name):
                if path not in inspected:
                    inspected[path] = inspect_file(path, root, day, source.encoding, source.columns)
                files.append(replace(inspected[path], day=day))
    if missing:
        raise MissingLanding(
            f"no landed {source.name} data for {len(missing)} day(s) of {window}: missing folder(s) "
            + ", ".join(missing[:5])
            + (" ..." if len(missing) > 5 else "")
            + ". Stage or land the files, then re-run these partitions."
        )
    return files


def _utf16_is_well_formed(raw: Column, encoding: str) -> Column:
    """Even length and every surrogate paired, judged on hex digits so that `decode` never sees bad input.

    Spark 4's `decode` raises on malformed input rather than replacing it, and would fail the whole job.
    """
    unit = r"[0-9A-F]{2}(?:[0-9A-C][0-9A-F]|D[0-7]|[EF][0-9A-F])"
    pair = r"[0-9A-F]{2}D[89AB][0-9A-F]{2}D[C-F]"
    if encoding == "UTF-16BE":
        unit = r"(?:[0-9A-C][0-9A-F]|D[0-7]|[EF][0-9A-F])[0-9A-F]{2}"
        pair = r"D[89AB][0-9A-F]{4}D[C-F][0-9A-F]{2}"
    return F.hex(raw).rlike(f"^(?:{unit}|{pair})*$")


def _decoded(value: Column, encoding: str) -> tuple[Column, Column]:
    """The line as text and whether its bytes are valid in the file's encoding."""
    raw = value.cast("binary")
    if encoding == UTF8:
        return F.make_valid_utf8(value), F.is_valid_utf8(value)
    if encoding.startswith("UTF-16"):
        valid = _utf16_is_well_formed(raw, encoding)
        # The two-byte separator leaves a CRLF file's \r on each line.
        return F.when(valid, F.regexp_replace(F.decode(raw, encoding), "\r$", "")), valid
    return F.decode(raw, encoding), F.lit(True)


def _read_files(spark: SparkSession, files: list[LandedFile], static: bool) -> DataFrame:
    """One scan for files that share encoding, separator, delimiter and header.

    A dated file's day is its folder's name. A static file is read once and its lines land for each day it is
    listed for.
    """
    first = files[0]
    reader = spark.read.format("text")
    if first.line_separator is not None:
        reader = reader.option("lineSep", first.line_separator.decode("latin-1"))
    lines = reader.load(sorted({landed.path for landed in files}))
    text, valid = _decoded(F.col("value"), first.encoding)
    # The byte-order mark belongs to the file, not to the header's first column name. (A prefix test, not a
    # regular expression: this runs for every line.)
    text = F.when(text.startswith("\ufeff"), F.substring(text, 2, MAX_LINE_CHARS)).otherwise(text)
    schema = ", ".join(f"`{name}` STRING" for name in first.header) + f", `{_MALFORMED}` STRING"
    parsed = F.from_csv(
        text,
        schema,
        # RFC 4180, as spreadsheets and databases export: a quote inside a quoted field is doubled, and a
        # backslash is an ordinary character (Spark's default escape would eat the one in "Martha\'s Vineyard").
        {"sep": first.delimiter, "escape": '"', "mode": "PERMISSIVE", "columnNameOfCorruptRecord": _MALFORMED},
    )
    kind = (
        F.when(F.trim(text) == "", F.lit(LineKind.BLANK))
        .when(text == F.lit(first.header_line), F.lit(LineKind.HEADER))
        .otherwise(F.lit(LineKind.DATA))
    )
    error = F.when(kind != LineKind.DATA, F.lit(None).cast("string")).when(~valid, F.lit(LineError.UNDECODABLE))
    error = error.when(F.col("__parsed")[_MALFORMED].isNotNull(), F.lit(LineError.MALFORMED))
    # `<source>/<day>/<file>` (`<source>/<file>` when static): the path's last segments. The URI of a path
    # percent-encodes it; '+' stays literal, which url_decode would read as a space. Plain string functions,
    # because this runs for every line: a regular expression over the whole path cost 1.0 of 1.3 s per 240,000
    # lines, these 0.1 s.
    segments = 2 if static else 3
    relative = F.url_decode(
        F.replace(F.substring_index(F.col("_metadata.file_path"), "/", -segments), F.lit("+"), F.lit("%2B"))
    )
    if static:
        day = F.explode(F.array(*[F.lit(d) for d in sorted({landed.day for landed in files})]))
    else:
        day = F.to_date(F.substring_index(F.substring_index(SOURCE_FILE, "/", 2), "/", -1))
    with_parsed = lines.select(
        "value",
        "_metadata.file_modification_time",
        relative.alias(SOURCE_FILE),
        F.when(kind == LineKind.DATA, parsed).alias("__parsed"),
        kind.alias(LINE_KIND),
    )
    return with_parsed.select(
        *[F.col("__parsed")[name].alias(name) for name in first.header],
        F.col("value").cast("binary").alias(RAW_LINE),
        error.alias(LINE_ERROR),
        F.col(SOURCE_FILE),
        F.lit(first.encoding).alias("_source_encoding"),
        F.array(*[F.lit(name) for name in first.header]).alias(SOURCE_COLUMNS),
        F.col("file_modification_time").alias(LANDED_AT),
        day.alias("__day"),
        F.col(LINE_KIND),
    )


def bronze_schema(source: LandingSource, partition_column: str) -> T.StructType:
    string = T.StringType()
    return T.StructType(
        [T.StructField(name, string) for name in source.columns]
        + [
            T.StructField(RAW_LINE, T.BinaryType()),
            T.StructField(LINE_ERROR, string),
            T.StructField(SOURCE_FILE, string),
            T.StructField("_source_encoding", string),
            T.StructField(SOURCE_COLUMNS, T.ArrayType(string)),
            T.StructField(LANDED_AT, T.TimestampType()),
            T.StructField("_ingested_at", T.TimestampType()),
            T.StructField("_run_id", string),
            T.StructField("_record_hash", string),
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
    """One DataFrame of every landed line, with its `_line_kind`; columns a file lacks are null, extra kept."""
    groups: dict[tuple[object, ...], list[LandedFile]] = defaultdict(list)
    for landed in files:
        if landed.has_lines:
            groups[landed.read_signature].append(landed)
    audit_fields = {"_ingested_at", "_run_id", "_record_hash", partition_column}
    empty_schema = T.StructType(
        [f for f in bronze_schema(source, partition_column).fields if f.name not in audit_fields]
        + [T.StructField("__day", T.DateType())]
    )
    combined = empty_frame(spark, T.StructType([*empty_schema.fields, T.StructField(LINE_KIND, T.StringType())]))
    for group in groups.values():
        combined = combined.unionByName(_read_files(spark, group, source.static), allowMissingColumns=True)
    received = [c for c in combined.columns if c not in AUDIT_COLUMNS and c not in ("__day", LINE_KIND)]
    return combined.select(
        *received,
        *[c for c in AUDIT_COLUMNS if c in combined.columns],
        F.lit(ingested_at).cast(T.TimestampType()).alias("_ingested_at"),
        F.lit(run_id).alias("_run_id"),
        # The line's own bytes and where they came from: an identical line in another file is another record.
        F.sha2(F.concat(F.col(RAW_LINE), F.encode(F.col(SOURCE_FILE), "UTF-8")), 256).alias("_record_hash"),
        F.col("__day").alias(partition_column),
        F.col(LINE_KIND),
    )


def data_lines(lines: DataFrame) -> DataFrame:
    """The rows bronze stores: every data line, without the line-kind column the tally needed."""
    return lines.where(F.col(LINE_KIND) == LineKind.DATA).drop(LINE_KIND)


LINE_COUNTS = ("lines", "data_lines", "header_lines", "blank_lines", "undecodable_lines", "malformed_lines")


def line_counts() -> Column:
    """Aggregates of a bronze frame: lines, and data lines by outcome, for one `agg` call."""
    return F.struct(
        F.count(F.lit(1)).alias("lines"),
        F.count_if(F.col(LINE_KIND) == LineKind.DATA).alias("data_lines"),
        F.count_if(F.col(LINE_KIND) == LineKind.HEADER).alias("header_lines"),
        F.count_if(F.col(LINE_KIND) == LineKind.BLANK).alias("blank_lines"),
        F.count_if(F.col(LINE_ERROR) == LineError.UNDECODABLE).alias("undecodable_lines"),
        F.count_if(F.col(LINE_ERROR) == LineError.MALFORMED).alias("malformed_lines"),
    )
