"""Gold: a sales star schema at line-item grain, and daily KPIs measured as TPC-H's queries define them.

Revenue is TPC-H's `l_extendedprice * (1 - l_discount)` (Q3, Q5, Q10), the charge adds tax (Q1), and a line is
late when it was received after its commit date (Q4, Q12). Every measure is DECIMAL arithmetic, so sums are exact.
"""

from __future__ import annotations

import pyspark.sql.types as T
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from medallion_assets.framework.declare import (
    CalendarDay,
    Conservation,
    Contract,
    Field,
    ForeignKey,
    Maintenance,
    TableDeclaration,
    TableKey,
    TransformContext,
    Upstream,
    calendar_days,
)

OWNER = "team:retail-analytics"
# Wide enough for any line (TPC-H's largest extended price is below 10^6) at the scale of the exact product.
REVENUE_TYPE, REVENUE = T.DecimalType(18, 4), "DECIMAL(18,4)"
CHARGE_TYPE, CHARGE = T.DecimalType(18, 6), "DECIMAL(18,6)"
# Spark widens a DECIMAL sum by ten digits and keeps its scale.
SUM_OF_MONEY = T.DecimalType(25, 2)
SUM_OF_REVENUE = T.DecimalType(28, 4)
SUM_OF_CHARGE = T.DecimalType(28, 6)
MONEY_TYPE = T.DecimalType(15, 2)
HIGH_PRIORITIES = ("1-URGENT", "2-HIGH")


def _gold(name: str) -> TableKey:
    return TableKey("gold", name)


def _silver(name: str) -> Upstream:
    return Upstream(TableKey("silver", name))


def _current(frame: DataFrame, natural_key: str, surrogate_key: str, *columns: str) -> DataFrame:
    """The SCD2 version of each key current on each day, with a surrogate key of its own."""
    return frame.where("is_current").select(
        F.xxhash64(natural_key, "valid_from").alias(surrogate_key),
        natural_key,
        *columns,
        "valid_from",
        "partition_date",
    )


def _geography(ctx: TransformContext) -> DataFrame:
    """Nation and region names by nation key, per day."""
    regions = ctx.input("regions").select("regionkey", F.col("name").alias("region"), "partition_date")
    return (
        ctx.input("nations")
        .select("nationkey", F.col("name").alias("nation"), "regionkey", "partition_date")
        .join(regions, ["regionkey", "partition_date"], "left")
        .drop("regionkey")
    )


class DimCustomer(Contract):
    customer_key: T.LongType() = Field()
    custkey: T.LongType() = Field(ge=1)
    name: T.StringType() = Field()
    market_segment: T.StringType() = Field()
    phone: T.StringType() = Field()
    acctbal: MONEY_TYPE = Field()
    nation: T.StringType() = Field()
    region: T.StringType() = Field()
    valid_from: T.DateType() = Field()


def transform_dim_customer(ctx: TransformContext) -> DataFrame:
    customers = _current(
        ctx.input("customers"), "custkey", "customer_key", "name", "market_segment", "phone", "acctbal", "nationkey"
    )
    return customers.join(F.broadcast(_geography(ctx)), ["nationkey", "partition_date"], "left").drop("nationkey")


class DimSupplier(Contract):
    supplier_key: T.LongType() = Field()
    suppkey: T.LongType() = Field(ge=1)
    name: T.StringType() = Field()
    acctbal: MONEY_TYPE = Field()
    nation: T.StringType() = Field()
    region: T.StringType() = Field()
    valid_from: T.DateType() = Field()


def transform_dim_supplier(ctx: TransformContext) -> DataFrame:
    suppliers = _current(ctx.input("suppliers"), "suppkey", "supplier_key", "name", "acctbal", "nationkey")
    return suppliers.join(F.broadcast(_geography(ctx)), ["nationkey", "partition_date"], "left").drop("nationkey")


class DimPart(Contract):
    part_key: T.LongType() = Field()
    partkey: T.LongType() = Field(ge=1)
    name: T.StringType() = Field()
    manufacturer: T.StringType() = Field()
    brand: T.StringType() = Field()
    type: T.StringType() = Field()
    size: T.IntegerType() = Field()
    container: T.StringType() = Field()
    retail_price: MONEY_TYPE = Field()
    valid_from: T.DateType() = Field()


def transform_dim_part(ctx: TransformContext) -> DataFrame:
    return _current(
        ctx.input("parts"),
        "partkey",
        "part_key",
        "name",
        "manufacturer",
        "brand",
        "type",
        "size",
        "container",
        "retail_price",
    )


class FactSales(Contract):
    sales_id: T.LongType() = Field()
    orderkey: T.LongType() = Field()
    linenumber: T.IntegerType() = Field()
    date_key: T.IntegerType() = Field()
    customer_key: T.LongType() = Field()
    part_key: T.LongType() = Field()
    supplier_key: T.LongType() = Field()
    order_status: T.StringType() = Field()
    order_priority: T.StringType() = Field()
    ship_priority: T.IntegerType() = Field()
    quantity: MONEY_TYPE = Field()
    extended_price: MONEY_TYPE = Field()
    discount: MONEY_TYPE = Field()
    tax: MONEY_TYPE = Field()
    revenue: REVENUE_TYPE = Field(ge=0)
    charge: CHARGE_TYPE = Field(ge=0)
    return_flag: T.StringType() = Field()
    line_status: T.StringType() = Field()
    ship_mode: T.StringType() = Field()
    ship_date: T.DateType() = Field()
    commit_date: T.DateType() = Field()
    receipt_date: T.DateType() = Field()
    is_late: T.BooleanType() = Field()


def _keys(frame: DataFrame, natural_key: str, surrogate_key: str) -> DataFrame:
    return frame.select(natural_key, surrogate_key, "partition_date")


def transform_fact_sales(ctx: TransformContext) -> DataFrame:
    orders = ctx.input("orders").select(
        "orderkey", "custkey", "order_status", "order_priority", "ship_priority", "partition_date"
    )
    dates = ctx.input("dates").select(F.col("full_date").alias("partition_date"), "date_key")
    # Each dimension holds one row per key per day and orders one row per order key, so these left joins keep
    # every line exactly once; a line without its order or a dimension row fails the contract's non-null keys.
    joined = (
        ctx.input("lines")
        .join(orders, ["orderkey", "partition_date"], "left")
        .join(F.broadcast(dates), ["partition_date"], "left")
        .join(_keys(ctx.input("customers"), "custkey", "customer_key"), ["custkey", "partition_date"], "left")
        .join(_keys(ctx.input("parts"), "partkey", "part_key"), ["partkey", "partition_date"], "left")
        .join(_keys(ctx.input("suppliers"), "suppkey", "supplier_key"), ["suppkey", "partition_date"], "left")
    )
    revenue = F.expr(f"CAST(extended_price * (1 - discount) AS {REVENUE})")
    return joined.select(
        F.xxhash64("orderkey", "linenumber").alias("sales_id"),
        "orderkey",
        "linenumber",
        "date_key",
        "customer_key",
        "part_key",
        "supplier_key",
        "order_status",
        "order_priority",
        "ship_priority",
        "quantity",
        "extended_price",
        "discount",
        "tax",
        revenue.alias("revenue"),
        F.expr(f"CAST(CAST(extended_price * (1 - discount) AS {REVENUE}) * (1 + tax) AS {CHARGE})").alias("charge"),
        "return_flag",
        "line_status",
        "ship_mode",
        "ship_date",
        "commit_date",
        "receipt_date",
        (F.col("receipt_date") > F.col("commit_date")).alias("is_late"),
        "partition_date",
    )


class DailyRevenue(Contract):
    order_date: T.DateType() = Field()
    nation: T.StringType() = Field()
    region: T.StringType() = Field()
    market_segment: T.StringType() = Field()
    orders: T.LongType() = Field(ge=1)
    lines: T.LongType() = Field(ge=1)
    revenue: SUM_OF_REVENUE = Field(ge=0)
    local_supplier_revenue: SUM_OF_REVENUE = Field(ge=0)
    returned_revenue: SUM_OF_REVENUE = Field(ge=0)


def transform_daily_revenue(ctx: TransformContext) -> DataFrame:
    customers = ctx.input("customers").select("customer_key", "partition_date", "market_segment", "nation", "region")
    suppliers = ctx.input("suppliers").select(
        "supplier_key", "partition_date", F.col("nation").alias("supplier_nation")
    )
    sales = (
        ctx.input("sales")
        .join(customers, ["customer_key", "partition_date"], "left")
        .join(suppliers, ["supplier_key", "partition_date"], "left")
    )
    zero = F.lit(0).cast(REVENUE_TYPE)
    return sales.groupBy(F.col("partition_date").alias("order_date"), "nation", "region", "market_segment").agg(
        F.count_distinct("orderkey").alias("orders"),
        F.count(F.lit(1)).alias("lines"),
        F.sum("revenue").alias("revenue"),
        # Q5: revenue through suppliers of the customer's own nation.
        F.sum(F.when(F.col("supplier_nation") == F.col("nation"), F.col("revenue")).otherwise(zero)).alias(
            "local_supplier_revenue"
        ),
        # Q10: revenue lost to returned items.
        F.sum(F.when(F.col("return_flag") == "R", F.col("revenue")).otherwise(zero)).alias("returned_revenue"),
    )


class DailyPricingSummary(Contract):
    order_date: T.DateType() = Field()
    return_flag: T.StringType() = Field()
    line_status: T.StringType() = Field()
    sum_qty: SUM_OF_MONEY = Field(ge=0)
    sum_base_price: SUM_OF_MONEY = Field(ge=0)
    sum_disc_price: SUM_OF_REVENUE = Field(ge=0)
    sum_charge: SUM_OF_CHARGE = Field(ge=0)
    avg_qty: T.DecimalType(19, 6) = Field()
    avg_price: T.DecimalType(19, 6) = Field()
    avg_disc: T.DecimalType(19, 6) = Field()
    count_order: T.LongType() = Field(ge=1)


def transform_daily_pricing_summary(ctx: TransformContext) -> DataFrame:
    """Q1's pricing summary report, per order date instead of up to a ship date."""
    return (
        ctx.input("sales")
        .groupBy(F.col("partition_date").alias("order_date"), "return_flag", "line_status")
        .agg(
            F.sum("quantity").alias("sum_qty"),
            F.sum("extended_price").alias("sum_base_price"),
            F.sum("revenue").alias("sum_disc_price"),
            F.sum("charge").alias("sum_charge"),
            F.avg("quantity").alias("avg_qty"),
            F.avg("extended_price").alias("avg_price"),
            F.avg("discount").alias("avg_disc"),
            F.count(F.lit(1)).alias("count_order"),
        )
    )


class DailyShippingPriority(Contract):
    order_date: T.DateType() = Field()
    order_priority: T.StringType() = Field()
    ship_priority: T.IntegerType() = Field()
    orders: T.LongType() = Field(ge=1)
    late_orders: T.LongType() = Field(ge=0)
    lines: T.LongType() = Field(ge=1)
    late_lines: T.LongType() = Field(ge=0)
    high_priority_lines: T.LongType() = Field(ge=0)
    revenue: SUM_OF_REVENUE = Field(ge=0)
    late_line_rate: T.DoubleType() = Field(in_range={"min_value": 0.0, "max_value": 1.0})


def transform_daily_shipping_priority(ctx: TransformContext) -> DataFrame:
    """Q3's revenue by shipping priority, Q4's late orders and Q12's late lines, per order date."""
    return (
        ctx.input("sales")
        .groupBy(F.col("partition_date").alias("order_date"), "order_priority", "ship_priority")
        .agg(
            F.count_distinct("orderkey").alias("orders"),
            # Q4: an order counts once if any of its lines arrived after its commit date.
            F.count_distinct(F.when(F.col("is_late"), F.col("orderkey"))).alias("late_orders"),
            F.count(F.lit(1)).alias("lines"),
            F.count_if("is_late").alias("late_lines"),
            F.count_if(F.col("order_priority").isin(*HIGH_PRIORITIES)).alias("high_priority_lines"),
            F.sum("revenue").alias("revenue"),
        )
        .withColumn("late_line_rate", F.col("late_lines") / F.col("lines"))
    )


SALES = Upstream(_gold("fact_sales"))
SALES_CONSERVED = Conservation("sales", output_measure="sum(lines)")

GOLD_TABLES = [
    TableDeclaration(
        key=_gold("dim_calendar"),
        description="Calendar dimension for retail, one row per order date, keyed yyyymmdd.",
        owner=OWNER,
        built_after=(TableKey("bronze", "orders"),),
        transform=calendar_days,
        contract=CalendarDay,
        conservation=Conservation(None),
    ),
    TableDeclaration(
        key=_gold("dim_customer"),
        description="Customer dimension: the SCD2 version of each customer current on the day, with its nation "
        "and region; phone masked, address left out.",
        owner=OWNER,
        inputs={"customers": _silver("customer"), "nations": _silver("nation"), "regions": _silver("region")},
        transform=transform_dim_customer,
        contract=DimCustomer,
        conservation=Conservation("customers", input_measure="count_if(is_current)"),
    ),
    TableDeclaration(
        key=_gold("dim_part"),
        description="Part dimension: the SCD2 version of each part current on the day.",
        owner=OWNER,
        inputs={"parts": _silver("part")},
        transform=transform_dim_part,
        contract=DimPart,
        conservation=Conservation("parts", input_measure="count_if(is_current)"),
    ),
    TableDeclaration(
        key=_gold("dim_supplier"),
        description="Supplier dimension: the SCD2 version of each supplier current on the day, with its nation "
        "and region.",
        owner=OWNER,
        inputs={"suppliers": _silver("supplier"), "nations": _silver("nation"), "regions": _silver("region")},
        transform=transform_dim_supplier,
        contract=DimSupplier,
        conservation=Conservation("suppliers", input_measure="count_if(is_current)"),
    ),
    TableDeclaration(
        key=_gold("fact_sales"),
        description="One row per order line: keys to the calendar, customer, part and supplier dimensions, the "
        "order's status and priorities, and TPC-H's revenue, charge and lateness per line.",
        owner=OWNER,
        inputs={
            "lines": _silver("lineitem"),
            "orders": _silver("orders"),
            "dates": Upstream(_gold("dim_calendar")),
            "customers": Upstream(_gold("dim_customer")),
            "parts": Upstream(_gold("dim_part")),
            "suppliers": Upstream(_gold("dim_supplier")),
        },
        transform=transform_fact_sales,
        contract=FactSales,
        maintenance=Maintenance(zorder_by=("customer_key", "part_key")),
        conservation=Conservation("lines"),
        foreign_keys=[
            ForeignKey("dim_calendar", "date_key", _gold("dim_calendar"), "date_key"),
            ForeignKey("dim_customer", "customer_key", _gold("dim_customer"), "customer_key"),
            ForeignKey("dim_part", "part_key", _gold("dim_part"), "part_key"),
            ForeignKey("dim_supplier", "supplier_key", _gold("dim_supplier"), "supplier_key"),
        ],
    ),
    TableDeclaration(
        key=_gold("daily_revenue"),
        description="Daily revenue by customer nation, region and market segment, with Q5's local-supplier "
        "revenue and Q10's returned revenue.",
        owner=OWNER,
        inputs={
            "sales": SALES,
            "customers": Upstream(_gold("dim_customer")),
            "suppliers": Upstream(_gold("dim_supplier")),
        },
        transform=transform_daily_revenue,
        contract=DailyRevenue,
        conservation=SALES_CONSERVED,
        partition_column="order_date",
    ),
    TableDeclaration(
        key=_gold("daily_pricing_summary"),
        description="Q1's pricing summary (quantities, prices, discounted prices, charges) per order date, "
        "return flag and line status.",
        owner=OWNER,
        inputs={"sales": SALES},
        transform=transform_daily_pricing_summary,
        contract=DailyPricingSummary,
        conservation=Conservation("sales", output_measure="sum(count_order)"),
        partition_column="order_date",
    ),
    TableDeclaration(
        key=_gold("daily_shipping_priority"),
        description="Orders, lines and revenue per order date and priority, with late orders (Q4) and late "
        "lines (received after their commit date).",
        owner=OWNER,
        inputs={"sales": SALES},
        transform=transform_daily_shipping_priority,
        contract=DailyShippingPriority,
        conservation=SALES_CONSERVED,
        partition_column="order_date",
    ),
]
