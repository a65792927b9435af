"""Progress for people: one line when a table starts, one when it ends, and nothing of Dagster's event stream.

`medallion run` uses this logger instead of Dagster's console logger; `--verbose` brings the event stream back.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from dagster import DagsterEventType, InitLoggerContext, logger
from dagster._core.log_manager import get_log_record_metadata, has_log_record_metadata

from medallion_assets.framework.report import Meta


class ProgressHandler(logging.Handler):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.started: dict[str, float] = {}
        # A range run records one materialization per day; the table's line is printed once.
        self.reported: set[str] = set()

    def _print(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def emit(self, record: logging.LogRecord) -> None:
        if not has_log_record_metadata(record):
            return
        meta = get_log_record_metadata(record)
        event = meta.get("dagster_event")
        step = (meta.get("step_key") or "").replace("__", "/")
        if event is None:
            # Our own messages (context.log.info in a compute target), and Dagster's warnings and errors.
            if record.levelno >= logging.WARNING or (record.levelno >= logging.INFO and meta.get("step_key")):
                self._print(f"  {meta.get('orig_message', record.getMessage())}")
            return
        kind = event.event_type
        if kind == DagsterEventType.STEP_START:
            self.started[step] = time.monotonic()
        elif kind == DagsterEventType.ASSET_MATERIALIZATION and step not in self.reported:
            self.reported.add(step)
            self._print(self._materialized(step, event.event_specific_data.materialization.metadata))
        elif kind == DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            message = error.message.strip().splitlines()[-1] if error and error.message else "unknown error"
            self._print(f"✗ {step} failed after {self._seconds(step)}: {message}")

    def _seconds(self, step: str) -> str:
        started = self.started.get(step)
        return f"{time.monotonic() - started:.1f} s" if started is not None else "?"

    def _materialized(self, step: str, metadata: dict[str, Any]) -> str:
        def value(key: str) -> Any:
            entry = metadata.get(key)
            return getattr(entry, "value", entry)

        counts = [f"{value(Meta.ROWS_OUT):,} rows"] if value(Meta.ROWS_OUT) is not None else []
        if value(Meta.ROWS_QUARANTINED):
            counts.append(f"{value(Meta.ROWS_QUARANTINED):,} quarantined")
        window = value(Meta.PARTITION_WINDOW)
        return f"✓ {step} {window or ''} ({', '.join(counts)}) in {self._seconds(step)}".replace("  ", " ")


@logger(description="One line per table built, for people; Dagster's event stream stays out of the console.")
def progress_logger(init_context: InitLoggerContext) -> logging.Logger:
    log = logging.Logger("medallion.progress", level=logging.DEBUG)
    log.addHandler(ProgressHandler(sys.stdout))
    return log
