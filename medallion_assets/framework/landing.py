"""What has landed: the day folders of a source and a fingerprint of their files, locally or on a Volume."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from medallion_assets.framework.landed_files import is_landed_file

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient


@dataclass(frozen=True)
class LandedEntry:
    name: str
    size: int
    modified_s: int


def fingerprint(entries: Iterable[LandedEntry]) -> str:
    """Changes whenever a landed file is added, removed, rewritten or touched.

    Whole seconds, because a Volume reports milliseconds through the Files API and its FUSE mount may
    round; a fingerprint that differs only by rounding would re-run an idempotent partition, no worse.
    """
    lines = sorted(f"{e.name}:{e.size}:{e.modified_s}" for e in entries if is_landed_file(e.name))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:20]


def local_entries(folder: Path) -> list[LandedEntry]:
    if not folder.is_dir():
        return []
    return [
        LandedEntry(path.name, stat.st_size, int(stat.st_mtime))
        for path in sorted(folder.iterdir())
        if is_landed_file(path.name) and path.is_file() and (stat := path.stat())
    ]


def folder_fingerprint(folder: Path) -> str:
    return fingerprint(local_entries(folder))


class LandingListing(Protocol):
    """Read-only view of `<landing root>/<source>/<day folder>/`, wherever the root lives."""

    root: str

    def day_folders(self, source: str) -> list[str] | None:
        """Folder names under the source, or None when nothing has landed for it yet."""

    def entries(self, folder: str) -> list[LandedEntry]:
        """The files directly in `folder`, relative to the root (`LandingSource.folder`)."""


@dataclass(frozen=True)
class LocalLanding:
    root: str

    def day_folders(self, source: str) -> list[str] | None:
        base = Path(self.root) / source
        if not base.is_dir():
            return None
        return sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))

    def entries(self, folder: str) -> list[LandedEntry]:
        return local_entries(Path(self.root) / folder)


@dataclass(frozen=True)
class VolumeLanding:
    """A Unity Catalog Volume read through the Files API, so the sensor needs no cluster."""

    client: WorkspaceClient
    root: str

    def day_folders(self, source: str) -> list[str] | None:
        from databricks.sdk.errors import NotFound

        try:
            listed = list(self.client.files.list_directory_contents(f"{self.root}/{source}"))
        except NotFound:
            return None
        return sorted(e.name for e in listed if e.is_directory and e.name and not e.name.startswith("."))

    def entries(self, folder: str) -> list[LandedEntry]:
        listed = self.client.files.list_directory_contents(f"{self.root}/{folder}")
        return [
            LandedEntry(e.name, e.file_size or 0, (e.last_modified or 0) // 1000)
            for e in listed
            if e.name and not e.is_directory and is_landed_file(e.name)
        ]
