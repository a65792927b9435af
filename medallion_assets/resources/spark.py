"""A process-wide SparkSession with Delta, started on first use and never at import."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from medallion_assets.resources import class_archive
from medallion_assets.settings import switch

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_lock = threading.Lock()
_session: SparkSession | None = None

LOCAL_SPARK_CONF: dict[str, str] = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.databricks.delta.schema.autoMerge.enabled": "false",
    "spark.driver.extraJavaOptions": "-Dlog4j2.level=WARN",
}

# The embedded engine builds small windows with many short queries. Compiling generated Java for every new
# query plan costs more CPU than interpreting the rows saves: without code generation a day's graph took 22%
# less CPU cold and 22% less time warm. MEDALLION_SPARK_CODEGEN=on restores it for large local data.
INTERPRETED_SPARK_CONF: dict[str, str] = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}


def _jar_cache_file() -> Path:
    from importlib.metadata import version

    import pyspark

    return class_archive.cache_dir() / f"delta-{version('delta-spark')}-spark-{pyspark.__version__}.jars"


def _cached_delta_jars() -> list[str]:
    """The jar files Ivy resolved for Delta on an earlier start, if they are all still there."""
    cache = _jar_cache_file()
    if not cache.is_file():
        return []
    jars = [line for line in cache.read_text().splitlines() if line]
    return jars if jars and all(Path(jar.removeprefix("file:")).is_file() for jar in jars) else []


def _remember_delta_jars(session: SparkSession) -> None:
    jars = [jar for jar in session.sparkContext.getConf().get("spark.jars", "").split(",") if jar]
    if jars:
        cache = _jar_cache_file()
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text("\n".join(jars) + "\n")


def _start(builder: SparkSession.Builder, java_options: list[str]) -> SparkSession:
    options = " ".join(
        [
            LOCAL_SPARK_CONF["spark.driver.extraJavaOptions"],
            os.environ.get("MEDALLION_SPARK_JAVA_OPTIONS", ""),
            *java_options,
        ]
    )
    return builder.config("spark.driver.extraJavaOptions", options).getOrCreate()


def local_spark_session(shuffle_partitions: int | None = None) -> SparkSession:
    """The embedded default engine: local Spark with delta-spark, shared by the whole process."""
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    global _session
    with _lock:
        if _session is not None:
            return _session
        partitions = shuffle_partitions or int(os.environ.get("MEDALLION_SHUFFLE_PARTITIONS", "4"))
        builder = (
            SparkSession.builder.master(os.environ.get("MEDALLION_SPARK_MASTER", "local[*]"))
            .appName("medallion_assets")
            .config("spark.sql.shuffle.partitions", str(partitions))
            .config("spark.default.parallelism", str(partitions))
            .config("spark.driver.memory", os.environ.get("MEDALLION_SPARK_DRIVER_MEMORY", "2g"))
        )
        for key, value in {
            **LOCAL_SPARK_CONF,
            **({} if switch("MEDALLION_SPARK_CODEGEN", default=False) else INTERPRETED_SPARK_CONF),
        }.items():
            builder = builder.config(key, value)
        # The first start resolves Delta from Maven Central into the Ivy cache; later starts (every
        # test process, every emulated Databricks task) reuse the resolved jars and skip resolution.
        cached_jars = _cached_delta_jars()
        if cached_jars:
            builder = builder.config("spark.jars", ",".join(cached_jars))
        else:
            builder = configure_spark_with_delta_pip(builder)
        archive_options = class_archive.java_options()
        try:
            _session = _start(builder, archive_options)
        except Exception:
            if not archive_options:
                raise
            # A damaged archive must never keep Spark from starting.
            class_archive.discard()
            _session = _start(builder, [])
        if not cached_jars:
            _remember_delta_jars(_session)
        _session.sparkContext.setLogLevel("ERROR")
        # PySpark logs every analysis error as a JSON blob; Dagster already reports the exception.
        logging.getLogger("DataFrameQueryContextLogger").setLevel(logging.CRITICAL)
        return _session


def runtime_spark_session() -> SparkSession:
    """On a Databricks cluster the runtime owns the session; anywhere else start the local one."""
    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        from pyspark.sql import SparkSession

        return SparkSession.builder.getOrCreate()
    return local_spark_session()
