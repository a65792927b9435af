"""The errors a table build raises on purpose, and which of them a retry cannot fix.

Every compute target and the Databricks entry point classify failures with `is_data_error`, so a data or
contract problem fails once with its message, while a lost executor or a throttled API may be retried.
"""

from __future__ import annotations


class TableBuildError(RuntimeError):
    """A materialization that must stop, with a message that says why and what to do."""


class MissingUpstream(TableBuildError):
    """An input table has never been materialized."""


class FailedRules(TableBuildError):
    """Rows violated a rule with severity 'fail'; nothing was written."""


class MissingLanding(TableBuildError):
    """A landing source delivered no files for days of the window."""


class BlockingChecksFailed(TableBuildError):
    """The table was built, and a blocking check judged what was written and failed."""


def is_data_error(error: BaseException) -> bool:
    """True for errors in the data, its landing or the query itself: the same input fails the same way again."""
    if isinstance(error, TableBuildError | ValueError):
        return True
    try:
        from pyspark.errors import AnalysisException
    except ImportError:  # pragma: no cover - every compute that builds tables has pyspark
        return False
    return isinstance(error, AnalysisException)
