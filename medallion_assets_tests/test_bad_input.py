"""A bad line costs one row: each kind of bad input is a quarantine row with its reason, or a loud day.

Every case lands the real 2013-01-01 flights file (842 flights) with bad lines added, and checks that every
good flight of the file reaches silver.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from medallion_assets.domains import flights
from medallion_assets.domains.flights.landing import AIRPORTS, FLIGHTS, _package_csv, _rows_by_local_date
from medallion_assets.framework import checks
from medallion_assets.framework.delta_io import commit_note, history
from medallion_assets.framework.errors import HistoryOutOfOrder, MissingLanding, MissingUpstream, TableBuildError
from medallion_assets.framework.execution import run_table
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.quality import all_rules
from medallion_assets.framework.refined_build import parse_rules
from medallion_assets.framework.report import Meta
from medallion_assets.framework.table import TableKey

CATALOG = {table.key: table for table in flights.TABLES}
SILVER_FLIGHTS = TableKey("silver", "flights")
DAY = date(2013, 1, 1)
WINDOW = PartitionWindow.single_day(DAY)
HEADER, _BY_DAY = _rows_by_local_date(_package_csv("flights"))
REAL_DAY = _BY_DAY[DAY]
FIRST = REAL_DAY[0]  # UA 1545 EWR-IAH
assert FIRST.startswith("2013,1,1,517,515,2,830,819,11,UA,1545,N14228,EWR,IAH,")
COLUMNS = list(FLIGHTS.columns)


def with_fields(line: str, **values: str) -> str:
    fields = line.split(",")
    for name, value in values.items():
        fields[COLUMNS.index(name)] = value
    return ",".join(fields)


def flight_number(number: int, line: str = FIRST) -> str:
    """A real flight under a flight number of its own, so it is a flight no other line of the day repeats."""
    return with_fields(line, flight=str(number))


def land(home: Path, source: str, name: str, content: str | bytes, day: date = DAY) -> Path:
    folder = home / "landing" / source / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def day_file(*extra: str) -> str:
    return "\n".join([HEADER, *REAL_DAY, *extra]) + "\n"


def build(spark, home: Path, *keys: TableKey, window: PartitionWindow = WINDOW, catalog=CATALOG, **options):
    return {
        key: run_table(spark, PathLakehouse(str(home)), catalog[key], catalog, window, run_id="test", **options)
        for key in keys
    }


@pytest.fixture(scope="module")
def airports_built(tmp_path_factory: pytest.TempPathFactory, spark) -> Path:
    home = tmp_path_factory.mktemp("airports")
    for day in (DAY, date(2013, 1, 2)):
        land(home, AIRPORTS.name, "airports.csv", _package_csv("airports"), day)
    build(
        spark,
        home,
        TableKey("bronze", "airports"),
        TableKey("silver", "airports"),
        window=PartitionWindow(DAY, date(2013, 1, 3)),
    )
    return home


@pytest.fixture
def home(tmp_path: Path, airports_built: Path) -> Path:
    """A private lakehouse whose airports reference is built, ready for a flights file."""
    shutil.copytree(airports_built, tmp_path / "home")
    return tmp_path / "home"


def run_flights(spark, home: Path, catalog=CATALOG, **options):
    reports = build(spark, home, TableKey("bronze", "flights"), SILVER_FLIGHTS, catalog=catalog, **options)
    return reports[TableKey("bronze", "flights")], reports[SILVER_FLIGHTS]


def read(spark, home: Path, table: str):
    return spark.read.format("delta").load(str(home / "warehouse" / table))


def check(report, name: str):
    return next(outcome for outcome in report.checks if outcome.name == name)


def assert_accounted(bronze, silver) -> None:
    """Every landed line is a bronze row, and every data line is in silver, in quarantine or a counted copy."""
    assert check(bronze, checks.LANDING_RECONCILIATION).passed
    assert bronze.metadata["rows_out"] == bronze.metadata["data_lines"]
    assert silver.metadata["rows_in"] == bronze.metadata["data_lines"]
    assert check(silver, checks.RECONCILIATION).passed, check(silver, checks.RECONCILIATION).metadata


def test_the_real_day_lands_whole_and_times_are_converted(spark, home: Path) -> None:
    land(home, "flights", "flights.csv", day_file())
    bronze, silver = run_flights(spark, home)
    assert_accounted(bronze, silver)
    assert silver.committed and silver.metadata["rows_out"] == 842 and silver.metadata["rows_quarantined"] == 0
    row = read(spark, home, "silver/flights").where("carrier = 'UA' AND flight = 1545").first()
    assert str(row["sched_dep_local"]) == "2013-01-01 05:15:00"
    assert str(row["sched_dep_utc"]) == "2013-01-01 10:15:00"
    # IAH is in America/Chicago: 08:19 local is 14:19 UTC.
    assert str(row["sched_arr_utc"]) == "2013-01-01 14:19:00"
    assert row["is_cancelled"] is False and row["is_diverted"] is False


def test_overnight_arrival_rolls_to_the_next_local_day(spark, home: Path) -> None:
    red_eye = next(line for line in REAL_DAY if ",B6,727," in line)  # JFK 23:59 to BQN, arriving 04:37 next day
    land(home, "flights", "flights.csv", "\n".join([HEADER, red_eye]) + "\n")
    run_flights(spark, home)
    row = read(spark, home, "silver/flights").first()
    assert str(row["sched_arr_local"]) == "2013-01-02 04:37:00"
    assert row["dest_timezone"] == "America/Puerto_Rico"


# One bad line of each kind a new user met; each costs exactly that line.
BAD_LINES = {
    "exact_duplicate": (REAL_DAY[5], None),
    "truncated": (FIRST[:25], "line_is_well_formed"),
    "non_numeric_delay": (with_fields(flight_number(9002), dep_delay="two"), "dep_delay_is_int"),
    "month_13": (with_fields(flight_number(9003), month="13"), "flight_date_not_null"),
    "extra_field": (flight_number(9004) + ",extra", "line_is_well_formed"),
    "too_few_fields": (",".join(flight_number(9005).split(",")[:11]), "line_is_well_formed"),
    "impossible_time": (with_fields(flight_number(9006), sched_dep_time="575"), "sched_dep_time_is_hhmm"),
}
NOT_UTF8 = flight_number(9007).replace("N14228", "N14\udcff\udcfe28").encode("utf-8", "surrogateescape")


def test_each_bad_line_costs_that_line_only(spark, home: Path) -> None:
    """The report that opened this work, and more: bad lines appended to a real day cost those lines only."""
    content = day_file(*(line for line, _ in BAD_LINES.values())).encode() + NOT_UTF8 + b"\n"
    land(home, "flights", "flights.csv", content)
    bronze, silver = run_flights(spark, home)
    assert_accounted(bronze, silver)
    assert bronze.metadata["undecodable_lines"] == 1 and bronze.metadata["malformed_lines"] == 3
    assert silver.committed and silver.metadata["rows_out"] == 842
    assert silver.metadata["rows_quarantined"] == len(BAD_LINES) and silver.metadata["duplicates_dropped"] == 1
    assert all(outcome.passed or outcome.severity == "WARN" for outcome in silver.checks)
    quarantine = {
        bytes(row["_raw_line"]): row["_failed_rules"]
        for row in read(spark, home, "silver/flights_quarantine").collect()
    }
    # Each line is kept exactly as received, under its own reason.
    assert quarantine.pop(NOT_UTF8)[0] == "line_decodes"
    for case, (line, rule) in BAD_LINES.items():
        if rule is not None:
            assert rule in quarantine.pop(line.encode()), case
    assert not quarantine


def test_a_day_where_everything_is_quarantined_is_blocked_and_readers_keep_the_last_good_version(
    spark, home: Path
) -> None:
    land(home, "flights", "flights.csv", day_file())
    run_flights(spark, home)
    good_version = history(spark, PathLakehouse(str(home)).table(SILVER_FLIGHTS), 1).first()["version"]
    # The day re-delivered from a system that wrote every line in a legacy encoding with bad bytes.
    broken = "\n".join([HEADER, *[line.replace(",", "\udcff,", 1) for line in REAL_DAY]]) + "\n"
    land(home, "flights", "flights.csv", broken.encode("utf-8", "surrogateescape"))
    bronze, silver = run_flights(spark, home)
    assert bronze.committed and not silver.committed
    rate = check(silver, checks.QUARANTINE_RATE)
    assert not rate.passed and rate.severity == "ERROR"
    assert rate.metadata["failing_days"] == ["2013-01-01"]
    assert "line_decodes" in rate.metadata["top_failing_rules"]
    assert rate.metadata["example_rows"] and "flights.csv" in rate.metadata["example_rows"][0]["file"]
    message = str(silver.blocked_error())
    assert "quarantine_rate" in message and "line_decodes" in message and "not written" in message
    # No reader sees the failed build: the latest version is still the good one, with the good rows.
    assert history(spark, PathLakehouse(str(home)).table(SILVER_FLIGHTS), 1).first()["version"] == good_version
    assert read(spark, home, "silver/flights").count() == 842
    # Gold does not build on the blocked day's data: silver still holds its last good version of the day.


def test_an_operator_can_accept_a_failed_check_and_the_acceptance_is_recorded(spark, home: Path) -> None:
    broken = "\n".join([HEADER, *[line.replace(",", "\udcff,", 1) for line in REAL_DAY[:-20]], *REAL_DAY[-20:]])
    land(home, "flights", "flights.csv", (broken + "\n").encode("utf-8", "surrogateescape"))
    _, silver = run_flights(spark, home)
    assert not silver.committed
    # Gold never builds on the blocked day: the day is a gap in silver.
    with pytest.raises(MissingUpstream, match=r"silver/flights holds no rows for 2013-01-01"):
        build(spark, home, TableKey("gold", "fact_flights"))
    _, silver = run_flights(spark, home, accepted_checks=[checks.QUARANTINE_RATE])
    assert silver.committed
    rate = check(silver, checks.QUARANTINE_RATE)
    assert not rate.passed and rate.severity == "WARN" and "accepted" in rate.metadata["accepted_by_operator"]
    latest = history(spark, PathLakehouse(str(home)).table(SILVER_FLIGHTS), 1).first()
    assert commit_note(latest["userMetadata"])["accepted_checks"] == [checks.QUARANTINE_RATE]
    with pytest.raises(TableBuildError, match="no check is named quarantine_rat"):
        run_flights(spark, home, accepted_checks=["quarantine_rat"])


def test_silver_and_its_quarantine_commits_carry_the_same_build(spark, home: Path) -> None:
    land(home, "flights", "flights.csv", day_file(BAD_LINES["truncated"][0]))
    _, silver = run_flights(spark, home)
    lakehouse = PathLakehouse(str(home))
    notes = [
        commit_note(history(spark, lakehouse.table(key), 1).first()["userMetadata"])
        for key in (SILVER_FLIGHTS, CATALOG[SILVER_FLIGHTS].quarantine_key)
    ]
    assert notes[0][Meta.BUILD_ID] == notes[1][Meta.BUILD_ID] == silver.metadata[Meta.BUILD_ID]


def test_an_empty_delivery_is_loud(spark, home: Path) -> None:
    folder = home / "landing" / "flights" / DAY.isoformat()
    folder.mkdir(parents=True)
    bronze = build(spark, home, TableKey("bronze", "flights"))[TableKey("bronze", "flights")]
    assert not bronze.committed and not check(bronze, checks.LANDING_DELIVERED).passed
    land(home, "flights", "flights.csv", HEADER + "\n")  # a header and nothing else
    bronze = build(spark, home, TableKey("bronze", "flights"))[TableKey("bronze", "flights")]
    assert not bronze.committed
    assert "no data line landed for 2013-01-01" in str(bronze.blocked_error())


def test_a_source_that_may_deliver_no_rows_builds_its_header_only_day_and_still_fails_a_missing_file(
    spark, home: Path
) -> None:
    # The real weather feed has no observations on 2013-12-31: its export that day is the header alone.
    bronze_key = TableKey("bronze", "flights")
    bronze_table = CATALOG[bronze_key]
    assert bronze_table.source is not None
    catalog = {
        **CATALOG,
        bronze_key: replace(bronze_table, source=replace(bronze_table.source, days_without_rows=True)),
    }
    second = date(2013, 1, 2)
    land(home, "flights", "flights.csv", day_file())
    land(home, "flights", "flights.csv", HEADER + "\n", day=second)
    two_days = PartitionWindow(DAY, date(2013, 1, 3))
    reports = build(spark, home, bronze_key, SILVER_FLIGHTS, window=two_days, catalog=catalog)
    bronze, silver = reports[bronze_key], reports[SILVER_FLIGHTS]
    assert bronze.committed and silver.committed, (bronze.blocked_error(), silver.blocked_error())
    assert check(silver, checks.QUARANTINE_RATE).metadata["quarantine_rate_by_day"] == {
        DAY.isoformat(): 0.0,
        second.isoformat(): None,
    }
    per_day = {
        row[0]: row[1] for row in read(spark, home, "silver/flights").groupBy("partition_date").count().collect()
    }
    assert per_day == {DAY: len(REAL_DAY)}
    # A folder without any file is still a broken delivery.
    (home / "landing" / "flights" / second.isoformat() / "flights.csv").unlink()
    bronze = build(spark, home, bronze_key, window=two_days, catalog=catalog)[bronze_key]
    assert not bronze.committed and "no data line landed for 2013-01-02" in str(bronze.blocked_error())


def test_an_empty_file_beside_a_full_one_is_counted_not_crashed_on(spark, home: Path) -> None:
    land(home, "flights", "flights.csv", day_file())
    land(home, "flights", "zz-late-empty.csv", b"")
    bronze, silver = run_flights(spark, home)
    assert bronze.metadata["empty_files"] == 1 and bronze.metadata["landed_files"] == 2
    assert_accounted(bronze, silver)


def test_a_missing_day_folder_is_a_clear_error(spark, home: Path) -> None:
    with pytest.raises(MissingLanding, match=r"no landed flights data for 1 day\(s\) of 2013-01-01.*Stage or land"):
        run_flights(spark, home)


def test_a_gap_upstream_stops_the_build_and_names_the_days(spark, home: Path) -> None:
    land(home, "flights", "flights.csv", day_file())
    build(spark, home, TableKey("bronze", "flights"))
    two_days = PartitionWindow(DAY, date(2013, 1, 3))
    with pytest.raises(MissingUpstream, match=r"bronze/flights holds no rows for 2013-01-02\b"):
        build(spark, home, SILVER_FLIGHTS, window=two_days)
    assert not (home / "warehouse/silver/flights").exists()


def test_schema_drift_is_kept_in_bronze_and_reported_by_silver(spark, home: Path) -> None:
    drifted = [HEADER + ",gate"] + [line + ",B12" for line in REAL_DAY]
    land(home, "flights", "flights.csv", "\n".join(drifted) + "\n")
    bronze, silver = run_flights(spark, home)
    assert "gate" in read(spark, home, "bronze/flights").columns
    schema_check = check(silver, checks.SOURCE_SCHEMA)
    assert not schema_check.passed and schema_check.severity == "WARN"
    assert schema_check.metadata["unexpected_columns"] == ["gate"]
    assert_accounted(bronze, silver)


def test_one_drifted_file_among_good_ones_is_named_and_a_reordered_header_is_no_drift(spark, home: Path) -> None:
    # The day's first half under the declared header, the second half with an extra column.
    half = len(REAL_DAY) // 2
    land(home, "flights", "a.csv", "\n".join([HEADER, *REAL_DAY[:half]]) + "\n")
    land(home, "flights", "b.csv", "\n".join([HEADER + ",gate"] + [line + ",B12" for line in REAL_DAY[half:]]) + "\n")
    bronze, silver = run_flights(spark, home)
    schema_check = check(silver, checks.SOURCE_SCHEMA)
    assert not schema_check.passed and schema_check.severity == "WARN"
    assert schema_check.metadata == {"missing_columns": [], "unexpected_columns": ["gate"]}
    assert silver.committed
    assert_accounted(bronze, silver)

    # Every declared column, in another order: the header differs from the declared one, the columns do not.
    reordered = list(reversed(COLUMNS))
    lines = [",".join(reversed(line.split(","))) for line in REAL_DAY]
    for stale in (home / "landing" / "flights" / DAY.isoformat()).iterdir():
        stale.unlink()
    land(home, "flights", "flights.csv", "\n".join([",".join(reordered), *lines]) + "\n")
    bronze, silver = run_flights(spark, home)
    schema_check = check(silver, checks.SOURCE_SCHEMA)
    assert schema_check.passed and schema_check.metadata == {"missing_columns": [], "unexpected_columns": []}
    assert silver.metadata["rows_quarantined"] == 0
    assert_accounted(bronze, silver)


def test_a_renamed_column_blocks_the_day_and_the_table_keeps_its_last_good_version(spark, home: Path) -> None:
    land(home, "flights", "flights.csv", day_file())
    run_flights(spark, home)
    before = read(spark, home, "silver/flights").where("dep_delay IS NOT NULL").count()
    renamed = [HEADER.replace("dep_delay", "departure_delay"), *REAL_DAY]
    land(home, "flights", "flights.csv", "\n".join(renamed) + "\n")
    _, silver = run_flights(spark, home)
    schema_check = check(silver, checks.SOURCE_SCHEMA)
    assert not schema_check.passed and schema_check.severity == "ERROR"
    assert schema_check.metadata["missing_columns"] == ["dep_delay"]
    assert not silver.committed
    # The latest version a reader sees still has every delay.
    assert read(spark, home, "silver/flights").where("dep_delay IS NOT NULL").count() == before > 800


def test_the_newest_delivery_wins_by_when_it_landed_not_by_its_name(spark, home: Path) -> None:
    original = land(home, "flights", "flights.csv", day_file(with_fields(flight_number(9100), dep_delay="two")))
    # The later file also delivers the first real flight again, with another departure delay: its copy wins.
    redelivered = with_fields(REAL_DAY[0], dep_delay="3")
    corrected = land(home, "flights", "flights-corrected.csv", "\n".join([HEADER, flight_number(9100), redelivered]))
    os.utime(original, (1_700_000_000, 1_700_000_000))
    os.utime(corrected, (1_700_000_600, 1_700_000_600))  # landed ten minutes later, though its name sorts first
    bronze, silver = run_flights(spark, home)
    assert_accounted(bronze, silver)
    # The original's bad copy of 9100 was corrected by the later delivery: superseded, not quarantined.
    assert silver.metadata["rows_superseded"] == 1 and silver.metadata["rows_quarantined"] == 0
    kept = read(spark, home, "silver/flights").where("flight = 9100").collect()
    assert len(kept) == 1 and kept[0]["dep_delay"] == 2
    first = read(spark, home, "silver/flights").where("carrier = 'UA' AND flight = 1545").collect()
    assert len(first) == 1 and silver.metadata["duplicates_dropped"] == 1
    assert first[0]["dep_delay"] == 3, "the earlier delivery's copy was kept"


# A line that breaks each rule of silver/flights (field values on a real flight), and its correction.
RULE_BREAKERS: dict[str, dict[str, str]] = {
    "year_is_int": {"year": "2O13"},
    "month_is_int": {"month": "1x"},
    "day_is_int": {"day": "1x"},
    "dep_time_is_int": {"dep_time": "5l7"},
    "sched_dep_time_is_int": {"sched_dep_time": "5l5"},
    "dep_delay_is_int": {"dep_delay": "two"},
    "arr_time_is_int": {"arr_time": "83O"},
    "sched_arr_time_is_int": {"sched_arr_time": "8l9"},
    "arr_delay_is_int": {"arr_delay": "ll"},
    "flight_is_int": {"flight": "15a5"},
    "air_time_is_int": {"air_time": "2z7"},
    "distance_is_int": {"distance": "14OO"},
    "hour_is_int": {"hour": "x"},
    "minute_is_int": {"minute": "x"},
    "time_hour_is_timestamp": {"time_hour": "yesterday"},
    "flight_date_not_null": {"month": "2", "day": "30"},
    "carrier_not_null": {"carrier": ""},
    "carrier_str_matches": {"carrier": "U$"},
    "flight_not_null": {"flight": ""},
    "flight_greater_than_or_equal_to": {"flight": "0"},
    "flight_less_than_or_equal_to": {"flight": "10000"},
    "tailnum_str_matches": {"tailnum": "N-14228"},
    "origin_not_null": {"origin": ""},
    "origin_isin": {"origin": "BOS"},
    "dest_not_null": {"dest": ""},
    "dest_str_matches": {"dest": "I@H"},
    "origin_timezone_not_null": {"origin": "ZZZ"},
    "dest_timezone_not_null": {"dest": "ZZZ"},
    "sched_dep_local_not_null": {"sched_dep_time": ""},
    "sched_dep_utc_not_null": {"origin": "ZZZ"},
    "sched_arr_local_not_null": {"sched_arr_time": ""},
    "sched_arr_utc_not_null": {"dest": "ZZZ"},
    "dep_delay_greater_than_or_equal_to": {"dep_delay": "-2000"},
    "dep_delay_less_than_or_equal_to": {"dep_delay": "3000"},
    "arr_delay_greater_than_or_equal_to": {"arr_delay": "-2000"},
    "arr_delay_less_than_or_equal_to": {"arr_delay": "3000"},
    "air_time_greater_than_or_equal_to": {"air_time": "0"},
    "air_time_less_than_or_equal_to": {"air_time": "2000"},
    "distance_not_null": {"distance": ""},
    "distance_greater_than_or_equal_to": {"distance": "0"},
    "distance_less_than_or_equal_to": {"distance": "20000"},
    "time_hour_not_null": {"time_hour": ""},
    "sched_dep_time_is_hhmm": {"sched_dep_time": "575"},
    "sched_arr_time_is_hhmm": {"sched_arr_time": "2460"},
    "dep_time_is_hhmm": {"dep_time": "2401"},
    "arr_time_is_hhmm": {"arr_time": "1299"},
    "flight_date_is_partition": {"day": "2"},
}
# Rules no received line can break, and why; a new rule must join one of the two lists.
UNBREAKABLE = {
    "is_cancelled_not_null": "derived as dep_time IS NULL, which is never NULL",
    "is_diverted_not_null": "derived from IS NULL tests, never NULL",
    "time_hour_matches_schedule": "severity warn: the row lands in silver and is counted, never quarantined",
}


def test_every_rule_quarantines_its_line_and_a_corrected_redelivery_lands_each_row_once(spark, home: Path) -> None:
    table = CATALOG[SILVER_FLIGHTS]
    rules = {rule.name for rule in all_rules(table, parse_rules(table.casts))}
    line_level = {"line_decodes", "line_is_well_formed"}  # covered line by line above
    assert rules - line_level == set(RULE_BREAKERS) | set(UNBREAKABLE), "a rule without a breaking line"
    numbers = {rule: 9200 + position for position, rule in enumerate(sorted(RULE_BREAKERS))}
    breaking = {rule: with_fields(flight_number(numbers[rule]), **values) for rule, values in RULE_BREAKERS.items()}
    # 47 broken lines are 5.6% of the day, above the default threshold; this test is about every rule, not rates.
    catalog = {**CATALOG, SILVER_FLIGHTS: replace(table, max_quarantine_rate=0.1)}
    land(home, "flights", "flights.csv", day_file(*breaking.values()))
    bronze, silver = run_flights(spark, home, catalog=catalog)
    assert_accounted(bronze, silver)
    assert silver.metadata["rows_quarantined"] == len(RULE_BREAKERS)
    quarantine = read(spark, home, "silver/flights_quarantine").collect()
    by_line = {row["_raw_line"].decode(): row["_failed_rules"] for row in quarantine}
    for rule, line in breaking.items():
        assert rule in by_line[line], f"{rule} did not quarantine {line}"
    # The sender re-delivers the day corrected, under the same name.
    corrected = [flight_number(numbers[rule]) for rule in RULE_BREAKERS]
    land(home, "flights", "flights.csv", day_file(*corrected))
    bronze, silver = run_flights(spark, home, catalog=catalog)
    assert_accounted(bronze, silver)
    assert silver.metadata["rows_quarantined"] == 0 and read(spark, home, "silver/flights_quarantine").count() == 0
    landed = read(spark, home, "silver/flights").where(f"flight >= 9200 AND flight < {9200 + len(numbers)}")
    assert sorted(row["flight"] for row in landed.collect()) == sorted(numbers.values())


def test_a_rule_fix_replays_the_quarantine_exactly_once(spark, home: Path) -> None:
    early = with_fields(flight_number(9300), day="2")  # quarantined by flight_date_is_partition
    land(home, "flights", "flights.csv", day_file(early))
    _, silver = run_flights(spark, home)
    assert silver.metadata["rule_failures/flight_date_is_partition"] == 1
    table = CATALOG[SILVER_FLIGHTS]
    relaxed = [
        replace(rule, severity="warn") if rule.name == "flight_date_is_partition" else rule for rule in table.rules
    ]
    fixed = {**CATALOG, SILVER_FLIGHTS: replace(table, rules=relaxed)}
    silver = build(spark, home, SILVER_FLIGHTS, catalog=fixed)[SILVER_FLIGHTS]
    assert silver.metadata["rows_quarantined"] == 0 and silver.metadata["rows_out"] == 843
    assert read(spark, home, "silver/flights").where("flight = 9300").count() == 1
    assert read(spark, home, "silver/flights_quarantine").count() == 0


def test_scd2_refuses_a_gap_and_names_the_days_to_rebuild(spark, tmp_path: Path) -> None:
    for day in (date(2013, 1, 1), date(2013, 1, 3)):
        land(tmp_path, AIRPORTS.name, "airports.csv", _package_csv("airports"), day)
    bronze, silver = TableKey("bronze", "airports"), TableKey("silver", "airports")
    build(spark, tmp_path, bronze, silver, window=PartitionWindow.single_day(date(2013, 1, 1)))
    build(spark, tmp_path, bronze, window=PartitionWindow.single_day(date(2013, 1, 3)))
    with pytest.raises(HistoryOutOfOrder, match=r"Rebuild 2013-01-02..2013-01-03 in one run"):
        build(spark, tmp_path, silver, window=PartitionWindow.single_day(date(2013, 1, 3)))
