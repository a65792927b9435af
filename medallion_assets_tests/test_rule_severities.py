"""Row rules with DLT-style severities: warn keeps and counts, drop quarantines, fail stops with a message."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyspark.sql.types as T
import pytest

from medallion_assets.framework.contract import Contract, Field
from medallion_assets.framework.errors import FailedRules
from medallion_assets.framework.execution import run_table
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.quality import evaluate_contract
from medallion_assets.framework.table import LandingSource, Rule, TableDeclaration, TableKey, Upstream

SOURCE = LandingSource("readings", ("sensor", "value"), "sensor readings")
DAY = date(2013, 1, 1)


class Readings(Contract):
    sensor: T.StringType() = Field(str_matches=r"^S[0-9]+$")  # drop: sensor_str_matches
    value: T.IntegerType() = Field(nullable=True)


def catalog(*rules: Rule) -> dict[TableKey, TableDeclaration]:
    tables = (
        TableDeclaration(key=TableKey("bronze", "readings"), description="r", owner="team:x", source=SOURCE),
        TableDeclaration(
            key=TableKey("silver", "readings"),
            description="r",
            owner="team:x",
            inputs={"readings": Upstream(TableKey("bronze", "readings"))},
            casts={"value": "INT"},
            transform=lambda ctx: ctx.input("readings"),
            contract=Readings,
            rules=list(rules),
            # Four readings, two of them bad on purpose: this table is about severities, not rates.
            max_quarantine_rate=1.0,
        ),
    )
    return {t.key: t for t in tables}


def build(spark, home: Path, tables: dict) -> dict:
    lakehouse, window = PathLakehouse(str(home)), PartitionWindow.single_day(DAY)
    reports = [run_table(spark, lakehouse, tables[key], tables, window, run_id="r") for key in tables]
    return reports[-1].metadata


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "landing/readings" / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "readings.csv").write_text("sensor,value\nS1,10\nS2,900\nbad,5\nS3,x\n")
    return tmp_path


def test_warn_keeps_and_counts_drop_quarantines(spark, home: Path) -> None:
    metadata = build(spark, home, catalog(Rule("value_plausible", "value < 100", "warn", "values stay below 100")))
    assert metadata["rule_failures/value_plausible"] == 1 and metadata["rows_warned"] == 1
    assert metadata["rule_failures/sensor_str_matches"] == 1
    assert metadata["rule_failures/value_is_int"] == 1
    assert metadata["rows_out"] == 2 and metadata["rows_quarantined"] == 2
    kept = {r["sensor"] for r in spark.read.format("delta").load(str(home / "warehouse/silver/readings")).collect()}
    assert kept == {"S1", "S2"}


def test_fail_stops_the_materialization_with_a_clear_message_and_writes_nothing(spark, home: Path) -> None:
    tables = catalog(Rule("value_below_limit", "value < 100", "fail", "a reading above 100 means a broken sensor"))
    with pytest.raises(FailedRules, match=r"value_below_limit \(1 rows\).*Nothing was written"):
        build(spark, home, tables)
    assert not (home / "warehouse/silver/readings").exists()


class Gauges(Contract):
    gauge: T.StringType() = Field(str_matches=r"^G[0-9]+$")
    level: T.IntegerType() = Field(ge=0, le=10)
    unit: T.StringType() = Field(isin=["m", "cm"], nullable=True)


def gauges(contract: type[Contract] = Gauges) -> TableDeclaration:
    return TableDeclaration(
        key=TableKey("gold", "gauges"), description="g", owner="team:x", transform=lambda ctx: None, contract=contract
    )


def test_the_contract_reports_every_failing_check_of_the_pandera_model(spark) -> None:
    rows = [("G1", 3, "m"), ("G2", 11, None), ("bad", None, "km"), ("G3", -1, "cm")]
    outcome = evaluate_contract(gauges(), spark.createDataFrame(rows, "gauge string, level int, unit string"))
    assert not outcome.passed
    failing = {(f["column"], f["check"]): f["error"] for f in outcome.metadata["failures"]}
    assert set(failing) == {
        ("gauge", "str_matches"),
        ("level", "not_null"),
        ("level", "greater_than_or_equal_to"),
        ("level", "less_than_or_equal_to"),
        ("unit", "isin"),
    }
    assert failing["level", "greater_than_or_equal_to"].startswith("1 row(s) fail")
    assert outcome.metadata["failing_columns"] == ["gauge", "level", "unit"]


def test_the_contract_reports_a_wrong_type_and_passes_good_rows(spark) -> None:
    good = spark.createDataFrame([("G1", 3, "m"), ("G2", 10, None)], "gauge string, level int, unit string")
    assert evaluate_contract(gauges(), good).passed
    retyped = good.withColumn("level", good["level"].cast("string"))
    outcome = evaluate_contract(gauges(), retyped)
    assert not outcome.passed
    assert [(f["section"], f["column"]) for f in outcome.metadata["failures"]] == [("SCHEMA", "level")]
