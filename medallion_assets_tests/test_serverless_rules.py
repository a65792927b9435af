"""Code that runs in a Databricks task keeps to what serverless compute (Spark Connect) supports.

A local Connect server accepts `cache()`, so running the code over Connect (test_spark_connect.py) cannot catch
it; this scan of the source can. It covers every module a task imports to build a table: the framework, the
domains and the runtime. The embedded bootstrap in embedded/ is exempt: it never runs in a task.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import medallion_assets

PACKAGE_ROOT = Path(medallion_assets.__file__).parent
REPOSITORY_ROOT = PACKAGE_ROOT.parent
TASK_PACKAGES = ("framework", "domains", "runtime")

# Methods serverless rejects: Databricks recommends materializing an intermediate to Delta instead.
REJECTED_METHODS = {
    "cache": "DataFrame.cache() is not supported on serverless compute",
    "persist": "DataFrame.persist() is not supported on serverless compute",
    "unpersist": "DataFrame.unpersist() belongs to cache()/persist(), which serverless does not support",
}
# Names that exist only on a classic session: Connect has no RDDs, no SparkContext and no JVM gateway.
CLASSIC_ONLY_NAMES = {
    "rdd": "RDDs do not exist over Spark Connect",
    "sparkContext": "there is no SparkContext over Spark Connect",
    "_jvm": "there is no JVM gateway over Spark Connect",
    "DeltaTable": "delta-spark's DeltaTable reaches the JVM unless Delta Connect is set up; use SQL or the reader",
}
DELTA_LOG = "_delta_log"


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}"


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of docstring nodes: prose may name `_delta_log` without reading it."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def scan_source(source: str, path: str) -> list[Violation]:
    """Every use in `source` of an API that serverless compute lacks, with its line."""
    tree = ast.parse(source, filename=path)
    docstrings = _docstrings(tree)
    violations: list[Violation] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in REJECTED_METHODS:
            violations.append(Violation(path, node.lineno, f".{node.func.attr}(): {REJECTED_METHODS[node.func.attr]}"))
        elif isinstance(node, ast.Attribute) and node.attr in CLASSIC_ONLY_NAMES:
            violations.append(Violation(path, node.lineno, f".{node.attr}: {CLASSIC_ONLY_NAMES[node.attr]}"))
        elif isinstance(node, ast.Name) and node.id in CLASSIC_ONLY_NAMES:
            violations.append(Violation(path, node.lineno, f"{node.id}: {CLASSIC_ONLY_NAMES[node.id]}"))
        elif isinstance(node, ast.ImportFrom | ast.Import):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            for alias in node.names:
                imported = alias.name.split(".")[-1]
                if imported in CLASSIC_ONLY_NAMES or "delta.tables" in (module, alias.name):
                    reason = CLASSIC_ONLY_NAMES.get(imported, CLASSIC_ONLY_NAMES["DeltaTable"])
                    violations.append(Violation(path, node.lineno, f"import of {alias.name}: {reason}"))
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and DELTA_LOG in node.value
            and id(node) not in docstrings
        ):
            violations.append(
                Violation(path, node.lineno, f"'{DELTA_LOG}' in a string: read history with DESCRIBE HISTORY")
            )
    return sorted(set(violations), key=lambda v: (v.path, v.line, v.reason))


def task_modules() -> list[Path]:
    return sorted(path for package in TASK_PACKAGES for path in (PACKAGE_ROOT / package).rglob("*.py"))


def test_task_code_uses_only_what_serverless_supports() -> None:
    modules = task_modules()
    scanned = {path.relative_to(PACKAGE_ROOT).as_posix() for path in modules}
    # A scan that silently found no files would pass; these modules are where the rules matter most.
    assert {"framework/execution.py", "framework/delta_io.py", "runtime/entrypoint.py"} <= scanned
    violations = [
        violation
        for path in modules
        for violation in scan_source(path.read_text(encoding="utf-8"), path.relative_to(REPOSITORY_ROOT).as_posix())
    ]
    assert not violations, "serverless compute (Spark Connect) does not support:\n" + "\n".join(map(str, violations))


# What the framework did before it kept to Spark Connect, line for line in its shape.
BEFORE_CONNECT = '''
"""Mentions _delta_log in a docstring, which is prose."""
import json
from pathlib import Path
from delta.tables import DeltaTable

def table_exists(spark, location):
    return DeltaTable.isDeltaTable(spark, location.identifier)

def run(classified, spark, df, location):
    classified = classified.cache()
    try:
        tally(classified)
    finally:
        classified.unpersist()
    df.persist()
    df.rdd.getNumPartitions()
    spark.sparkContext.setJobGroup("a", "b")
    spark._jvm.java.lang.System.gc()
    log = Path(location.identifier) / "_delta_log"
    return json.loads((log / f"{0:020d}.json").read_text())
'''


def test_the_scan_names_each_violation_by_file_and_line() -> None:
    found = [str(v) for v in scan_source(BEFORE_CONNECT, "framework/before.py")]
    expected_lines = {5, 8, 11, 15, 16, 17, 18, 19, 20}
    assert {int(v.split(":")[1]) for v in found} == expected_lines, found
    assert "framework/before.py:11: .cache(): DataFrame.cache() is not supported on serverless compute" in found
    assert any(v.startswith("framework/before.py:5: import of DeltaTable") for v in found)
    assert any(v.startswith("framework/before.py:20: '_delta_log' in a string") for v in found)
    assert not any(v.startswith("framework/before.py:2:") for v in found), "a docstring is not a violation"
