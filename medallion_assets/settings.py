"""Configuration from the environment, read in one place."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_HOME = ".medallion"


def medallion_home() -> Path:
    """The lakehouse root: `$MEDALLION_HOME`, or `./.medallion`."""
    return Path(os.environ.get("MEDALLION_HOME", DEFAULT_HOME)).expanduser().resolve()


def compute_target_name() -> str:
    target = os.environ.get("MEDALLION_TARGET", "local").strip().lower()
    if target not in ("local", "databricks"):
        raise ValueError(f"MEDALLION_TARGET must be 'local' or 'databricks', not {target!r}")
    return target


def switch(name: str, default: bool) -> bool:
    """An on/off setting: on, 1, true or yes turn it on; off, 0, false or no turn it off; else its default."""
    value = os.environ.get(name, "").strip().lower()
    if value in {"on", "1", "true", "yes"}:
        return True
    if value in {"off", "0", "false", "no"}:
        return False
    return default
