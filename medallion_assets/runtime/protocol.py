"""The contract between the bundle, Dagster's Databricks target and the task entry point.

Each name here is spoken by more than one side: the bundle declares the job parameters and tags, Dagster
sets the parameters and finds jobs by the tags, the entry point reads the parameters and reports its
failures in the structured message below. No side spells one of these strings itself.
"""

from __future__ import annotations

from typing import Any, Final, Literal

PACKAGE: Final = "medallion_assets"
ENTRY_POINT: Final = "medallion-run"

# Job parameters: set by Dagster on run-now, passed to the task as `{{job.parameters.<name>}}`.
PARTITION_START: Final = "partition_start"
PARTITION_END: Final = "partition_end"
PIPES_CONTEXT: Final = "dagster_pipes_context"
PIPES_MESSAGES: Final = "dagster_pipes_messages"
# Comma-separated check names whose failure an operator accepts for this run (see ACCEPT_CHECKS_TAG).
ACCEPTED_CHECKS: Final = "accepted_checks"
JOB_PARAMETERS: Final = (PARTITION_START, PARTITION_END, PIPES_CONTEXT, PIPES_MESSAGES, ACCEPTED_CHECKS)

# The Dagster run tag an operator sets (in the launchpad or on a backfill) to accept failed blocking checks by
# name, e.g. `quarantine_rate`: the window is committed, and the acceptance is recorded in the check and commit.
ACCEPT_CHECKS_TAG: Final = "medallion/accept_checks"


def parse_check_names(value: str | None) -> frozenset[str]:
    return frozenset(name.strip() for name in (value or "").split(",") if name.strip())


# Job tags: how Dagster finds the job a `databricks bundle deploy` created for it. The domain's tag also marks each
# Dagster asset, so the UI filters one domain's tables and a client selects them.
DOMAIN_TAG: Final = "medallion_domain"
COMPUTE_TAG: Final = "medallion_compute"
TARGET_TAG: Final = "medallion_target"

Compute = Literal["serverless", "classic"]
COMPUTES: Final[tuple[Compute, ...]] = ("serverless", "classic")
PIPES_TRANSPORT_OF: Final[dict[Compute, str]] = {"serverless": "volumes", "classic": "dbfs"}

# How often a task uploads a chunk of Pipes messages, and how often Dagster looks for one while the run lasts.
# Every chunk costs an upload and a download; a build shorter than this sends a single chunk when it ends.
MESSAGE_CHUNK_SECONDS: Final = 30.0

# The Pipes custom message a failing task sends before it raises: what failed, and whether a retry can help.
FAILURE_MESSAGE: Final = "medallion_failure"


def failure_message(error: BaseException, *, retryable: bool) -> dict[str, Any]:
    return {FAILURE_MESSAGE: {"error_class": type(error).__name__, "message": str(error), "retryable": retryable}}


def parse_failure_message(payload: Any) -> dict[str, Any] | None:
    """The failure a task reported, or None when `payload` is some other custom message."""
    if isinstance(payload, dict) and isinstance(payload.get(FAILURE_MESSAGE), dict):
        return payload[FAILURE_MESSAGE]
    return None
