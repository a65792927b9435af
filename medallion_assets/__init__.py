"""medallion_assets: a Databricks-style medallion lakehouse as Dagster software-defined assets."""
