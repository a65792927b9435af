"""The JDK's tools that local Spark's setup runs: the same `java` spark-submit starts, and its `javac`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def jdk_tool(name: str) -> Path | None:
    """$JAVA_HOME/bin/<name>, else <name> on PATH (as spark-submit looks for java), with links resolved."""
    java_home = os.environ.get("JAVA_HOME")
    found = str(Path(java_home) / "bin" / name) if java_home else shutil.which(name)
    return Path(found).resolve() if found and Path(found).is_file() else None
