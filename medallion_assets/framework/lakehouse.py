"""Where tables and landed files live: path-based Delta locally, Unity Catalog on Databricks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from medallion_assets.framework.table import Layer, TableKey

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

    @property
    @abstractmethod
    def landing_root(self) -> str: ...

    def landing_dir(self, source: str, day: date) -> Path:
        return Path(self.landing_root) / source / day.isoformat()


@dataclass(frozen=True)
class PathLakehouse(Lakehouse):
    """Path-based Delta tables at `<home>/warehouse/<layer>/<table>`.

    Landing defaults to `<home>/landing` (the embedded default); on Databricks it is a Volume.
    """

    home: str
    landing: str | None = None

    def table(self, key: TableKey) -> TableLocation:
        return TableLocation(str(Path(self.home) / "warehouse" / key.layer / key.name), is_path=True)

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

    @property
    def landing_root(self) -> str:
        return self.landing_volume
