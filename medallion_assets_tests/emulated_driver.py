"""The driver of the Databricks emulator's cluster: one Python process whose SparkSession stays up between tasks.

On a running Databricks cluster a job task does not start Spark; it runs on the driver's session, and
log4j writes to the driver log rather than to the task's output. This process does the same: it starts
the session once, with its own and the JVM's output in the driver log, and then executes one
`python_wheel_task` entry point at a time, with the task's stdout and stderr in the task's log.

It launches an entry point the way a `python_wheel_task` does: it calls it and ignores what it returns
(the Databricks CLI's wheel trampoline runs `entry.load()()`). Only an exception or a non-zero SystemExit
fails the task, and then the task's error is the exception's last traceback line, its trace the traceback.

Protocol: one JSON request per line on stdin, `{"entry_point": "module:attr", "name": ..., "parameters":
[...], "log": path}`; one JSON reply per line on the file descriptor given as the first argument,
`{"exit_code": n, "error": ..., "error_trace": ..., "orchestration_modules": [...]}`. The first reply,
`{"ready": true}`, says the session is up.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def output_to(path: str) -> Iterator[None]:
    """Point this process's stdout and stderr, file descriptors included, at `path` for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in (target, *saved):
            os.close(descriptor)


def exit_code(value: Any) -> int:
    """What `sys.exit(value)` would make the process's exit status."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    print(value, file=sys.stderr)
    return 1


def failed(code: int, error: BaseException) -> dict[str, Any]:
    trace = "".join(traceback.format_exception(error))
    print(trace, file=sys.stderr, end="")
    return {"exit_code": code, "error": traceback.format_exception_only(error)[-1].strip(), "error_trace": trace}


def forget_the_previous_task() -> None:
    """Databricks gives every task a Python process of its own; here the Python state of the last task goes.

    dagster_pipes keeps one context per process and hands a later `open_dagster_pipes` the earlier, closed one.
    """
    from dagster_pipes import PipesContext

    PipesContext._instance = None


ORCHESTRATION_PACKAGES = ("dagster", "dagster_databricks", "dagster_pyspark", "dagster_webserver")


def orchestration_modules() -> list[str]:
    """The Dagster modules this driver has loaded so far; a task needs dagster_pipes only."""
    return sorted(name for name in sys.modules if name.split(".")[0] in ORCHESTRATION_PACKAGES)


def run_task(request: dict[str, Any]) -> dict[str, Any]:
    module, _, attribute = request["entry_point"].partition(":")
    forget_the_previous_task()
    with output_to(request["log"]):
        sys.argv = [request["name"], *request["parameters"]]
        try:
            getattr(importlib.import_module(module), attribute)()  # its return value is ignored, as on Databricks
        except SystemExit as stop:
            code = exit_code(stop.code)
            return failed(code, stop) if code else {"exit_code": 0}
        except BaseException as error:  # the task's crash is its result, not the driver's
            return failed(1, error)
        return {"exit_code": 0}


# Functions (`module:function`, comma-separated) a test has the driver call before any task, e.g. to declare
# a test-only domain, as a wheel built with that domain would have it.
PRELOAD = "EMULATED_DRIVER_PRELOAD"
CODE_FROM = "medallion_assets imported from"


def serve(replies: int) -> None:
    import medallion_assets
    from medallion_assets.embedded.spark import runtime_spark_session

    # Where the task code comes from: the uploaded wheel's install folder, or the package installed here.
    print(f"{CODE_FROM} {Path(medallion_assets.__file__).parent}", flush=True)
    for function in filter(None, os.environ.get(PRELOAD, "").split(",")):
        module, _, name = function.partition(":")
        getattr(importlib.import_module(module), name)()
    runtime_spark_session().range(1).count()
    with os.fdopen(replies, "w", buffering=1) as channel:
        channel.write(json.dumps({"ready": True}) + "\n")
        for line in sys.stdin:
            outcome = run_task(json.loads(line))
            channel.write(json.dumps({**outcome, "orchestration_modules": orchestration_modules()}) + "\n")


if __name__ == "__main__":
    serve(int(sys.argv[1]))
