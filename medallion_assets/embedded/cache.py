"""The machine's cache folder for what local Spark builds once: Delta's jar list, the class archive, compiled jars."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "medallion_assets"
