"""Compute targets as Dagster resources: the one place where local versus Databricks is chosen."""
