"""Dagster adapters of the table framework: assets, checks and results built from the declarations."""
