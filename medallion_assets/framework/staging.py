"""Landing files the way a sender does: whole files, atomically, and only when their content changed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_landed_file(path: Path, content: bytes) -> bool:
    """Atomically write `content`; an identical existing file is left alone, so staging is idempotent.

    Leaving it alone keeps its modification time, which the landing sensors' fingerprints include: staging
    the same days again must not look like a new delivery.
    """
    if path.is_file() and path.stat().st_size == len(content) and path.read_bytes() == content:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".staging-")
    with os.fdopen(handle, "wb") as out:
        out.write(content)
    os.replace(temporary, path)
    return True


class StagingTally:
    """How many files a staging run wrote and how many were already up to date."""

    def __init__(self) -> None:
        self.files_written = 0
        self.files_unchanged = 0

    def land(self, path: Path, content: bytes) -> None:
        if write_landed_file(path, content):
            self.files_written += 1
        else:
            self.files_unchanged += 1

    def summary(self) -> dict[str, int]:
        return {"files_written": self.files_written, "files_unchanged": self.files_unchanged}
