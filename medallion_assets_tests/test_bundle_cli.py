"""databricks.yml through the real Databricks CLI: strict validation, deploys to the CLI's own fake workspace
(libs/testserver, served by `fakews`), and the deployed jobs read back through the Jobs API.

The offline checks in test_bundle.py cannot tell whether the CLI resolves paths, variables and targets the
way the file means; only the CLI can. Deploys run from a copy of the repository's files, so the checkout
gets no `.databricks/`, `dist/` or `build/`, and two test processes never share a bundle directory.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from medallion_assets.domains import CATALOG, DOMAINS
from medallion_assets.runtime.bundle import (
    JOB_TIMEOUT_VARIABLE,
    SERVICE_PRINCIPAL_VARIABLE,
    TASK_TIMEOUT_VARIABLE,
    WHEEL_ARTIFACT,
    maintenance_task_key,
    task_key,
)
from medallion_assets.runtime.protocol import COMPUTE_TAG, COMPUTES, DOMAIN_TAG, PACKAGE, TARGET_TAG

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("dev", "prod")
INSTALL_CLI = (
    "install the Databricks CLI (https://docs.databricks.com/dev-tools/cli/install.html), e.g. "
    "`curl -fsSL https://raw.githubusercontent.com/databricks/setup-cli/main/install.sh | sh`"
)
# Bundles arrived in the Go CLI; the legacy Python `databricks-cli` package also installs a `databricks`.
MIN_CLI_VERSION = (0, 218)
# The fake workspace gives tokens with these prefixes the same state, as a user and as a service principal.
USER_TOKEN_PREFIX = "dbapi0"
PRINCIPAL_TOKEN_PREFIX = "dbapi1"
# The CLI retries a refused connection for minutes; a hung command should fail the test, not the CI job.
COMMAND_TIMEOUT_SECONDS = 300
DIAGNOSTIC = re.compile(r"^(Warning|Error|Recommendation):", re.MULTILINE)
# What Databricks Runtime and serverless environments provide, and the orchestration stack that stays on
# the Dagster side: a task's wheel that required any of these would replace the platform's own copies.
NOT_IN_THE_WHEEL = {
    canonicalize_name(name)
    for name in (
        "pyspark",
        "delta-spark",
        "dagster",
        "dagster-webserver",
        "dagster-databricks",
        "dagster-pyspark",
        "pandas",
        "pyarrow",
        "numpy",
        "py4j",
        "databricks-connect",
    )
}


def cli_version(cli: str) -> tuple[int, int] | None:
    try:
        output = subprocess.run([cli, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"Databricks CLI v(\d+)\.(\d+)", output)
    return (int(match.group(1)), int(match.group(2))) if match else None


def find_cli() -> tuple[str | None, str]:
    cli = shutil.which("databricks")
    if cli is None:
        return None, f"the Databricks CLI is not on PATH; {INSTALL_CLI}"
    version = cli_version(cli)
    if version is None or version < MIN_CLI_VERSION:
        return None, f"{cli} is not a Databricks CLI with bundles (v0.218 or later); {INSTALL_CLI}"
    return cli, ""


CLI, NO_CLI = find_cli()
FAKEWS = shutil.which("fakews")
NO_FAKEWS = (
    "fakews (the Databricks CLI's fake workspace, libs/testserver served on 127.0.0.1) is not on PATH; "
    "CI finds it beside the CLI in ../shared/bin, which .ci/run puts on PATH"
)
MISSING = [reason for reason, missing in ((NO_CLI, CLI is None), (NO_FAKEWS, FAKEWS is None)) if missing]
needs_cli_and_fakews = pytest.mark.skipif(bool(MISSING), reason="; and ".join(MISSING))


@dataclass(frozen=True)
class Workspace:
    """The fake workspace, and one identity per way the bundle is deployed."""

    host: str
    user_token: str
    principal_token: str
    principal: str  # the service principal's application id, as the workspace reports it


@dataclass(frozen=True)
class Deployment:
    target: str
    output: str
    jobs: list[dict[str, Any]]  # the deployed jobs' settings, as the Jobs API returns them
    workspace: dict[str, Any]  # the deploying identity and the bundle's paths, as the CLI resolved them

    @property
    def user(self) -> dict[str, Any]:
        return self.workspace["current_user"]


def copy_of_the_repository(destination: Path) -> Path:
    """The files git knows (tracked, and new ones not ignored) as they are in the working tree."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.fail(f"the bundle tests copy the repository's files with git ls-files, which failed: {error}")
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():  # a file deleted in the working tree is still in the index
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def command_env(home: Path, host: str, token: str) -> dict[str, str]:
    # Only this workspace and token: no profile, OAuth client or bundle variable from the caller's shell.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "BUNDLE_VAR_"))}
    env.update(HOME=str(home), DATABRICKS_HOST=host, DATABRICKS_TOKEN=token)
    # The artifact build runs `python3`: the interpreter of this test run has the build tools.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def run(command: list[str] | str, *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Runs `command`; a string goes through the shell, as the CLI runs an artifact's build command."""
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        shell=isinstance(command, str),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
    )


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout + result.stderr


def assert_clean(result: subprocess.CompletedProcess[str], what: str) -> None:
    output = output_of(result)
    assert result.returncode == 0, f"{what} failed ({result.returncode}):\n{output}"
    assert not DIAGNOSTIC.search(output), f"{what} reported diagnostics:\n{output}"


@pytest.fixture(scope="module")
def fakews(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The fake workspace's URL, served for this module and stopped with SIGTERM after it."""
    assert FAKEWS is not None
    log = tmp_path_factory.mktemp("fakews") / "fakews.log"
    with log.open("w") as stderr:
        process = subprocess.Popen([FAKEWS], stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=30)
        url = process.stdout.readline().strip() if ready else ""
        if not url.startswith("http"):
            pytest.fail(f"fakews printed no URL (exit code {process.poll()}):\n{log.read_text()}")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def workspace(fakews: str) -> Workspace:
    from databricks.sdk import WorkspaceClient

    suffix = uuid.uuid4().hex  # a fresh workspace state: nothing deployed by an earlier run of these tests
    principal_token = PRINCIPAL_TOKEN_PREFIX + suffix
    me = WorkspaceClient(host=fakews, token=principal_token, auth_type="pat").current_user.me()
    assert me.user_name
    return Workspace(fakews, USER_TOKEN_PREFIX + suffix, principal_token, me.user_name)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_of_the_repository(tmp_path_factory.mktemp("bundle"))


def token_for(workspace: Workspace, target: str) -> str:
    # Development mode deploys as the developer; production is deployed by the service principal it runs as.
    return workspace.principal_token if target == "prod" else workspace.user_token


def target_args(workspace: Workspace, target: str) -> list[str]:
    args = ["-t", target]
    if target == "prod":
        args += ["--var", f"{SERVICE_PRINCIPAL_VARIABLE}={workspace.principal}"]
    return args


def bundle_command(
    verb: list[str], workspace: Workspace, target: str, bundle_dir: Path, home: Path
) -> subprocess.CompletedProcess[str]:
    assert CLI is not None
    env = command_env(home, workspace.host, token_for(workspace, target))
    return run([CLI, "bundle", *verb, *target_args(workspace, target)], cwd=bundle_dir, env=env)


@pytest.fixture(scope="module")
def deployments(workspace: Workspace, bundle_dir: Path, home: Path) -> dict[str, Deployment]:
    from databricks.sdk import WorkspaceClient

    client = WorkspaceClient(host=workspace.host, token=workspace.user_token, auth_type="pat")
    deployed = {}
    for target in TARGETS:
        result = bundle_command(["deploy"], workspace, target, bundle_dir, home)
        assert result.returncode == 0, f"bundle deploy -t {target} failed:\n{output_of(result)}"
        resolved = bundle_command(["validate", "-o", "json"], workspace, target, bundle_dir, home)
        assert resolved.returncode == 0, output_of(resolved)
        resolved_workspace = json.loads(resolved.stdout)["workspace"]
        jobs = []
        for listed in client.jobs.list():
            # The list carries no full task list; get does.
            settings = client.jobs.get(listed.job_id).settings.as_dict()
            if settings.get("tags", {}).get(TARGET_TAG) == target:
                jobs.append(settings)
        deployed[target] = Deployment(target, output_of(result), jobs, resolved_workspace)
    return deployed


def declared_bundle() -> dict[str, Any]:
    return yaml.safe_load((REPO / "databricks.yml").read_text())


@needs_cli_and_fakews
@pytest.mark.parametrize("target", TARGETS)
def test_strict_validation_is_clean(target: str, workspace: Workspace, bundle_dir: Path, home: Path) -> None:
    result = bundle_command(["validate", "--strict"], workspace, target, bundle_dir, home)
    assert_clean(result, f"bundle validate --strict -t {target}")
    assert "Validation OK!" in output_of(result)


@needs_cli_and_fakews
def test_prod_without_a_service_principal_does_not_validate(workspace: Workspace, bundle_dir: Path, home: Path) -> None:
    assert CLI is not None
    env = command_env(home, workspace.host, workspace.principal_token)
    result = run([CLI, "bundle", "validate", "--strict", "-t", "prod"], cwd=bundle_dir, env=env)
    assert result.returncode != 0
    assert re.search(rf"Error: .*required variable {SERVICE_PRINCIPAL_VARIABLE}\b", output_of(result)), output_of(
        result
    )


@needs_cli_and_fakews
def test_every_target_deploys_one_job_per_domain_and_compute(deployments: dict[str, Deployment]) -> None:
    for target, deployment in deployments.items():
        assert "Error:" not in deployment.output and "Warning:" not in deployment.output, deployment.output
        kinds = sorted((job["tags"][DOMAIN_TAG], job["tags"][COMPUTE_TAG]) for job in deployment.jobs)
        assert kinds == sorted((domain, compute) for domain in DOMAINS for compute in COMPUTES), target


@needs_cli_and_fakews
def test_every_deployed_job_has_exactly_one_task_per_asset(deployments: dict[str, Deployment]) -> None:
    # A task per table build and a task per table maintenance.
    declared = {
        domain: sorted(key for table in module.TABLES for key in (task_key(table.key), maintenance_task_key(table.key)))
        for domain, module in DOMAINS.items()
    }
    assert sorted(key for keys in declared.values() for key in keys) == sorted(
        key for table in CATALOG for key in (task_key(table), maintenance_task_key(table))
    )
    for target, deployment in deployments.items():
        for job in deployment.jobs:
            tasks = sorted(task["task_key"] for task in job["tasks"])
            assert tasks == declared[job["tags"][DOMAIN_TAG]], (target, job["name"])


@needs_cli_and_fakews
def test_deployed_tasks_install_the_uploaded_wheel(deployments: dict[str, Deployment], workspace: Workspace) -> None:
    from databricks.sdk import WorkspaceClient

    client = WorkspaceClient(host=workspace.host, token=workspace.user_token, auth_type="pat")
    for target, deployment in deployments.items():
        wheels = set()
        for job in deployment.jobs:
            if job["tags"][COMPUTE_TAG] == "serverless":
                (environment,) = job["environments"]
                dependencies = environment["spec"]["dependencies"]
                assert all("libraries" not in task for task in job["tasks"])
            else:
                dependencies = [library["whl"] for task in job["tasks"] for library in task["libraries"]]
            wheels.update(dependencies)
        # One wheel, uploaded under this target's bundle artifacts: a workspace path, no longer a local glob.
        (wheel,) = wheels
        assert wheel.startswith("/Workspace/") and wheel.endswith(".whl") and "*" not in wheel, wheel
        assert wheel.startswith(deployment.workspace["artifact_path"] + "/"), wheel
        assert f"/.bundle/{PACKAGE}/{target}/" in wheel, wheel
        assert Path(wheel).name.startswith(f"{PACKAGE}-")
        assert client.workspace.get_status(wheel).path == wheel  # the CLI really uploaded it


@needs_cli_and_fakews
def test_dev_is_per_user_and_never_writes_prod_schemas(deployments: dict[str, Deployment]) -> None:
    def schemas(deployment: Deployment) -> set[str]:
        found = set()
        for job in deployment.jobs:
            for task in job["tasks"]:
                parameters = task["python_wheel_task"]["parameters"]
                for flag in ("--bronze-schema", "--silver-schema", "--gold-schema"):
                    found.add(parameters[parameters.index(flag) + 1])
        return found

    dev, prod = deployments["dev"], deployments["prod"]
    short_name = dev.user["short_name"]
    assert short_name
    for job in dev.jobs:
        assert job["name"].startswith(f"[dev {short_name}] "), job["name"]
        assert job["tags"]["dev"] == short_name  # development mode's own tag
    assert all(not job["name"].startswith("[dev") for job in prod.jobs)
    assert schemas(dev) == {f"{short_name}_bronze", f"{short_name}_silver", f"{short_name}_gold"}
    assert schemas(prod) == {"bronze", "silver", "gold"}
    assert prod.user["userName"] != dev.user["userName"]


@needs_cli_and_fakews
def test_prod_runs_as_the_service_principal_that_deployed_it(
    deployments: dict[str, Deployment], workspace: Workspace
) -> None:
    prod = deployments["prod"]
    assert prod.user["userName"] == workspace.principal
    assert workspace.principal in prod.workspace["root_path"]  # one copy of prod, under its principal
    for job in prod.jobs:
        assert job["run_as"] == {"service_principal_name": workspace.principal}, job["name"]


@needs_cli_and_fakews
def test_each_target_has_one_schedule_on_its_serverless_job(deployments: dict[str, Deployment]) -> None:
    for target, deployment in deployments.items():
        for domain in DOMAINS:
            scheduled = [j for j in deployment.jobs if j["tags"][DOMAIN_TAG] == domain and j.get("schedule")]
            assert [j["tags"][COMPUTE_TAG] for j in scheduled] == ["serverless"], (target, domain)
            assert scheduled[0]["schedule"]["pause_status"] == "PAUSED"


@needs_cli_and_fakews
def test_every_deployed_job_and_task_has_its_timeout(deployments: dict[str, Deployment]) -> None:
    variables = declared_bundle()["variables"]
    job_timeout = variables[JOB_TIMEOUT_VARIABLE]["default"]
    task_timeout = variables[TASK_TIMEOUT_VARIABLE]["default"]
    for target, deployment in deployments.items():
        for job in deployment.jobs:
            assert job["timeout_seconds"] == job_timeout, (target, job["name"])
            assert {task["timeout_seconds"] for task in job["tasks"]} == {task_timeout}, (target, job["name"])
            assert job["tags"][TARGET_TAG] == target


def test_the_wheel_requires_no_platform_or_orchestration_package(tmp_path: Path) -> None:
    """Builds the wheel with the bundle's own artifact command and reads its base requirements."""
    bundle_dir = copy_of_the_repository(tmp_path / "bundle")
    artifact = declared_bundle()["artifacts"][WHEEL_ARTIFACT]
    env = command_env(tmp_path / "home", "http://127.0.0.1:9", "unused")  # the build talks to no workspace
    result = run(artifact["build"], cwd=bundle_dir / artifact["path"], env=env)
    assert result.returncode == 0, f"{shlex.quote(artifact['build'])} failed:\n{output_of(result)}"
    (wheel,) = (bundle_dir / artifact["path"] / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        lines = archive.read(metadata).decode().splitlines()
    requirements = [Requirement(line.split(":", 1)[1]) for line in lines if line.startswith("Requires-Dist:")]
    base = {canonicalize_name(r.name) for r in requirements if r.marker is None or "extra" not in str(r.marker)}
    assert base, "the wheel declares no base requirements at all; expected its task runtime (pandera, ...)"
    assert not base & NOT_IN_THE_WHEEL, (
        f"the wheel a Databricks task installs requires {sorted(base & NOT_IN_THE_WHEEL)}, which the platform "
        "provides or which belong to the Dagster side; move them to an extra in pyproject.toml"
    )
