"""Silver: retail exports typed, validated against TPC-H's own domains, deduplicated; reference tables with history."""

from __future__ import annotations

import pyspark.sql.types as T

from medallion_assets.framework.declare import (
    Contract,
    Field,
    Maintenance,
    Rule,
    Scd2,
    Scd2Columns,
    TableDeclaration,
    TableKey,
    Upstream,
    projection,
)

OWNER = "team:retail-data"
# TPC-H's money and quantity columns are DECIMAL(15,2) (its specification, clause 1.3.1): typed so, every sum of
# them downstream is exact.
MONEY = "DECIMAL(15,2)"
MONEY_TYPE = T.DecimalType(15, 2)
ORDER_PRIORITIES = ["1-URGENT", "2-HIGH", "3-MEDIUM", "4-NOT SPECIFIED", "5-LOW"]
MARKET_SEGMENTS = ["AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY"]
SHIP_MODES = ["AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK"]
SHIP_INSTRUCTIONS = ["COLLECT COD", "DELIVER IN PERSON", "NONE", "TAKE BACK RETURN"]
PHONE = r"^\d{2}-\d{3}-\d{3}-\d{4}$"


def _typed(sql_type: str, *columns: str) -> dict[str, str]:
    return dict.fromkeys(columns, sql_type)


def _bronze(name: str) -> dict[str, Upstream]:
    return {name: Upstream(TableKey("bronze", name))}


class SilverOrders(Contract):
    orderkey: T.LongType() = Field(ge=1)
    custkey: T.LongType() = Field(ge=1)
    order_status: T.StringType() = Field(isin=["F", "O", "P"])
    total_price: MONEY_TYPE = Field(ge=0)
    order_date: T.DateType() = Field()
    order_priority: T.StringType() = Field(isin=ORDER_PRIORITIES)
    clerk: T.StringType() = Field(str_matches=r"^Clerk#\d{9}$")
    ship_priority: T.IntegerType() = Field(ge=0)
    comment: T.StringType() = Field(nullable=True)


class SilverLineitem(Contract):
    orderkey: T.LongType() = Field(ge=1)
    linenumber: T.IntegerType() = Field(ge=1, le=7)
    partkey: T.LongType() = Field(ge=1)
    suppkey: T.LongType() = Field(ge=1)
    quantity: MONEY_TYPE = Field(ge=1, le=50)
    extended_price: MONEY_TYPE = Field(ge=0)
    discount: MONEY_TYPE = Field(ge=0, le=0.10)
    tax: MONEY_TYPE = Field(ge=0, le=0.08)
    return_flag: T.StringType() = Field(isin=["A", "N", "R"])
    line_status: T.StringType() = Field(isin=["F", "O"])
    ship_date: T.DateType() = Field()
    commit_date: T.DateType() = Field()
    receipt_date: T.DateType() = Field()
    ship_instruct: T.StringType() = Field(isin=SHIP_INSTRUCTIONS)
    ship_mode: T.StringType() = Field(isin=SHIP_MODES)
    comment: T.StringType() = Field(nullable=True)


class SilverCustomer(Scd2Columns):
    custkey: T.LongType() = Field(ge=1)
    name: T.StringType() = Field()
    address: T.StringType() = Field()
    nationkey: T.IntegerType() = Field(ge=0, le=24)
    phone: T.StringType() = Field(str_matches=PHONE)
    acctbal: MONEY_TYPE = Field(ge=-999.99, le=9999.99)
    market_segment: T.StringType() = Field(isin=MARKET_SEGMENTS)
    comment: T.StringType() = Field(nullable=True)


class SilverPart(Scd2Columns):
    partkey: T.LongType() = Field(ge=1)
    name: T.StringType() = Field()
    manufacturer: T.StringType() = Field(str_matches=r"^Manufacturer#[1-5]$")
    brand: T.StringType() = Field(str_matches=r"^Brand#[1-5][1-5]$")
    type: T.StringType() = Field()
    size: T.IntegerType() = Field(ge=1, le=50)
    container: T.StringType() = Field()
    retail_price: MONEY_TYPE = Field(gt=0)
    comment: T.StringType() = Field(nullable=True)


class SilverSupplier(Scd2Columns):
    suppkey: T.LongType() = Field(ge=1)
    name: T.StringType() = Field()
    address: T.StringType() = Field()
    nationkey: T.IntegerType() = Field(ge=0, le=24)
    phone: T.StringType() = Field(str_matches=PHONE)
    acctbal: MONEY_TYPE = Field(ge=-999.99, le=9999.99)
    comment: T.StringType() = Field(nullable=True)


class SilverPartsupp(Contract):
    partkey: T.LongType() = Field(ge=1)
    suppkey: T.LongType() = Field(ge=1)
    available_qty: T.IntegerType() = Field(ge=0)
    supply_cost: MONEY_TYPE = Field(ge=0)
    comment: T.StringType() = Field(nullable=True)


class SilverNation(Contract):
    nationkey: T.IntegerType() = Field(ge=0, le=24)
    name: T.StringType() = Field()
    regionkey: T.IntegerType() = Field(ge=0, le=4)
    comment: T.StringType() = Field(nullable=True)


class SilverRegion(Contract):
    regionkey: T.IntegerType() = Field(ge=0, le=4)
    name: T.StringType() = Field()
    comment: T.StringType() = Field(nullable=True)


SILVER_TABLES = [
    TableDeclaration(
        key=TableKey("silver", "orders"),
        description="Orders typed and deduplicated on the order key, each in the partition of its order date.",
        owner=OWNER,
        inputs=_bronze("orders"),
        casts={
            **_typed("BIGINT", "o_orderkey", "o_custkey"),
            "o_totalprice": MONEY,
            "o_orderdate": "DATE",
            "o_shippriority": "INT",
        },
        transform=projection(
            {
                "orderkey": "o_orderkey",
                "custkey": "o_custkey",
                "order_status": "upper(trim(o_orderstatus))",
                "total_price": "o_totalprice",
                "order_date": "o_orderdate",
                "order_priority": "upper(trim(o_orderpriority))",
                "clerk": "trim(o_clerk)",
                "ship_priority": "o_shippriority",
                "comment": "o_comment",
            }
        ),
        contract=SilverOrders,
        rules=[
            Rule(
                "order_date_is_partition",
                "order_date = partition_date",
                "drop",
                "the order's date is the day folder it landed in",
            )
        ],
        natural_key=("orderkey",),
    ),
    TableDeclaration(
        key=TableKey("silver", "lineitem"),
        description="Line items typed and deduplicated on (order, line number), in the partition of their order's "
        "date.",
        owner=OWNER,
        inputs=_bronze("lineitem"),
        casts={
            **_typed("BIGINT", "l_orderkey", "l_partkey", "l_suppkey"),
            "l_linenumber": "INT",
            **_typed(MONEY, "l_quantity", "l_extendedprice", "l_discount", "l_tax"),
            **_typed("DATE", "l_shipdate", "l_commitdate", "l_receiptdate"),
        },
        transform=projection(
            {
                "orderkey": "l_orderkey",
                "linenumber": "l_linenumber",
                "partkey": "l_partkey",
                "suppkey": "l_suppkey",
                "quantity": "l_quantity",
                "extended_price": "l_extendedprice",
                "discount": "l_discount",
                "tax": "l_tax",
                "return_flag": "upper(trim(l_returnflag))",
                "line_status": "upper(trim(l_linestatus))",
                "ship_date": "l_shipdate",
                "commit_date": "l_commitdate",
                "receipt_date": "l_receiptdate",
                "ship_instruct": "upper(trim(l_shipinstruct))",
                "ship_mode": "upper(trim(l_shipmode))",
                "comment": "l_comment",
            }
        ),
        contract=SilverLineitem,
        # Line items are looked up by the part or the supplier they sold.
        maintenance=Maintenance(zorder_by=("partkey", "suppkey")),
        rules=[
            Rule(
                "shipped_after_order",
                "ship_date > partition_date",
                "drop",
                "a line ships after its order is placed (TPC-H: 1 to 121 days after)",
            ),
            Rule(
                "received_after_shipping",
                "receipt_date > ship_date",
                "drop",
                "a line is received after it ships (TPC-H: 1 to 30 days after)",
            ),
        ],
        natural_key=("orderkey", "linenumber"),
    ),
    TableDeclaration(
        key=TableKey("silver", "customer"),
        description="Customers: cleaned current rows with SCD Type 2 history from the daily snapshots.",
        owner=OWNER,
        inputs=_bronze("customer"),
        casts={"c_custkey": "BIGINT", "c_nationkey": "INT", "c_acctbal": MONEY},
        transform=projection(
            {
                "custkey": "c_custkey",
                "name": "trim(c_name)",
                "address": "c_address",
                "nationkey": "c_nationkey",
                "phone": "trim(c_phone)",
                "acctbal": "c_acctbal",
                "market_segment": "upper(trim(c_mktsegment))",
                "comment": "c_comment",
            }
        ),
        contract=SilverCustomer,
        natural_key=("custkey",),
        scd2=Scd2(key=("custkey",)),
        pii_columns={"phone": "mask", "address": "hash"},
    ),
    TableDeclaration(
        key=TableKey("silver", "part"),
        description="Parts: cleaned current rows with SCD Type 2 history from the daily snapshots.",
        owner=OWNER,
        inputs=_bronze("part"),
        casts={"p_partkey": "BIGINT", "p_size": "INT", "p_retailprice": MONEY},
        transform=projection(
            {
                "partkey": "p_partkey",
                "name": "trim(p_name)",
                "manufacturer": "trim(p_mfgr)",
                "brand": "trim(p_brand)",
                "type": "upper(trim(p_type))",
                "size": "p_size",
                "container": "upper(trim(p_container))",
                "retail_price": "p_retailprice",
                "comment": "p_comment",
            }
        ),
        contract=SilverPart,
        natural_key=("partkey",),
        scd2=Scd2(key=("partkey",)),
    ),
    TableDeclaration(
        key=TableKey("silver", "supplier"),
        description="Suppliers: cleaned current rows with SCD Type 2 history from the daily snapshots.",
        owner=OWNER,
        inputs=_bronze("supplier"),
        casts={"s_suppkey": "BIGINT", "s_nationkey": "INT", "s_acctbal": MONEY},
        transform=projection(
            {
                "suppkey": "s_suppkey",
                "name": "trim(s_name)",
                "address": "s_address",
                "nationkey": "s_nationkey",
                "phone": "trim(s_phone)",
                "acctbal": "s_acctbal",
                "comment": "s_comment",
            }
        ),
        contract=SilverSupplier,
        natural_key=("suppkey",),
        scd2=Scd2(key=("suppkey",)),
    ),
    TableDeclaration(
        key=TableKey("silver", "partsupp"),
        description="Which supplier offers which part, at what cost: each day's snapshot, typed and deduplicated.",
        owner=OWNER,
        inputs=_bronze("partsupp"),
        casts={**_typed("BIGINT", "ps_partkey", "ps_suppkey"), "ps_availqty": "INT", "ps_supplycost": MONEY},
        transform=projection(
            {
                "partkey": "ps_partkey",
                "suppkey": "ps_suppkey",
                "available_qty": "ps_availqty",
                "supply_cost": "ps_supplycost",
                "comment": "ps_comment",
            }
        ),
        contract=SilverPartsupp,
        natural_key=("partkey", "suppkey"),
    ),
    TableDeclaration(
        key=TableKey("silver", "nation"),
        description="The nations, as they stand on each day (a static reference file).",
        owner=OWNER,
        inputs=_bronze("nation"),
        casts=_typed("INT", "n_nationkey", "n_regionkey"),
        transform=projection(
            {
                "nationkey": "n_nationkey",
                "name": "upper(trim(n_name))",
                "regionkey": "n_regionkey",
                "comment": "n_comment",
            }
        ),
        contract=SilverNation,
        natural_key=("nationkey",),
    ),
    TableDeclaration(
        key=TableKey("silver", "region"),
        description="The regions, as they stand on each day (a static reference file).",
        owner=OWNER,
        inputs=_bronze("region"),
        casts={"r_regionkey": "INT"},
        transform=projection({"regionkey": "r_regionkey", "name": "upper(trim(r_name))", "comment": "r_comment"}),
        contract=SilverRegion,
        natural_key=("regionkey",),
    ),
]
