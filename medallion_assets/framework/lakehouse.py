"""Where tables and landed files live: path-based Delta locally, Unity Catalog on Databricks."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from medallion_assets.framework.table import LandingSource, Layer, TableKey

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LAYERS: tuple[Layer, ...] = ("bronze", "silver", "gold")


@dataclass(frozen=True)
class TableLocation:
    """A Delta table addressed either by storage path or by catalog name."""

    identifier: str
    is_path: bool

    def __str__(self) -> str:
        return self.identifier


class Lakehouse(ABC):
    @abstractmethod
    def table(self, key: TableKey) -> TableLocation: ...

    @abstractmethod
    def scratch(self, key: TableKey, build_id: str) -> TableLocation | None:
        """A table that only build `build_id` of `key` writes and reads, dropped when the build ends.

        None where this lakehouse could not drop it again: the build then recomputes instead.
        """

    @abstractmethod
    def discard_scratch(self, spark: SparkSession, location: TableLocation) -> None: ...

    @property
    @abstractmethod
    def landing_root(self) -> str: ...

    def landing_dir(self, source: LandingSource, day: date) -> Path:
        return Path(self.landing_root) / source.folder(day)


@dataclass(frozen=True)
class PathLakehouse(Lakehouse):
    """Path-based Delta tables at `<home>/warehouse/<layer>/<table>`.

    Landing defaults to `<home>/landing` (the embedded default); on Databricks it is a Volume.
    """

    home: str
    landing: str | None = None

    def table(self, key: TableKey) -> TableLocation:
        return TableLocation(str(Path(self.home) / "warehouse" / key.layer / key.name), is_path=True)

    def scratch(self, key: TableKey, build_id: str) -> TableLocation | None:
        if ":" in self.home.split("/")[0]:
            # A storage URI (s3://, abfss://, dbfs:/): the driver has no file access to delete a folder there.
            return None
        return TableLocation(str(Path(self.home) / "scratch" / key.layer / key.name / build_id), is_path=True)

    def discard_scratch(self, spark: SparkSession, location: TableLocation) -> None:
        # A path table has no catalog entry to drop: its folder is the table. The home is a folder the driver
        # sees: a local one, or a Unity Catalog volume, which Databricks mounts at /Volumes for file access.
        shutil.rmtree(location.identifier, ignore_errors=True)

    @property
    def landing_root(self) -> str:
        return self.landing or str(Path(self.home) / "landing")


@dataclass(frozen=True)
class UnityCatalogLakehouse(Lakehouse):
    """Managed Unity Catalog tables `<catalog>.<schema>.<table>`, with one schema per layer."""

    catalog: str
    landing_volume: str
    schemas: dict[str, str] = field(default_factory=lambda: {layer: layer for layer in LAYERS})

    def table(self, key: TableKey) -> TableLocation:
        return TableLocation(f"`{self.catalog}`.`{self.schemas[key.layer]}`.`{key.name}`", is_path=False)

    def scratch(self, key: TableKey, build_id: str) -> TableLocation | None:
        return TableLocation(
            f"`{self.catalog}`.`{self.schemas[key.layer]}`.`__scratch_{key.name}_{build_id}`", is_path=False
        )

    def discard_scratch(self, spark: SparkSession, location: TableLocation) -> None:
        spark.sql(f"DROP TABLE IF EXISTS {location.identifier}")

    @property
    def landing_root(self) -> str:
        return self.landing_volume
