"""Files as real exporters write them land without the loss of a good row.

The corpus is the real FAA airports snapshot (1,458 airports), written the way spreadsheets, databases and
Windows tools export it. Two real names carry their proper accents (San José, Gutiérrez), so every encoding
has characters to get right. Each export lands as one day of `bronze/airports`; one window builds bronze and
silver for all of them, and every day's silver must equal the plain file's, row for row.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from medallion_assets.domains import flights
from medallion_assets.domains.flights.landing import AIRPORTS, _package_csv
from medallion_assets.framework import checks, landed_files
from medallion_assets.framework.execution import run_table
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.landed_files import LATIN1, count_lines
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableKey

CATALOG = {table.key: table for table in flights.TABLES}
BRONZE, SILVER = TableKey("bronze", "airports"), TableKey("silver", "airports")
ACCENTED = {
    "Norman Y Mineta San Jose Intl": "Norman Y Mineta San José Intl",
    "Sitka Rocky Gutierrez": "Sitka Rocky Gutiérrez",
}
FIRST_DAY = date(2013, 3, 1)


def real_rows() -> list[list[str]]:
    text = _package_csv("airports")
    for plain, accented in ACCENTED.items():
        text = text.replace(plain, accented)
    return list(csv.reader(io.StringIO(text)))


def write(rows: list[list[str]], *, delimiter: str = ",", newline: str = "\n", quoting: int = csv.QUOTE_MINIMAL) -> str:
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=newline, quoting=quoting).writerows(rows)
    return out.getvalue()


def corpus() -> dict[str, tuple[str, bytes]]:
    """Export name -> (file name, bytes), each the same real snapshot."""
    rows = real_rows()
    plain = write(rows)
    with_separator = [
        [f"{row[0]}", row[1].replace("Lansdowne Airport", "Lansdowne\u2028Airport"), *row[2:]] for row in rows
    ]
    return {
        "plain_utf8": ("airports.csv", plain.encode()),
        "excel_csv_utf8_bom_crlf": ("airports.csv", b"\xef\xbb\xbf" + write(rows, newline="\r\n").encode()),
        "windows_crlf": ("airports.csv", write(rows, newline="\r\n").encode()),
        "classic_mac_cr": ("airports.csv", write(rows, newline="\r").encode()),
        "no_final_newline": ("airports.csv", plain.rstrip("\n").encode()),
        "blank_lines": ("airports.csv", plain.replace("\n", "\n\n", 3).encode() + b"\n\n"),
        "excel_unicode_text_utf16le_tab": (
            "airports.txt",
            b"\xff\xfe" + write(rows, delimiter="\t", newline="\r\n").encode("utf-16-le"),
        ),
        "utf16be_bom": ("airports.csv", b"\xfe\xff" + plain.encode("utf-16-be")),
        "semicolon_export": ("airports.csv", write(rows, delimiter=";").encode()),
        "database_quote_all": ("airports.csv", write(rows, quoting=csv.QUOTE_ALL).encode()),
        "pipe_unload": ("airports.txt", write(rows, delimiter="|").encode()),
        "gzip": ("airports.csv.gz", gzip.compress(plain.encode(), mtime=0)),
        "bzip2": ("airports.csv.bz2", bz2.compress(plain.encode())),
        "unicode_line_separator_in_a_value": ("airports.csv", write(with_separator).encode()),
        # A legacy Windows export to a source that declares UTF-8: only the two accented lines cannot decode.
        "latin1_into_a_utf8_source": ("airports.csv", plain.encode("latin-1")),
    }


CASES = corpus()
DAYS = {name: FIRST_DAY + timedelta(days=position) for position, name in enumerate(CASES)}
WINDOW = PartitionWindow(FIRST_DAY, FIRST_DAY + timedelta(days=len(CASES)))


def land_corpus(home: Path, cases: dict[str, tuple[str, bytes]], days: dict[str, date]) -> None:
    for name, (file_name, content) in cases.items():
        folder = home / "landing" / AIRPORTS.name / days[name].isoformat()
        folder.mkdir(parents=True)
        (folder / file_name).write_bytes(content)


def build(spark, home: Path, catalog, window: PartitionWindow):
    lakehouse = PathLakehouse(str(home))
    return [run_table(spark, lakehouse, catalog[key], catalog, window, run_id="corpus") for key in (BRONZE, SILVER)]


@pytest.fixture(scope="module")
def landed(spark, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("corpus")
    land_corpus(home, CASES, DAYS)
    bronze, silver = build(spark, home, CATALOG, WINDOW)
    return home, bronze, silver


def silver_day(spark, home: Path, day: date):
    columns = ["faa", "name", "lat", "lon", "alt", "utc_offset_hours", "dst", "tzone"]
    table = spark.read.format("delta").load(str(home / "warehouse/silver/airports"))
    return sorted(
        tuple(row) for row in table.where(F.col("partition_date") == day).where("is_current").select(*columns).collect()
    )


def test_python_and_spark_count_the_same_lines_in_every_export(landed) -> None:
    _, bronze, _ = landed
    reconciliation = next(c for c in bronze.checks if c.name == checks.LANDING_RECONCILIATION)
    assert reconciliation.passed, reconciliation.metadata
    assert bronze.committed


def test_every_export_lands_every_airport_exactly_as_the_plain_file(spark, landed) -> None:
    home, _, silver = landed
    assert silver.committed
    baseline = silver_day(spark, home, DAYS["plain_utf8"])
    assert len(baseline) == 1458
    assert ("SJC", "Norman Y Mineta San José Intl") in {row[:2] for row in baseline}
    results = {}
    for name, day in DAYS.items():
        rows = silver_day(spark, home, day)
        results[name] = len(rows)
        if name == "latin1_into_a_utf8_source":
            assert set(rows) == {row for row in baseline if row[1] not in ACCENTED.values()}, name
        elif name == "unicode_line_separator_in_a_value":
            assert len(rows) == 1458 and ("04G", "Lansdowne\u2028Airport") in {row[:2] for row in rows}
        else:
            assert rows == baseline, name
    print("silver rows per export:", results)


def test_a_wrongly_encoded_line_is_quarantined_byte_for_byte(spark, landed) -> None:
    home, _, silver = landed
    quarantine = spark.read.format("delta").load(str(home / "warehouse/silver/airports_quarantine")).collect()
    assert len(quarantine) == 2 and all(row["_failed_rules"] == ["line_decodes"] for row in quarantine)
    raw = {bytes(row["_raw_line"]) for row in quarantine}
    assert any("Gutiérrez".encode("latin-1") in line for line in raw)
    assert silver.metadata["rows_quarantined"] == 2


def test_bronze_keeps_every_line_recoverable_exactly_as_received(spark, landed) -> None:
    home, _, _ = landed
    bronze = spark.read.format("delta").load(str(home / "warehouse/bronze/airports"))
    day = DAYS["windows_crlf"]
    lines = [bytes(row["_raw_line"]) for row in bronze.where(F.col("partition_date") == day).collect()]
    expected = CASES["windows_crlf"][1].split(b"\r\n")[1:-1]  # the data lines: the header is counted, not stored
    assert sorted(lines) == sorted(expected)


def test_a_source_that_declares_latin1_lands_every_airport(spark, tmp_path: Path) -> None:
    legacy = replace(AIRPORTS, encoding=LATIN1)
    catalog = {**CATALOG, BRONZE: replace(CATALOG[BRONZE], source=legacy)}
    day = date(2013, 4, 1)
    land_corpus(tmp_path, {"latin1": CASES["latin1_into_a_utf8_source"]}, {"latin1": day})
    _, silver = build(spark, tmp_path, catalog, PartitionWindow.single_day(day))
    rows = silver_day(spark, tmp_path, day)
    assert len(rows) == 1458 and silver.metadata["rows_quarantined"] == 0
    assert ("SIT", "Sitka Rocky Gutiérrez") in {row[:2] for row in rows}


@pytest.mark.parametrize(
    ("content", "lines"),
    [
        (b"", 0),
        (b"\n", 1),
        (b"a", 1),
        (b"a\n", 1),
        (b"a\r\nb", 2),
        (b"a\rb\r", 2),
        (b"a\n\nb\n", 3),
        ("a\u2028b\u0085c\x0cd\n".encode(), 1),
    ],
)
@pytest.mark.parametrize("chunk_bytes", [1, 2, 1 << 20])
def test_the_line_count_follows_sparks_rule(
    tmp_path: Path, monkeypatch, content: bytes, lines: int, chunk_bytes: int
) -> None:
    # Chunks of one and two bytes split every \r\n, as a 1 MiB chunk sometimes does.
    monkeypatch.setattr(landed_files, "CHUNK_BYTES", chunk_bytes)
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    assert count_lines(path) == lines
    utf16 = tmp_path / "u.csv"
    utf16.write_bytes(content.decode("utf-8").encode("utf-16-le"))
    assert count_lines(utf16, landed_files.UTF16_LINE_SEPARATORS["UTF-16LE"]) == content.count(b"\n") + (
        0 if content.endswith(b"\n") or not content else 1
    )
