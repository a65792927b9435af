"""The Databricks compute target: each materialization triggers the bundle-deployed job task over Pipes."""

from __future__ import annotations

import os
import time
import uuid
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from dagster import (
    AssetExecutionContext,
    DagsterError,
    DagsterExecutionInterruptedError,
    EnvVar,
    Failure,
    MaterializeResult,
    MetadataValue,
    PipesClientCompletedInvocation,
    open_pipes_session,
)
from pydantic import PrivateAttr

from medallion_assets.bundle import JOB_TAG, task_key
from medallion_assets.framework.execution import TableCatalog
from medallion_assets.framework.landing import LandingListing, VolumeLanding
from medallion_assets.framework.partitions import PartitionWindow
from medallion_assets.framework.table import TableDeclaration
from medallion_assets.resources.compute import ComputeTarget

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient
    from databricks.sdk.service.jobs import Run

TERMINAL_STATES = {"TERMINATED", "SKIPPED", "INTERNAL_ERROR"}
ENTRYPOINT_ERROR_PREFIX = "medallion-run:"


class RemoteRunFailed(Failure):
    """The Databricks run ended without success; its message is the remote error."""


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
    domain: str = "flights"
    pipes_volume: str = "/Volumes/main/dagster/pipes"
    landing_volume: str = "/Volumes/main/landing/files"
    pipes_transport: Literal["volumes", "dbfs"] = "volumes"
    poll_interval_seconds: float = 5.0
    _job_ids: dict[str, int] = PrivateAttr(default_factory=dict)

    @classmethod
    def from_env(cls) -> DatabricksCompute:
        return cls(
            host=EnvVar("DATABRICKS_HOST") if os.environ.get("DATABRICKS_HOST") else None,
            token=EnvVar("DATABRICKS_TOKEN") if os.environ.get("DATABRICKS_TOKEN") else None,
            profile=os.environ.get("DATABRICKS_CONFIG_PROFILE"),
            pipes_volume=os.environ.get("MEDALLION_PIPES_VOLUME", "/Volumes/main/dagster/pipes"),
            landing_volume=os.environ.get("MEDALLION_LANDING_VOLUME", "/Volumes/main/landing/files"),
            pipes_transport=os.environ.get("MEDALLION_PIPES_TRANSPORT", "volumes"),  # type: ignore[arg-type]
            poll_interval_seconds=float(os.environ.get("MEDALLION_DATABRICKS_POLL_SECONDS", "5")),
        )

    @cached_property
    def client(self) -> WorkspaceClient:
        from databricks.sdk import WorkspaceClient

        if self.host or self.token:
            return WorkspaceClient(host=self.host, token=self.token)
        return WorkspaceClient(profile=self.profile)

    def landing(self) -> LandingListing:
        return VolumeLanding(self.client, self.landing_volume.rstrip("/"))

    def deployed_job_id(self) -> int:
        """The job that `databricks bundle deploy` created for this domain, found by its tag."""
        if self.domain not in self._job_ids:
            for job in self.client.jobs.list():
                tags = (job.settings.tags or {}) if job.settings else {}
                if tags.get(JOB_TAG) == self.domain:
                    self._job_ids[self.domain] = int(job.job_id)
                    break
            else:
                raise Failure(
                    description=f"no Databricks job tagged {JOB_TAG}={self.domain}: run "
                    "`databricks bundle deploy` for this workspace first",
                    allow_retries=False,
                )
        return self._job_ids[self.domain]

    def _pipes_channel(self) -> tuple[object, object]:
        from dagster_databricks.pipes import (
            PipesDbfsContextInjector,
            PipesDbfsMessageReader,
            PipesUnityCatalogVolumesContextInjector,
            PipesUnityCatalogVolumesMessageReader,
        )

        if self.pipes_transport == "dbfs":
            return PipesDbfsContextInjector(client=self.client), PipesDbfsMessageReader(client=self.client)
        return (
            PipesUnityCatalogVolumesContextInjector(client=self.client, volume_path=self.pipes_volume),
            PipesUnityCatalogVolumesMessageReader(
                client=self.client, volume_path=self.pipes_volume, interval=min(self.poll_interval_seconds, 10)
            ),
        )

    def materialize(
        self,
        context: AssetExecutionContext,
        table: TableDeclaration,
        catalog: TableCatalog,
        window: PartitionWindow,
    ) -> MaterializeResult:
        from databricks.sdk.errors import PermissionDenied, Unauthenticated

        try:
            job_id = self.deployed_job_id()
        except (Unauthenticated, PermissionDenied) as error:
            # Credentials do not heal by retrying; say which workspace refused, never the token.
            raise Failure(
                description=f"Databricks workspace {self.client.config.host} refused the credentials: {error}",
                allow_retries=False,
            ) from None
        injector, reader = self._pipes_channel()
        last_day = list(window.days())[-1].isoformat()
        # Pipes gives the remote side no time window for range runs, so the window travels explicitly.
        with open_pipes_session(
            context=context,
            context_injector=injector,
            message_reader=reader,
            extras={"partition_start": window.start.isoformat(), "partition_end": last_day},
        ) as session:
            bootstrap = session.get_bootstrap_cli_arguments()
            submission: dict[str, Any] = {
                "job_id": job_id,
                "only": [task_key(table.key)],
                "job_parameters": {
                    "partition_start": window.start.isoformat(),
                    "partition_end": last_day,
                    "dagster_pipes_context": bootstrap["--dagster-pipes-context"],
                    "dagster_pipes_messages": bootstrap["--dagster-pipes-messages"],
                },
                # The same token names the same run: a repeated run-now never starts a second one.
                "idempotency_token": uuid.uuid4().hex,
            }
            try:
                run_id = self.client.jobs.run_now(**submission).bind()["run_id"]
                run = self._wait(run_id)
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
            self._raise_unless_succeeded(run)
        metadata = {"databricks_run_id": str(run_id)}
        if run.run_page_url:
            metadata["databricks_run_url"] = MetadataValue.url(run.run_page_url)
        return PipesClientCompletedInvocation(session, metadata=metadata).get_materialize_result()

    def _wait(self, run_id: int) -> Run:
        while True:
            run = self.client.jobs.get_run(run_id)
            state = run.state.life_cycle_state.value if run.state and run.state.life_cycle_state else ""
            if state in TERMINAL_STATES:
                return run
            time.sleep(self.poll_interval_seconds)

    def _raise_unless_succeeded(self, run: Run) -> None:
        result = run.state.result_state.value if run.state and run.state.result_state else ""
        if result == "SUCCESS":
            return
        errors = []
        for task in run.tasks or []:
            output = self.client.jobs.get_run_output(task.run_id)
            if output.error:
                errors.append(f"{task.task_key}: {output.error}")
        message = "; ".join(errors) or (run.state.state_message if run.state else "") or "no error message"
        # medallion-run prefixes the data and contract errors it raises; anything else (a lost cluster,
        # an internal error) may be transient and is left to the asset's RetryPolicy.
        from_our_data_checks = ENTRYPOINT_ERROR_PREFIX in message
        raise RemoteRunFailed(
            description=f"Databricks run {run.run_id} ({result or 'no result'}) failed: {message}",
            metadata={"databricks_run_url": MetadataValue.url(run.run_page_url or ""), "remote_error": message},
            allow_retries=not from_our_data_checks and result != "CANCELED",
        )
