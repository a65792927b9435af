"""The entry point Databricks executes."""
