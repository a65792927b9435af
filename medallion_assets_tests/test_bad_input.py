"""Each kind of bad input ends as a quarantine row with its reason, or a clear error; never lost rows."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from medallion_assets.domains import flights
from medallion_assets.domains.flights.landing import AIRPORTS, FLIGHTS, _package_csv
from medallion_assets.framework.errors import MissingLanding
from medallion_assets.framework.execution import run_table
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableKey

CATALOG = {table.key: table for table in flights.TABLES}
DAY = date(2013, 1, 1)
WINDOW = PartitionWindow.single_day(DAY)
HEADER = ",".join(FLIGHTS.columns)
GOOD = [
    "2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,227,1400,5,15,2013-01-01T10:00:00Z",
    "2013,1,1,533,529,4,850,830,20,UA,1714,N24211,LGA,IAH,227,1416,5,29,2013-01-01T10:00:00Z",
    "2013,1,1,NA,1630,NA,NA,1815,NA,EV,4308,N18120,EWR,RDU,NA,416,16,30,2013-01-01T21:00:00Z",
]


def land(home: Path, source: str, name: str, content: str | bytes, day: date = DAY) -> None:
    folder = home / "landing" / source / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))


def build(spark, home: Path, *names: tuple[str, str], window: PartitionWindow = WINDOW):
    reports = {}
    for layer, table in names:
        reports[(layer, table)] = run_table(
            spark, PathLakehouse(str(home)), CATALOG[TableKey(layer, table)], CATALOG, window, run_id="test"
        )
    return reports


@pytest.fixture(scope="module")
def airports_built(tmp_path_factory: pytest.TempPathFactory, spark) -> Path:
    home = tmp_path_factory.mktemp("airports")
    land(home, AIRPORTS.name, "airports.csv", _package_csv("airports"))
    build(spark, home, ("bronze", "airports"), ("silver", "airports"))
    return home


@pytest.fixture
def home(tmp_path: Path, airports_built: Path) -> Path:
    """A private lakehouse whose airports reference is built, ready for a flights file."""
    shutil.copytree(airports_built, tmp_path / "home")
    return tmp_path / "home"


def run_flights(spark, home: Path):
    reports = build(spark, home, ("bronze", "flights"), ("silver", "flights"))
    return reports[("bronze", "flights")], reports[("silver", "flights")]


def assert_reconciled(bronze, silver) -> None:
    checks = {check.name: check for check in silver.checks}
    assert checks["reconciliation"].passed, checks["reconciliation"].metadata
    assert bronze.metadata["rows_in"] == bronze.metadata["rows_out"]
    assert silver.metadata["rows_in"] == bronze.metadata["rows_out"]


def test_clean_rows_pass_and_times_are_converted(spark, home: Path) -> None:
    land(home, "flights", "flights.csv", "\n".join([HEADER, *GOOD]) + "\n")
    bronze, silver = run_flights(spark, home)
    assert_reconciled(bronze, silver)
    assert silver.metadata["rows_out"] == 3 and silver.metadata["rows_quarantined"] == 0
    row = spark.read.format("delta").load(str(home / "warehouse/silver/flights")).where("flight = 1545").first()
    assert str(row["sched_dep_local"]) == "2013-01-01 05:15:00"
    assert str(row["sched_dep_utc"]) == "2013-01-01 10:15:00"
    assert str(row["sched_arr_local"]) == "2013-01-01 08:19:00"
    # IAH is in America/Chicago: 08:19 local is 14:19 UTC.
    assert str(row["sched_arr_utc"]) == "2013-01-01 14:19:00"
    assert str(row["arr_local"]) == "2013-01-01 08:30:00"
    assert row["is_cancelled"] is False and row["is_diverted"] is False
    cancelled = spark.read.format("delta").load(str(home / "warehouse/silver/flights")).where("flight = 4308").first()
    assert cancelled["is_cancelled"] is True and cancelled["dep_utc"] is None


def test_overnight_arrival_rolls_to_the_next_local_day(spark, home: Path) -> None:
    red_eye = "2013,1,1,2353,2359,-6,425,437,-12,B6,727,N588JB,JFK,BQN,192,1576,23,59,2013-01-02T04:00:00Z"
    land(home, "flights", "flights.csv", "\n".join([HEADER, red_eye]) + "\n")
    run_flights(spark, home)
    row = spark.read.format("delta").load(str(home / "warehouse/silver/flights")).first()
    assert str(row["sched_arr_local"]) == "2013-01-02 04:37:00"
    assert row["dest_timezone"] == "America/Puerto_Rico"
    assert str(row["sched_arr_utc"]) == "2013-01-02 08:37:00"


@pytest.mark.parametrize(
    ("case", "line", "expected_rule"),
    [
        ("too_few_fields", "2013,1,1,600,600,0,800,800,0,AA,1", "line_is_well_formed"),
        ("too_many_fields", GOOD[0].replace("UA,1545", "UA,1999") + ",extra,fields", "line_is_well_formed"),
        ("non_numeric", GOOD[0].replace(",2,830", ",two,830").replace("UA,1545", "UA,2001"), "dep_delay_is_int"),
        (
            "impossible_date",
            GOOD[0].replace("2013,1,1,", "2013,2,30,").replace("UA,1545", "UA,2002"),
            "flight_date_not_null",
        ),
        ("impossible_time", GOOD[0].replace(",515,", ",575,").replace("UA,1545", "UA,2003"), "sched_dep_time_is_hhmm"),
    ],
)
def test_a_bad_line_is_quarantined_with_its_reason(spark, home: Path, case: str, line: str, expected_rule: str) -> None:
    land(home, "flights", "flights.csv", "\n".join([HEADER, *GOOD, line]) + "\n")
    bronze, silver = run_flights(spark, home)
    assert_reconciled(bronze, silver)
    assert silver.metadata["rows_out"] == 3
    assert silver.metadata["rows_quarantined"] == 1
    assert silver.metadata[f"rule_failures/{expected_rule}"] == 1
    quarantined = spark.read.format("delta").load(str(home / "warehouse/silver/flights_quarantine")).first()
    assert expected_rule in quarantined["_failed_rules"]
    if expected_rule == "line_is_well_formed":
        assert quarantined["_corrupt_record"] == line


def test_a_truncated_file_keeps_its_partial_last_line_in_quarantine(spark, home: Path) -> None:
    content = "\n".join([HEADER, *GOOD]) + "\n" + GOOD[0][:25]
    land(home, "flights", "flights.csv", content)
    bronze, silver = run_flights(spark, home)
    assert_reconciled(bronze, silver)
    assert bronze.metadata["rows_out"] == 4
    assert silver.metadata["rows_out"] == 3 and silver.metadata["rows_quarantined"] == 1
    quarantined = spark.read.format("delta").load(str(home / "warehouse/silver/flights_quarantine")).first()
    assert quarantined["_corrupt_record"] == GOOD[0][:25]


def test_an_empty_file_is_counted_not_crashed_on(spark, home: Path) -> None:
    land(home, "flights", "flights.csv", "\n".join([HEADER, *GOOD]) + "\n")
    land(home, "flights", "zz-late-empty.csv", b"")
    bronze, silver = run_flights(spark, home)
    assert bronze.metadata["empty_files"] == 1 and bronze.metadata["landed_files"] == 2
    assert_reconciled(bronze, silver)
    assert silver.metadata["rows_out"] == 3


def test_a_missing_day_folder_is_a_clear_error(spark, home: Path) -> None:
    with pytest.raises(MissingLanding, match=r"no landed flights data for 1 day\(s\) of 2013-01-01.*Stage or land"):
        run_flights(spark, home)


def test_schema_drift_is_kept_in_bronze_and_reported_by_silver(spark, home: Path) -> None:
    drifted = [HEADER + ",gate"] + [line + ",B12" for line in GOOD]
    land(home, "flights", "flights.csv", "\n".join(drifted) + "\n")
    bronze, silver = run_flights(spark, home)
    assert "gate" in spark.read.format("delta").load(str(home / "warehouse/bronze/flights")).columns
    schema_check = next(check for check in silver.checks if check.name == "source_schema")
    assert not schema_check.passed and schema_check.severity == "WARN"
    assert schema_check.metadata["unexpected_columns"] == ["gate"]
    assert_reconciled(bronze, silver)
    assert silver.metadata["rows_out"] == 3


def test_a_missing_required_column_fails_the_blocking_source_schema_check(spark, home: Path) -> None:
    columns = list(FLIGHTS.columns)
    position = columns.index("dep_delay")
    lines = [",".join(c for i, c in enumerate(columns) if i != position)]
    lines += [",".join(v for i, v in enumerate(line.split(",")) if i != position) for line in GOOD]
    land(home, "flights", "flights.csv", "\n".join(lines) + "\n")
    _, silver = run_flights(spark, home)
    schema_check = next(check for check in silver.checks if check.name == "source_schema")
    assert not schema_check.passed and schema_check.severity == "ERROR"
    assert schema_check.metadata["missing_columns"] == ["dep_delay"]


def test_a_duplicate_delivery_is_deduplicated_and_accounted_for(spark, home: Path) -> None:
    content = "\n".join([HEADER, *GOOD]) + "\n"
    land(home, "flights", "flights.csv", content)
    land(home, "flights", "flights-redelivered.csv", content)
    bronze, silver = run_flights(spark, home)
    assert bronze.metadata["rows_out"] == 6
    assert silver.metadata["rows_out"] == 3 and silver.metadata["duplicates_dropped"] == 3
    assert_reconciled(bronze, silver)


def test_a_file_that_is_not_utf8_is_landed_and_quarantined(spark, home: Path) -> None:
    land(home, "flights", "flights.csv", "\n".join([HEADER, *GOOD]) + "\n")
    latin1 = "\n".join([HEADER, GOOD[0].replace("N14228", "N1422\u00e9").replace("UA,1545", "UA,3001")]) + "\n"
    land(home, "flights", "flights-legacy.csv", latin1.encode("latin-1"))
    bronze, silver = run_flights(spark, home)
    assert bronze.metadata["non_utf8_files"] and bronze.metadata["non_utf8_files"][0].endswith("flights-legacy.csv")
    assert_reconciled(bronze, silver)
    assert silver.metadata["rows_quarantined"] == 1
    quarantined = spark.read.format("delta").load(str(home / "warehouse/silver/flights_quarantine")).first()
    assert "source_is_utf8" in quarantined["_failed_rules"]
    assert quarantined["tailnum"] == "N1422\u00e9"  # every byte survives the Latin-1 landing


def test_quarantined_rows_are_reprocessed_after_the_fix(spark, home: Path) -> None:
    bad = GOOD[0].replace(",2,830", ",two,830").replace("UA,1545", "UA,2001")
    land(home, "flights", "flights.csv", "\n".join([HEADER, *GOOD, bad]) + "\n")
    _, silver = run_flights(spark, home)
    assert silver.metadata["rows_quarantined"] == 1
    # The fix: the upstream system re-delivers the day corrected; re-running the day replays it.
    land(home, "flights", "flights.csv", "\n".join([HEADER, *GOOD, bad.replace(",two,", ",2,")]) + "\n")
    bronze, silver = run_flights(spark, home)
    assert_reconciled(bronze, silver)
    assert silver.metadata["rows_quarantined"] == 0 and silver.metadata["rows_out"] == 4
    quarantine = spark.read.format("delta").load(str(home / "warehouse/silver/flights_quarantine"))
    assert quarantine.count() == 0
    replayed = spark.read.format("delta").load(str(home / "warehouse/silver/flights")).where("flight = 2001").first()
    assert replayed["dep_delay"] == 2
