"""Compute targets: where a table's materialization runs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from dagster import AssetExecutionContext, ConfigurableResource, Failure, MaterializeResult

from medallion_assets.framework.errors import is_data_error
from medallion_assets.framework.execution import TableCatalog, run_table
from medallion_assets.framework.lakehouse import PathLakehouse
from medallion_assets.framework.landing import LandingListing, LocalLanding
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableDeclaration
from medallion_assets.orchestration.reporting import blocked, to_maintenance_result, to_materialize_result
from medallion_assets.runtime import protocol

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class ComputeTarget(ConfigurableResource, ABC):
    @abstractmethod
    def materialize(
        self,
        context: AssetExecutionContext,
        table: TableDeclaration,
        catalog: TableCatalog,
        window: PartitionWindow,
    ) -> MaterializeResult: ...

    @abstractmethod
    def maintain(self, context: AssetExecutionContext, table: TableDeclaration) -> MaterializeResult:
        """OPTIMIZE and VACUUM `table` (and its quarantine) where its builds run."""

    @abstractmethod
    def landing(self) -> LandingListing:
        """Where this target's upstream systems land files, for the landing sensors."""


class LocalSparkCompute(ComputeTarget):
    """The embedded default: local PySpark and path-based Delta tables under `home`."""

    home: str

    def landing(self) -> LandingListing:
        return LocalLanding(PathLakehouse(self.home).landing_root)

    def _spark(self, context: AssetExecutionContext) -> SparkSession:
        from medallion_assets.embedded.spark import local_spark_started, local_target_session, spark_remote

        if spark_remote() is None and not local_spark_started():
            context.log.info(
                "starting local Spark (about 10 s; a machine's first start also fetches Delta's jars from Maven "
                "Central, and once it exits builds a class archive in the background so later starts are faster; "
                "`medallion engine` keeps one running for every run)"
            )
        return local_target_session()

    def maintain(self, context: AssetExecutionContext, table: TableDeclaration) -> MaterializeResult:
        from medallion_assets.framework.maintenance import maintain_table

        return to_maintenance_result(maintain_table(self._spark(context), PathLakehouse(self.home), table))

    def materialize(
        self,
        context: AssetExecutionContext,
        table: TableDeclaration,
        catalog: TableCatalog,
        window: PartitionWindow,
    ) -> MaterializeResult:
        from medallion_assets.embedded.spark import tune_for_window

        spark = self._spark(context)
        context.log.debug(f"building {table.key} for {window} on local Spark")
        tune_for_window(spark, window.day_count)
        try:
            report = run_table(
                spark,
                PathLakehouse(self.home),
                table,
                catalog,
                window,
                run_id=context.run_id,
                accepted_checks=protocol.parse_check_names(context.run.tags.get(protocol.ACCEPT_CHECKS_TAG)),
            )
        except Exception as error:
            if not is_data_error(error):
                raise
            # Errors in the data, its landing or the query: a retry cannot fix them, so they fail once.
            raise Failure(description=str(error), allow_retries=False) from None
        if not report.committed:
            raise blocked(report)
        return to_materialize_result(report)
