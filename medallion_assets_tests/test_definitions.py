"""The code location loads fast and without a JVM, and every table is a fully described asset."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dagster import AssetKey, DailyPartitionsDefinition, TableSchema

from medallion_assets.definitions import defs, partitions_of
from medallion_assets.framework.maintenance import MAINTENANCE_PREFIX
from medallion_assets.runtime.protocol import DOMAIN_TAG

FLIGHTS_KEYS = {
    *(("bronze", t) for t in ("flights", "weather", "airlines", "airports", "planes")),
    *(("silver", t) for t in ("flights", "weather", "airlines", "airports", "planes")),
    *(
        ("gold", t)
        for t in ("fact_flights", "dim_date", "dim_carrier", "dim_airport", "dim_aircraft", "carrier_daily_performance")
    ),
}
RETAIL_SOURCES = ("orders", "lineitem", "customer", "part", "supplier", "partsupp", "nation", "region")
RETAIL_GOLD = (
    "fact_sales",
    "dim_calendar",
    "dim_customer",
    "dim_part",
    "dim_supplier",
    "daily_revenue",
    "daily_pricing_summary",
    "daily_shipping_priority",
)
RETAIL_KEYS = {
    *(("bronze", t) for t in RETAIL_SOURCES),
    *(("silver", t) for t in RETAIL_SOURCES),
    *(("gold", t) for t in RETAIL_GOLD),
}
EXPECTED_KEYS = FLIGHTS_KEYS | RETAIL_KEYS
# Each domain's partitions span the days its data covers.
DOMAIN_DAYS = {"flights": ("2013-01-01", "2013-12-31"), "retail": ("1992-01-01", "1998-08-02")}


# What only a build needs: loading the definitions for `dagster dev`, a sensor tick or the UI must not pay for it.
BUILD_ONLY_MODULES = ("pandera", "pandas", "pyarrow", "delta", "databricks.sdk", "dagster_databricks", "duckdb")


def test_definitions_load_without_starting_a_jvm_or_importing_what_only_a_build_needs() -> None:
    probe = (
        "import medallion_assets.definitions as d; d.defs.resolve_asset_graph();"
        "from pyspark import SparkContext; import sys;"
        "assert SparkContext._gateway is None and SparkContext._active_spark_context is None;"
        f"imported = [m for m in {BUILD_ONLY_MODULES!r} if m in sys.modules]; assert not imported, imported;"
        "print('no-jvm')"
    )
    completed = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "no-jvm" in completed.stdout


def test_dagster_definitions_validate_passes() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "medallion_assets.definitions"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_every_table_is_an_asset_with_partitions_kinds_owner_schema_and_checks() -> None:
    graph = defs.resolve_asset_graph()
    # Each table's maintenance asset is tested with the maintenance (test_maintenance.py).
    table_keys = [key for key in graph.get_all_asset_keys() if key.path[0] != MAINTENANCE_PREFIX]
    assert {tuple(key.path) for key in table_keys} == EXPECTED_KEYS
    for key in table_keys:
        node = graph.get(key)
        spec = defs.resolve_assets_def(key).specs_by_key[key]
        domain = spec.tags[DOMAIN_TAG]
        assert (tuple(key.path) in FLIGHTS_KEYS) == (domain == "flights"), key
        assert isinstance(node.partitions_def, DailyPartitionsDefinition)
        assert node.partitions_def == partitions_of[domain]
        first, last = DOMAIN_DAYS[domain]
        assert node.partitions_def.get_first_partition_key() == first
        assert node.partitions_def.get_last_partition_key() == last
        assert spec.group_name == key.path[0]
        assert {"spark", "delta"} <= set(spec.kinds)
        assert spec.owners and spec.description
        schema = spec.metadata["dagster/column_schema"]
        assert isinstance(schema, TableSchema) and len(schema.columns) >= 2
        assert list(defs.resolve_assets_def(key).check_specs), f"{key} has no checks"


def test_checks_are_declared_and_blocking() -> None:
    checks = {
        (tuple(spec.asset_key.path), spec.name): spec
        for key in EXPECTED_KEYS
        for spec in defs.resolve_assets_def(AssetKey(key)).check_specs
    }
    for layer_table in EXPECTED_KEYS:
        if layer_table[0] == "bronze":
            assert (layer_table, "landing_reconciliation") in checks
        else:
            assert (layer_table, "contract") in checks
            assert (layer_table, "reconciliation") in checks
        if layer_table[0] == "silver":
            assert (layer_table, "source_schema") in checks
    for fk in ("dim_date", "dim_carrier", "dim_airport_origin", "dim_airport_dest", "dim_aircraft"):
        assert (("gold", "fact_flights"), f"fk_{fk}") in checks
    assert all(spec.blocking for spec in checks.values())


def test_lineage_runs_bronze_to_silver_to_gold() -> None:
    graph = defs.resolve_asset_graph()
    assert AssetKey(["bronze", "flights"]) in graph.get(AssetKey(["silver", "flights"])).parent_keys
    fact_parents = graph.get(AssetKey(["gold", "fact_flights"])).parent_keys
    assert AssetKey(["silver", "flights"]) in fact_parents
    assert {AssetKey(["gold", d]) for d in ("dim_date", "dim_carrier", "dim_airport", "dim_aircraft")} <= fact_parents


def test_loading_the_definitions_prints_no_warning() -> None:
    """A new user's first command must not greet them with Dagster's preview and beta warnings, or our own."""
    completed = subprocess.run(
        [sys.executable, "-c", "import medallion_assets.definitions as d; d.defs.resolve_all_job_defs()"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Warning" not in completed.stderr, completed.stderr


def test_every_domain_brings_its_tables_sources_and_days_and_nothing_names_one() -> None:
    from medallion_assets.domains import DOMAINS

    job_names = {job.name for job in defs.resolve_all_job_defs()}
    for name, domain in DOMAINS.items():
        assert {
            f"{name}_tables",
            f"{name}_daily_tables",
            *(f"{name}_{layer}_layer" for layer in ("bronze", "silver", "gold")),
        } <= job_names
        assert domain.LANDING_SOURCES and domain.TABLES and callable(domain.stage)
    definitions_source = (Path(__file__).parents[1] / "medallion_assets" / "definitions.py").read_text()
    assert not any(name in definitions_source for name in DOMAINS)
