"""The Databricks compute target: each materialization triggers the bundle-deployed job task over Pipes."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    DagsterError,
    DagsterExecutionInterruptedError,
    EnvVar,
    Failure,
    MaterializeResult,
    MetadataValue,
    PipesClientCompletedInvocation,
    PipesContextInjector,
    PipesMessageReader,
    PipesSession,
    open_pipes_session,
)
from pydantic import PrivateAttr

from medallion_assets.framework.execution import TableCatalog
from medallion_assets.framework.landing import LandingListing, VolumeLanding
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableDeclaration
from medallion_assets.orchestration.compute import ComputeTarget
from medallion_assets.orchestration.reporting import FailureWithChecks
from medallion_assets.orchestration.volume_pipes import (
    LaunchFolder,
    LaunchFolderContextInjector,
    LaunchFolderMessageReader,
)
from medallion_assets.runtime import protocol
from medallion_assets.runtime.bundle import maintenance_task_key, task_key

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.jobs import BaseJob, Run

TERMINAL_STATES = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}
# How long the last Databricks run of an asset lasted, by the workspace's clock: the next launch of the asset
# waits about as long before its first poll.
RUN_SECONDS = "databricks_run_seconds"
# A deployed job without timeout_seconds is still waited for no longer than this.
DEFAULT_RUN_TIMEOUT_S = 4 * 3600.0
FIRST_POLL_S = 0.5


@dataclass(frozen=True)
class DeployedJob:
    job_id: int
    name: str
    timeout_seconds: float
    task_timeouts: dict[str, float]

    def timeout_of(self, task: str) -> float:
        return self.task_timeouts.get(task, self.timeout_seconds)


class RemoteRunFailed(FailureWithChecks):
    """The Databricks run ended without success; its message is the remote error, with the checks it sent."""


class DatabricksRunCancelled(DagsterError, DagsterExecutionInterruptedError):
    """The Dagster run was interrupted and its Databricks run has been cancelled.

    Dagster turns a plain interrupt into a retry when the asset has a RetryPolicy, and the in-process
    executor would then launch a fresh Databricks run for a run the operator just stopped. Being a
    DagsterError lets it pass the retry boundary unchanged; being an interrupt makes Dagster end the run.
    """


class DatabricksCompute(ComputeTarget):
    """Runs each materialization as the `medallion-run` task that `databricks.yml` deploys.

    Credentials come from DATABRICKS_HOST / DATABRICKS_TOKEN (as Dagster EnvVars, so they are never
    stored in run config) or from a Databricks config profile.
    """

    host: str | None = None
    token: str | None = None
    profile: str | None = None
    # The bundle target and the compute variant whose job this Dagster deployment triggers.
    bundle_target: str = "dev"
    compute: protocol.Compute = "serverless"
    pipes_volume: str = "/Volumes/main/dagster/pipes"
    landing_volume: str = "/Volumes/main/landing/files"
    # The longest wait between two polls of a run; polling starts faster and backs off to this.
    poll_interval_seconds: float = 10.0
    # Queueing and compute start come on top of the deployed task's timeout_seconds.
    start_grace_seconds: float = 900.0
    _jobs: dict[str, DeployedJob] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_env(cls) -> DatabricksCompute:
        return cls(
            host=EnvVar("DATABRICKS_HOST") if os.environ.get("DATABRICKS_HOST") else None,
            token=EnvVar("DATABRICKS_TOKEN") if os.environ.get("DATABRICKS_TOKEN") else None,
            profile=os.environ.get("DATABRICKS_CONFIG_PROFILE"),
            pipes_volume=os.environ.get("MEDALLION_PIPES_VOLUME", "/Volumes/main/dagster/pipes"),
            landing_volume=os.environ.get("MEDALLION_LANDING_VOLUME", "/Volumes/main/landing/files"),
            bundle_target=os.environ.get("MEDALLION_DATABRICKS_TARGET", "dev"),
            compute=os.environ.get("MEDALLION_DATABRICKS_COMPUTE", "serverless"),  # type: ignore[arg-type]
            poll_interval_seconds=float(os.environ.get("MEDALLION_DATABRICKS_POLL_SECONDS", "10")),
        )

    @cached_property
    def client(self) -> WorkspaceClient:
        from databricks.sdk import WorkspaceClient

        if self.host or self.token:
            return WorkspaceClient(host=self.host, token=self.token)
        return WorkspaceClient(profile=self.profile)

    def landing(self) -> LandingListing:
        return VolumeLanding(self.client, self.landing_volume.rstrip("/"))

    @property
    def pipes_transport(self) -> str:
        return protocol.PIPES_TRANSPORT_OF[self.compute]

    def deployed_job(self, domain: str) -> DeployedJob:
        """The job `databricks bundle deploy` created for this domain, target and compute, found by its tags.

        Several users' development deployments carry the same tags; among them the caller's own is the one.
        """
        if domain not in self._jobs:
            wanted = {
                protocol.DOMAIN_TAG: domain,
                protocol.COMPUTE_TAG: self.compute,
                protocol.TARGET_TAG: self.bundle_target,
            }
            candidates = [job for job in self.client.jobs.list(expand_tasks=True) if _tags_match(job, wanted)]
            if len(candidates) > 1:
                me = self.client.current_user.me().user_name
                candidates = [job for job in candidates if job.creator_user_name == me] or candidates
            if len(candidates) != 1:
                described = ", ".join(
                    f"{job.job_id} ({job.settings.name if job.settings else '?'}, by {job.creator_user_name})"
                    for job in candidates
                )
                tags = " ".join(f"{key}={value}" for key, value in wanted.items())
                raise Failure(
                    description=(
                        f"found {len(candidates)} Databricks jobs tagged {tags}"
                        + (f": {described}; remove the stale deployments" if candidates else "")
                        + f". Run `databricks bundle deploy -t {self.bundle_target}` for this workspace, and set "
                        "MEDALLION_DATABRICKS_TARGET and MEDALLION_DATABRICKS_COMPUTE to the target and compute "
                        "Dagster should trigger."
                    ),
                    allow_retries=False,
                )
            (job,) = candidates
            settings = job.settings
            job_timeout = float((settings.timeout_seconds if settings else None) or DEFAULT_RUN_TIMEOUT_S)
            self._jobs[domain] = DeployedJob(
                job_id=int(job.job_id or 0),
                name=(settings.name if settings else None) or "",
                timeout_seconds=job_timeout,
                task_timeouts={
                    task.task_key: min(float(task.timeout_seconds), job_timeout)
                    for task in (settings.tasks if settings else None) or []
                    if task.timeout_seconds
                },
            )
        return self._jobs[domain]

    def _pipes_channel(self) -> tuple[PipesContextInjector, PipesMessageReader]:
        if self.pipes_transport == "dbfs":
            from dagster_databricks.pipes import PipesDbfsContextInjector, PipesDbfsMessageReader

            return (
                PipesDbfsContextInjector(client=self.client),
                PipesDbfsMessageReader(
                    client=self.client,
                    interval=protocol.MESSAGE_CHUNK_SECONDS,
                    # The task's output stays in its Databricks log; Pipes carries only the results.
                    include_stdio_in_messages=False,
                ),
            )
        folder = LaunchFolder(self.client, self.pipes_volume)
        return LaunchFolderContextInjector(folder), LaunchFolderMessageReader(folder, protocol.MESSAGE_CHUNK_SECONDS)

    def materialize(
        self,
        context: AssetExecutionContext,
        table: TableDeclaration,
        catalog: TableCatalog,
        window: PartitionWindow,
    ) -> MaterializeResult:
        return self._run_task(context, table, task_key(table.key), window)

    def maintain(self, context: AssetExecutionContext, table: TableDeclaration) -> MaterializeResult:
        return self._run_task(context, table, maintenance_task_key(table.key), None)

    def _run_task(
        self, context: AssetExecutionContext, table: TableDeclaration, task: str, window: PartitionWindow | None
    ) -> MaterializeResult:
        """Run one task of the domain's deployed job over Pipes, and return what it reported."""
        from databricks.sdk.errors import PermissionDenied, Unauthenticated

        from medallion_assets.domains import DOMAIN_OF

        try:
            job = self.deployed_job(DOMAIN_OF[table.key])
        except (Unauthenticated, PermissionDenied) as error:
            # Credentials do not heal by retrying; say which workspace refused, never the token.
            raise Failure(
                description=f"Databricks workspace {self.client.config.host} refused the credentials: {error}",
                allow_retries=False,
            ) from None
        injector, reader = self._pipes_channel()
        # Pipes gives the remote side no time window for range runs, so the window travels explicitly.
        days = (
            {protocol.PARTITION_START: window.start.isoformat(), protocol.PARTITION_END: window.last_day.isoformat()}
            if window is not None
            else {}
        )
        with open_pipes_session(
            context=context, context_injector=injector, message_reader=reader, extras=days
        ) as session:
            bootstrap = session.get_bootstrap_cli_arguments()
            submission: dict[str, Any] = {
                "job_id": job.job_id,
                "only": [task],
                "job_parameters": {
                    **days,
                    protocol.PIPES_CONTEXT: bootstrap["--dagster-pipes-context"],
                    protocol.PIPES_MESSAGES: bootstrap["--dagster-pipes-messages"],
                    protocol.ACCEPTED_CHECKS: context.run.tags.get(protocol.ACCEPT_CHECKS_TAG, ""),
                },
                # The same token names the same run: a repeated run-now never starts a second one.
                "idempotency_token": uuid.uuid4().hex,
            }
            try:
                run_id = self.client.jobs.run_now(**submission).bind()["run_id"]
                run = self._wait(run_id, job, task, expected_seconds=_last_run_seconds(context))
            except DagsterExecutionInterruptedError as interrupt:
                # An interrupt can land while run-now is in flight, after the workspace started the run but before
                # its id came back. Repeating run-now with the token finds that run, so it is cancelled either way.
                run_id = self.client.jobs.run_now(**submission).bind()["run_id"]
                context.log.info(f"run interrupted: cancelling Databricks run {run_id}")
                self.client.jobs.cancel_run(run_id)
                raise DatabricksRunCancelled(
                    f"cancelled Databricks run {run_id} because the Dagster run was interrupted"
                ) from interrupt
            context.log.info(
                f"Databricks run {run.run_page_url} ended: {run.state.result_state if run.state else None}"
            )
        # The session has closed, so every message the task sent, its failure report included, has been read.
        self._raise_unless_succeeded(run, session)
        metadata: dict[str, Any] = {"databricks_run_id": str(run_id)}
        if run.run_duration:
            metadata[RUN_SECONDS] = run.run_duration / 1000
        if run.run_page_url:
            metadata["databricks_run_url"] = MetadataValue.url(run.run_page_url)
        return PipesClientCompletedInvocation(session, metadata=metadata).get_materialize_result()

    def _wait(self, run_id: int, job: DeployedJob, task: str, expected_seconds: float | None) -> Run:
        """Poll the run until it ends, within the task's own timeout plus time to queue and start compute.

        The first poll comes when the last run of the same asset ended, or soon; then the wait between polls
        doubles up to `poll_interval_seconds`, so a short run is seen ending quickly and a long one costs
        few calls.
        """
        timeout = job.timeout_of(task)
        deadline = time.monotonic() + timeout + self.start_grace_seconds
        pause = max(FIRST_POLL_S, 0.9 * expected_seconds) if expected_seconds else FIRST_POLL_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.client.jobs.cancel_run(run_id)
                raise Failure(
                    description=(
                        f"Databricks run {run_id} of {job.name} ({task}) did not end within {timeout:.0f} s "
                        f"(its timeout_seconds) plus {self.start_grace_seconds:.0f} s to start; it has been cancelled"
                    ),
                    allow_retries=False,
                )
            time.sleep(min(pause, remaining))
            run = self.client.jobs.get_run(run_id)
            state = run.state.life_cycle_state.value if run.state and run.state.life_cycle_state else ""
            if state in TERMINAL_STATES:
                return run
            pause = FIRST_POLL_S if pause > self.poll_interval_seconds else min(pause * 2, self.poll_interval_seconds)

    def _raise_unless_succeeded(self, run: Run, session: PipesSession) -> None:
        result = run.state.result_state.value if run.state and run.state.result_state else ""
        if result == "SUCCESS":
            return
        reported = next(
            (
                failure
                for failure in map(protocol.parse_failure_message, session.get_custom_messages() or [])
                if failure
            ),
            None,
        )
        if reported is not None:
            message = f"{reported['error_class']}: {reported['message']}"
            # The task judged its own failure: a data or contract error fails the same way again.
            retryable = bool(reported["retryable"])
        else:
            errors = []
            for task in run.tasks or []:
                output = self.client.jobs.get_run_output(task.run_id)
                if output.error:
                    errors.append(f"{task.task_key}: {output.error}")
            message = "; ".join(errors) or (run.state.state_message if run.state else "") or "no error message"
            # The task never reported: it did not start, or its compute was lost. That may be transient; a
            # cancelled run was stopped on purpose, and one that ran out of time would run out of time again.
            retryable = result not in ("CANCELED", "TIMEDOUT")
        raise RemoteRunFailed(
            description=f"Databricks run {run.run_id} ({result or 'no result'}) failed: {message}",
            # A task that judged its checks and committed nothing sent them first; the asset reports them.
            check_results=[
                result
                for result in session.get_results(implicit_materializations=False)
                if isinstance(result, AssetCheckResult)
            ],
            metadata={"databricks_run_url": MetadataValue.url(run.run_page_url or ""), "remote_error": message},
            allow_retries=retryable,
        )


def _tags_match(job: BaseJob, wanted: dict[str, str]) -> bool:
    tags = (job.settings.tags or {}) if job.settings else {}
    return all(tags.get(key) == value for key, value in wanted.items())


def _last_run_seconds(context: AssetExecutionContext) -> float | None:
    """How long the asset's last Databricks run took, from its latest materialization."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    materialization = event.asset_materialization if event else None
    value = materialization.metadata.get(RUN_SECONDS) if materialization else None
    return float(value.value) if value is not None and isinstance(value.value, int | float) else None
