"""Row rules with DLT-style severities: warn keeps and counts, drop quarantines, fail stops with a message."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandera.pyspark as pa
import pyspark.sql.types as T
import pytest

from medallion_assets.framework.execution import FailedRules, run_table
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import LandingSource, Rule, TableDeclaration, TableKey, Upstream

SOURCE = LandingSource("readings", ("sensor", "value"), "sensor readings")
DAY = date(2013, 1, 1)


class Readings(pa.DataFrameModel):
    sensor: T.StringType() = pa.Field(str_matches=r"^S[0-9]+$")  # drop: sensor_str_matches
    value: T.IntegerType() = pa.Field(nullable=True)


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
