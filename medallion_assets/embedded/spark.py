"""A process-wide SparkSession with Delta, started on first use and never at import.

This module is the local bootstrap: it is the one place that touches the JVM (`sparkContext`, `_jvm`), and it
never runs in a Databricks task, where the runtime owns the session. Everything a task runs (framework,
domains, runtime) keeps to the Spark Connect API.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from medallion_assets.embedded import class_archive, local_fs
from medallion_assets.embedded.cache import cache_dir
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
    # Every read is already pruned to its window's days by a static partition filter. Dynamic partition pruning
    # then added, for each dimension joined on the day, a subquery that evaluated the other side of the join:
    # gold/fact_flights' check pass ran its whole transform again per dimension (7 days: 20.7 s with it, 3.7 s
    # without; the table's build 27.6 s against 9.6 s).
    "spark.sql.optimizer.dynamicPartitionPruning.enabled": "false",
    # Delta's VACUUM lists a table's folders as a Spark job with this many tasks (Spark's default: 10,000). On one
    # machine that is 10,000 scheduled tasks to list a few hundred local folders: VACUUM of a two-day table took
    # 162 s with it, and 19.7 s with four (both on a loaded machine).
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "4",
    "spark.driver.extraJavaOptions": "-Dlog4j2.level=WARN",
}

# Code generation by the size of the work. A day is a few thousand rows through many short queries: compiling
# generated Java for every new plan costs more CPU than interpreting the rows saves (a day's graph took 22% less
# CPU without it). A backfill's window is hundreds of thousands of rows through the same queries, where the
# compiled code wins (gold/fact_flights over 30 days: 30.3 s compiled against 39.6 s interpreted). Both are
# runtime settings of the session, so each build chooses. MEDALLION_SPARK_CODEGEN=on or off fixes the choice.
INTERPRETED_SPARK_CONF: dict[str, str] = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
COMPILED_SPARK_CONF: dict[str, str] = {
    "spark.sql.codegen.wholeStage": "true",
    "spark.sql.codegen.factoryMode": "FALLBACK",
}
CODEGEN_FROM_DAYS = 14


def tune_for_window(spark: SparkSession, days: int) -> None:
    """Set the local engine up for a build over `days` days (see CODEGEN_FROM_DAYS)."""
    compiled = switch("MEDALLION_SPARK_CODEGEN", default=days >= CODEGEN_FROM_DAYS)
    for key, value in (COMPILED_SPARK_CONF if compiled else INTERPRETED_SPARK_CONF).items():
        spark.conf.set(key, value)


def _jar_cache_file() -> Path:
    from importlib.metadata import version

    import pyspark

    return cache_dir() / f"delta-{version('delta-spark')}-spark-{pyspark.__version__}.jars"


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


@contextlib.contextmanager
def _jar_resolution_lock() -> Iterator[None]:
    """Held by the one process that resolves Delta's jars on a machine that has none cached.

    Ivy's cache is not safe for two resolutions at once: two test workers (or a test and the `dagster dev` it
    starts) resolving into a fresh ~/.ivy2 both failed with "impossible to move part file" and JAVA_GATEWAY_EXITED.
    The others wait, then find the jars that the first one cached.
    """
    lock_file = _jar_cache_file().with_suffix(".lock")
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# The throughput collector for the local driver, unless the person chose one. A local build is one short-lived
# JVM of many small queries on two cores, where G1's concurrent work and write barriers cost more than its short
# pauses save: 60 days of every flights table took 138.5 and 139.3 s with it against 150.3 and 151.1 s with G1
# (the JVM's default here), and 143.4 s with the serial collector.
LOCAL_GARBAGE_COLLECTOR = "-XX:+UseParallelGC"
_COLLECTOR_CHOICE = re.compile(r"-XX:\+Use\w+GC\b")


def driver_java_options(java_options: list[str]) -> str:
    """The local driver's JVM flags: ours, then `$MEDALLION_SPARK_JAVA_OPTIONS`, then the class archive's."""
    chosen = os.environ.get("MEDALLION_SPARK_JAVA_OPTIONS", "")
    return " ".join(
        [
            LOCAL_SPARK_CONF["spark.driver.extraJavaOptions"],
            *([] if _COLLECTOR_CHOICE.search(chosen) else [LOCAL_GARBAGE_COLLECTOR]),
            chosen,
            *java_options,
        ]
    ).strip()


def _start(builder: SparkSession.Builder, java_options: list[str]) -> SparkSession:
    return builder.config("spark.driver.extraJavaOptions", driver_java_options(java_options)).getOrCreate()


def local_spark_session(shuffle_partitions: int | None = None, master: str | None = None) -> SparkSession:
    """The embedded default engine: local Spark with delta-spark, shared by the whole process.

    `master` (default `$MEDALLION_SPARK_MASTER`, else `local[*]`) applies only to the first call, which starts it.
    """
    from delta import configure_spark_with_delta_pip
    from pyspark.sql import SparkSession

    global _session
    with _lock:
        if _session is not None:
            return _session
        partitions = shuffle_partitions or int(os.environ.get("MEDALLION_SHUFFLE_PARTITIONS", "4"))
        builder = (
            SparkSession.builder.master(master or os.environ.get("MEDALLION_SPARK_MASTER", "local[*]"))
            .appName("medallion_assets")
            .config("spark.sql.shuffle.partitions", str(partitions))
            .config("spark.default.parallelism", str(partitions))
            .config("spark.driver.memory", os.environ.get("MEDALLION_SPARK_DRIVER_MEMORY", "2g"))
        )
        for key, value in {
            **LOCAL_SPARK_CONF,
            **(COMPILED_SPARK_CONF if switch("MEDALLION_SPARK_CODEGEN", default=False) else INTERPRETED_SPARK_CONF),
        }.items():
            builder = builder.config(key, value)
        # The first start resolves Delta from Maven Central into the Ivy cache; later starts (every
        # test process, every emulated Databricks task) reuse the resolved jars and skip resolution.
        cached_jars = _cached_delta_jars()
        resolving = contextlib.nullcontext() if cached_jars else _jar_resolution_lock()
        with resolving:
            if not cached_jars:
                cached_jars = _cached_delta_jars()  # resolved by another process while this one waited
            file_system_jar = local_fs.file_system_jar()
            if file_system_jar is not None:
                builder = builder.config("spark.driver.extraClassPath", str(file_system_jar)).config(
                    "spark.hadoop.fs.file.impl", local_fs.FILE_SYSTEM_CLASS
                )
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


def local_spark_started() -> bool:
    return _session is not None


REMOTE_SETTING = "MEDALLION_SPARK_REMOTE"


def spark_remote() -> str | None:
    """Where the runtime's Spark Connect server is, from $MEDALLION_SPARK_REMOTE; None for classic local Spark.

    `sc://host:port` reaches a running Connect server; `local` or `local[N]` serves Connect from this process's
    own local engine (see `connect_session`).
    """
    remote = os.environ.get(REMOTE_SETTING, "").strip() or None
    if remote is not None and not remote.startswith(("sc://", "local")):
        raise ValueError(f"{REMOTE_SETTING} must be an sc://host:port URL or local[N], not {remote!r}")
    return remote


_connect_lock = threading.Lock()
_connect_url: str | None = None


def serve_connect(spark: SparkSession) -> str:
    """Start a Spark Connect server inside `spark`'s own JVM, once per process, and return its URL.

    The server's sessions are new sessions of the same SparkContext, so they have Delta's session extension
    and catalog, its jars and every setting of the local engine, and no second JVM starts. It listens on a
    free loopback port, so test processes running side by side do not collide, and it admits only clients
    that present this process's random token.
    """
    global _connect_url
    with _connect_lock:
        if _connect_url is not None:
            return _connect_url
        jvm = spark.sparkContext._jvm
        token = secrets.token_urlsafe(32)
        # The server reads these from the live SparkConf when it starts, not when the context started.
        conf = jvm.org.apache.spark.SparkEnv.get().conf()
        conf.set("spark.connect.grpc.binding.address", "127.0.0.1")
        conf.set("spark.connect.grpc.binding.port", "0")
        conf.set("spark.connect.authenticate.token", token)
        # The server would log every error it returns with its stack trace, a missing table (probed on every
        # first build) included; the client raises each one already.
        log4j = jvm.org.apache.logging.log4j
        log4j.core.config.Configurator.setLevel("org.apache.spark.sql.connect.utils.ErrorUtils", log4j.Level.OFF)
        service = jvm.org.apache.spark.sql.connect.service
        service.SparkConnectService.start(spark.sparkContext._jsc.sc())
        port = getattr(getattr(service, "SparkConnectService$"), "MODULE$").localPort()
        _connect_url = f"sc://localhost:{port}/;token={token}"
        return _connect_url


def connect_session(remote: str) -> SparkSession:
    """A Spark Connect session, the kind serverless Databricks compute gives a task.

    `sc://...` connects to that server. `local`/`local[N]` serves Connect from this process's local engine
    (started with master `remote` if it is not running yet) instead of pyspark's own `remote("local[N]")`,
    which refuses to start next to an existing session and would start a second JVM without Delta.
    """
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    url = remote if remote.startswith("sc://") else serve_connect(local_spark_session(master=remote))
    # What pyspark's own builder sets for a remote session: pyspark.sql.functions and Window then build Connect
    # expressions. It is process-wide, so a process that also uses a classic session unsets it around that use.
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    return ConnectSession.builder.remote(url).getOrCreate()


def runtime_spark_session() -> SparkSession:
    """The session a Databricks task builds tables with.

    On Databricks the runtime owns it (on serverless compute, a Spark Connect session). Elsewhere,
    $MEDALLION_SPARK_REMOTE selects a Spark Connect session, which is how a test runs the runtime path the way
    serverless runs it; without it, the classic local engine.
    """
    from pyspark.sql import SparkSession

    if os.environ.get("DATABRICKS_RUNTIME_VERSION"):
        return SparkSession.builder.getOrCreate()
    return local_target_session()


def local_target_session() -> SparkSession:
    """The session the local target builds with: the Connect server $MEDALLION_SPARK_REMOTE names, else local Spark.

    `medallion engine` serves one from a JVM that stays up. Each run that `dagster dev` launches is a process of
    its own, which would otherwise start a JVM (about 10 s) and warm it up again on every table it builds.
    """
    remote = spark_remote()
    return connect_session(remote) if remote is not None else local_spark_session()
