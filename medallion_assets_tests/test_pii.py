"""Columns a declaration marks as PII never reach gold in clear."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import pyspark.sql.types as T
import pytest

from medallion_assets.framework.contract import Contract, Field
from medallion_assets.framework.execution import run_table
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import LandingSource, TableDeclaration, TableKey, TransformContext, Upstream

SOURCE = LandingSource("members", ("member_id", "email", "phone"), "loyalty members")


class SilverMembers(Contract):
    member_id: T.StringType() = Field()
    email: T.StringType() = Field(nullable=True)
    phone: T.StringType() = Field(nullable=True)


class GoldMembers(SilverMembers):
    pass


def keep(ctx: TransformContext):
    return next(iter(ctx.inputs.values()))


CATALOG = {
    t.key: t
    for t in (
        TableDeclaration(key=TableKey("bronze", "members"), description="members", owner="team:x", source=SOURCE),
        TableDeclaration(
            key=TableKey("silver", "members"),
            description="members",
            owner="team:x",
            inputs={"members": Upstream(TableKey("bronze", "members"))},
            transform=lambda ctx: ctx.input("members").select(
                "member_id", "email", "phone", "partition_date", "_source"
            ),
            contract=SilverMembers,
            pii_columns={"email": "hash", "phone": "mask"},
        ),
        TableDeclaration(
            key=TableKey("gold", "members"),
            description="members",
            owner="team:x",
            inputs={"members": Upstream(TableKey("silver", "members"))},
            transform=keep,
            contract=GoldMembers,
        ),
    )
}


def test_pii_is_hashed_or_masked_before_gold(spark, tmp_path: Path) -> None:
    day = date(2013, 1, 1)
    folder = tmp_path / "landing/members" / day.isoformat()
    folder.mkdir(parents=True)
    (folder / "members.csv").write_text("member_id,email,phone\n1,ada@example.com,5551234567\n2,,\n")
    lakehouse = PathLakehouse(str(tmp_path))
    for key in CATALOG:
        run_table(spark, lakehouse, CATALOG[key], CATALOG, PartitionWindow.single_day(day), run_id="pii")
    silver = {
        r["member_id"]: r for r in spark.read.format("delta").load(str(tmp_path / "warehouse/silver/members")).collect()
    }
    gold = {
        r["member_id"]: r for r in spark.read.format("delta").load(str(tmp_path / "warehouse/gold/members")).collect()
    }
    assert silver["1"]["email"] == "ada@example.com"
    assert gold["1"]["email"] == hashlib.sha256(b"ada@example.com").hexdigest()
    assert gold["1"]["phone"] == "********67"
    assert gold["2"]["email"] is None and gold["2"]["phone"] is None


def test_an_unknown_pii_treatment_is_rejected_at_declaration() -> None:
    with pytest.raises(ValueError, match="PII treatment"):
        TableDeclaration(
            key=TableKey("silver", "x"),
            description="x",
            owner="team:x",
            transform=keep,
            contract=SilverMembers,
            pii_columns={"email": "encrypt"},  # type: ignore[dict-item]
        )
