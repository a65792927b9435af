"""The one place that chooses the compute target."""

from __future__ import annotations

from medallion_assets.orchestration.compute import ComputeTarget, LocalSparkCompute
from medallion_assets.settings import compute_target_name, medallion_home


def compute_target_from_env() -> ComputeTarget:
    if compute_target_name() == "databricks":
        from medallion_assets.orchestration.databricks import DatabricksCompute

        return DatabricksCompute.from_env()
    return LocalSparkCompute(home=str(medallion_home()))
