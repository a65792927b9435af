"""A class-data-sharing (CDS) archive of Spark's classes for the local engine's JVMs.

Every Dagster run worker, every emulated Databricks task and every CLI call starts its own JVM, and a
cold JVM spends seconds parsing and verifying the same thousands of Spark classes. The JVM can map
them from an archive instead. The first process on a machine that starts local Spark without one builds it
in a background process once it exits; every later start maps it. A damaged archive is deleted and Spark
starts without it.

Set MEDALLION_CLASS_ARCHIVE=off to start every JVM without an archive.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from medallion_assets.embedded import local_fs
from medallion_assets.embedded.cache import cache_dir
from medallion_assets.embedded.jdk import jdk_tool
from medallion_assets.settings import switch

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

SETTING = "MEDALLION_CLASS_ARCHIVE"
# Set only in the builder process: where its JVM writes the archive as it exits.
DUMP_TO = "_MEDALLION_CLASS_ARCHIVE_DUMP"
# A builder that has not finished by then died without removing its lock.
STALE_LOCK_S = 600


def archive_file() -> Path | None:
    """One archive per JVM build and Spark installation: the JVM rejects an archive made by another."""
    java = jdk_tool("java")
    if java is None:
        return None
    import pyspark

    # The JVM checks that each jar on the class path is the one the archive was made from: a virtual environment
    # made again at the same path has new jars, and the old archive fails to load ("Unable to use shared archive").
    # The jars folder's time tells the installations apart.
    jars = Path(pyspark.__file__).parent / "jars"
    installed = jars.stat().st_mtime_ns if jars.is_dir() else 0
    # The compiled local file system is on the class path too (`local_fs`): a new one needs a new archive.
    file_system = local_fs.jar_path()
    identity = json.dumps(
        [str(java), java.stat().st_mtime_ns, pyspark.__file__, pyspark.__version__, installed, str(file_system)]
    )
    return cache_dir() / f"spark-classes-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.jsa"


# An archive is about 190 MB and serves one PySpark installation, that is one virtual environment. Each records the
# installation it was made for beside it, so the next archive made on the machine removes those whose installation
# is gone: a machine that makes a fresh environment per CI run would otherwise keep one archive per run.
ORIGIN_SUFFIX = ".origin"


def _origin(archive: Path) -> Path:
    return archive.with_suffix(ORIGIN_SUFFIX)


def _recorded(archive: Path) -> dict[str, str] | None:
    try:
        origin = json.loads(_origin(archive).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return origin if isinstance(origin, dict) and "pyspark" in origin else None


def prune(keep: Path) -> list[Path]:
    """Remove the archives of PySpark installations that no longer exist or were made again, and return them.

    An archive of the same PySpark path and java as `keep` is of an earlier installation there: its jars are gone.
    An archive without a record (made before records were kept) is left alone: nothing says it is unused.
    """
    removed = []
    kept = _recorded(keep) or {}
    for other in sorted(keep.parent.glob("spark-classes-*.jsa")):
        if other == keep:
            continue
        origin = _recorded(other)
        if origin is None:
            continue
        installation = origin["pyspark"]
        superseded = installation == kept.get("pyspark") and origin.get("java") == kept.get("java") is not None
        if superseded or not Path(installation).exists():
            other.unlink(missing_ok=True)
            _origin(other).unlink(missing_ok=True)
            removed.append(other)
    return removed


def enabled() -> bool:
    return switch(SETTING, default=True)


def java_options() -> list[str]:
    """The JVM flags for the next local Spark start; when there is no archive, builds one after this process."""
    dump_to = os.environ.get(DUMP_TO)
    if dump_to:
        return [f"-XX:ArchiveClassesAtExit={dump_to}"]
    archive = archive_file() if enabled() else None
    if archive is None:
        return []
    if archive.is_file():
        # A JVM that cannot map a damaged archive crashes; its report belongs beside the archive, not in the
        # user's working directory.
        return [f"-XX:SharedArchiveFile={archive}", f"-XX:ErrorFile={archive.parent}/jvm-crash-%p.log"]
    # Not now, beside the work that needed Spark: a builder running alongside a newcomer's first `medallion run`
    # made it 127 to 135 s instead of 96 to 105 s on 2 vCPUs, even at the lowest CPU priority (SCHED_IDLE): the cost is
    # not only CPU time. Dumping from the run's own JVM costs more: 15.6 s instead of 8.7 s to start and count,
    # then 10.7 s to write the archive at exit.
    builds_after_exit.add(archive)
    return []


# The archives this process found missing, built once it exits.
builds_after_exit: set[Path] = set()


@atexit.register
def _start_builds_after_exit() -> None:
    for archive in sorted(builds_after_exit):
        start_building(archive)


def discard() -> None:
    """Forget the archive, for when a JVM could not start with it."""
    archive = archive_file()
    if archive is not None:
        archive.unlink(missing_ok=True)


def _lock_for(archive: Path) -> Path:
    return archive.with_suffix(".building")


def start_building(archive: Path) -> None:
    """Start one background builder per machine, unless one is already at work or has finished."""
    if archive.is_file():
        return
    lock = _lock_for(archive)
    lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        if time.time() - lock.stat().st_mtime > STALE_LOCK_S:
            lock.unlink(missing_ok=True)
        return
    with os.fdopen(descriptor, "w") as owner:
        owner.write(str(os.getpid()))
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYSPARK_GATEWAY")}
    subprocess.Popen(
        [sys.executable, "-m", "medallion_assets.embedded.class_archive", str(archive)],
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        # In the background, behind the run that needed Spark: the archive only speeds up later starts.
        preexec_fn=lambda: os.nice(15),
    )


def _exercise(spark: SparkSession, scratch: Path) -> None:
    """Load the classes a table build loads: bronze ingest, Delta writes and reads, windows, joins."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from medallion_assets.framework import bronze_ingest
    from medallion_assets.framework.delta_io import read_window, write_window
    from medallion_assets.framework.lakehouse import PathLakehouse
    from medallion_assets.framework.partitions import PartitionWindow
    from medallion_assets.framework.table import LandingSource, TableKey

    day = PartitionWindow.for_keys("2013-01-01", "2013-01-01")
    source = LandingSource("exercise", ("id", "name", "amount"), "the class archive's workload")
    lakehouse = PathLakehouse(str(scratch))
    landed = lakehouse.landing_dir(source, day.start)
    landed.mkdir(parents=True)
    (landed / "exercise.csv").write_text("id,name,amount\n1,a,1.5\n2,b,x\n2,b,2.5\n", encoding="utf-8")
    files = bronze_ingest.discover_landed_files(lakehouse, source, day)
    rows = (
        bronze_ingest.ingest(
            spark, source, files, run_id="class-archive", ingested_at=datetime.now(UTC), partition_column="day"
        )
        .withColumn("amount", F.expr("try_cast(amount AS DOUBLE)"))
        .withColumn("rank", F.row_number().over(Window.partitionBy("id").orderBy("name")))
    )
    location = lakehouse.table(TableKey("silver", source.name))
    for _ in range(2):
        write_window(rows, location, day, "day", evolve_schema=True)
    written = read_window(spark, location, day, "day")
    assert written is not None
    cached = written.cache()
    cached.join(rows.select("id", "name"), "id", "left_anti").count()
    cached.groupBy("name").agg(F.count_if(F.col("amount").isNull()), F.avg("amount")).collect()
    cached.unpersist()


def _stop_and_wait(spark: SparkSession) -> None:
    """The JVM writes the archive while it exits; wait until it has."""
    gateway = spark.sparkContext._gateway
    process = getattr(gateway, "proc", None)
    spark.stop()
    gateway.shutdown()
    if process is not None:
        if process.stdin is not None:
            process.stdin.close()  # the gateway exits at end of input
        process.wait(timeout=300)


def _loads(java: Path, archive: Path) -> bool:
    probe = subprocess.run(
        [str(java), f"-XX:SharedArchiveFile={archive}", "-version"], capture_output=True, timeout=60, check=False
    )
    return probe.returncode == 0


def build(archive: Path) -> None:
    """Run a small workload in a JVM that archives every class it loaded, then publish the archive."""
    partial = archive.with_suffix(f".{os.getpid()}.partial")
    try:
        os.environ[DUMP_TO] = str(partial)
        from medallion_assets.embedded.spark import local_spark_session

        spark = local_spark_session()
        with tempfile.TemporaryDirectory(prefix="medallion-class-archive-") as scratch:
            _exercise(spark, Path(scratch))
        _stop_and_wait(spark)
        java = jdk_tool("java")
        # Published whole or not at all: a JVM cannot start from a truncated archive.
        if java is not None and partial.is_file() and _loads(java, partial):
            import pyspark

            _origin(archive).write_text(json.dumps({"pyspark": pyspark.__file__, "java": str(java)}), encoding="utf-8")
            os.replace(partial, archive)
            prune(keep=archive)
    finally:
        partial.unlink(missing_ok=True)
        _lock_for(archive).unlink(missing_ok=True)


if __name__ == "__main__":
    build(Path(sys.argv[1]))
