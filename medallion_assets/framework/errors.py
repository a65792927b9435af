"""The errors a table build raises on purpose, and which of them a retry cannot fix.

Every compute target and the Databricks entry point classify failures with `is_data_error`, so a data or
contract problem fails once with its message, while a lost executor or a throttled API may be retried.
"""

from __future__ import annotations


class TableBuildError(RuntimeError):
    """A materialization that must stop, with a message that says why and what to do."""


class MissingUpstream(TableBuildError):
    """An input table holds no rows for some days of the window: never materialized, or blocked."""


class FailedRules(TableBuildError):
    """Rows violated a rule with severity 'fail'; nothing was written."""


class MissingLanding(TableBuildError):
    """A landing source delivered no files for days of the window."""


class BlockingChecksFailed(TableBuildError):
    """A blocking check failed on the rows about to be written, so nothing was committed."""


class HistoryOutOfOrder(TableBuildError):
    """An SCD2 window whose history depends on days that are missing, or that would contradict later days."""


def is_data_error(error: BaseException) -> bool:
    """True for errors in the data, its landing or the query itself: the same input fails the same way again."""
    if isinstance(error, TableBuildError | ValueError):
        return True
    try:
        from pyspark.errors import AnalysisException
    except ImportError:  # pragma: no cover - every compute that builds tables has pyspark
        return False
    return isinstance(error, AnalysisException)
