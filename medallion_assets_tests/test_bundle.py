"""databricks.yml: generated from the declarations, valid offline, and one task per asset."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest
import regex
import yaml
from databricks.bundles.jobs import Job

from medallion_assets.definitions import defs
from medallion_assets.domains import DOMAINS
from medallion_assets.framework.maintenance import MAINTENANCE_PREFIX
from medallion_assets.runtime.bundle import (
    JOB_TIMEOUT_VARIABLE,
    SERVERLESS_ENVIRONMENT_VERSION,
    SERVICE_PRINCIPAL_VARIABLE,
    TASK_TIMEOUT_VARIABLE,
    chain_length,
    maintenance_task_key,
    render,
    task_key,
)
from medallion_assets.runtime.protocol import (
    COMPUTE_TAG,
    COMPUTES,
    DOMAIN_TAG,
    ENTRY_POINT,
    JOB_PARAMETERS,
    PACKAGE,
    PIPES_TRANSPORT_OF,
    TARGET_TAG,
)

REPO = Path(__file__).resolve().parents[1]
# A copy travels with the repository, so a bare clone validates against the same official schema.
SCHEMA_CANDIDATES = [
    REPO / ".ci/databricks-bundle-schema.json",
    REPO.parent / "shared/databricks-bundle-schema.json",
    REPO / "../shared/databricks-bundle-schema.json",
]
MODES = {"development", "production"}
LAYER_SCHEMAS = ("bronze_schema", "silver_schema", "gold_schema")
WHEEL = "./dist/*.whl"


@pytest.fixture(scope="module")
def bundle() -> dict:
    return yaml.safe_load((REPO / "databricks.yml").read_text())


def official_schema() -> dict:
    for candidate in SCHEMA_CANDIDATES:
        if candidate.is_file():
            return json.loads(candidate.read_text())
    pytest.fail(f"the official bundle schema is missing; looked in {SCHEMA_CANDIDATES}")


def bundle_validator(schema: dict) -> jsonschema.Validator:
    """Draft 7 with a `pattern` keyword that understands \\p{L}, as the official schema needs."""

    def pattern(
        _validator: jsonschema.Validator, expected: str, instance: object, _schema: dict
    ) -> Iterator[jsonschema.ValidationError]:
        if isinstance(instance, str) and not regex.search(expected, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {expected!r}")

    checker = jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": pattern})
    return checker(schema, format_checker=None)


def test_databricks_yml_is_what_the_declarations_generate() -> None:
    assert (REPO / "databricks.yml").read_text() == render(), "run `medallion bundle` and commit databricks.yml"


def test_databricks_yml_passes_the_official_schema(bundle: dict) -> None:
    errors = sorted(bundle_validator(official_schema()).iter_errors(bundle), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:20])


def test_the_schema_validator_really_rejects_unknown_keys(bundle: dict) -> None:
    broken = {**bundle, "resources": {"jobs": {"x": {"name": "x", "not_a_field": 1}}}}
    assert list(bundle_validator(official_schema()).iter_errors(broken))


def test_every_job_parses_as_a_typed_databricks_bundles_job(bundle: dict) -> None:
    for name, job in bundle["resources"]["jobs"].items():
        parsed = Job.from_dict(job)
        assert parsed.name == name
        assert len(parsed.tasks) == len(job["tasks"])


def test_what_the_schema_does_not_catch(bundle: dict) -> None:
    for name, target in bundle["targets"].items():
        assert target.get("mode", "development") in MODES, name
        run_as = target.get("run_as", {})
        assert len([k for k in ("user_name", "service_principal_name") if k in run_as]) <= 1, name
    assert bundle["targets"]["dev"]["mode"] == "development"
    assert bundle["targets"]["dev"]["default"] is True
    assert "run_as" not in bundle["targets"]["dev"]  # development mode runs as the deploying user
    assert bundle["targets"]["prod"]["mode"] == "production"
    assert "service_principal_name" in bundle["targets"]["prod"]["run_as"]
    for job in bundle["resources"]["jobs"].values():
        keys = {task["task_key"] for task in job["tasks"]}
        for task in job["tasks"]:
            for dependency in task.get("depends_on", []):
                assert dependency["task_key"] in keys, (task["task_key"], dependency)
        assert [p["name"] for p in job["parameters"]] == list(JOB_PARAMETERS)


def test_each_domain_has_one_schedule_on_its_serverless_job(bundle: dict) -> None:
    jobs = bundle["resources"]["jobs"].values()
    for domain in DOMAINS:
        scheduled = [job for job in jobs if job["tags"][DOMAIN_TAG] == domain and "schedule" in job]
        assert len(scheduled) == 1, [job["name"] for job in scheduled]
        assert scheduled[0]["tags"][COMPUTE_TAG] == "serverless"
        # Paused in every target: development mode pauses it anyway, production switches it on deliberately.
        assert scheduled[0]["schedule"]["pause_status"] == "PAUSED"
    for target in bundle["targets"].values():
        assert "schedule" not in yaml.safe_dump(target.get("resources", {}))


def test_every_job_is_tagged_with_its_domain_compute_and_target(bundle: dict) -> None:
    seen = set()
    for name, job in bundle["resources"]["jobs"].items():
        tags = job["tags"]
        assert tags[TARGET_TAG] == "${bundle.target}", name
        assert tags[COMPUTE_TAG] in COMPUTES, name
        seen.add((tags[DOMAIN_TAG], tags[COMPUTE_TAG]))
    assert seen == {(domain, compute) for domain in DOMAINS for compute in COMPUTES}


def test_every_job_and_task_has_a_deadline(bundle: dict) -> None:
    variables = bundle["variables"]
    task_timeout = variables[TASK_TIMEOUT_VARIABLE]["default"]
    job_timeout = variables[JOB_TIMEOUT_VARIABLE]["default"]
    assert isinstance(task_timeout, int) and task_timeout >= 3600
    # A whole-graph run executes its longest chain of tasks one after another, each within its own deadline.
    longest = max(chain_length(list(domain.TABLES)) for domain in DOMAINS.values())
    assert isinstance(job_timeout, int) and job_timeout >= longest * task_timeout
    for name, job in bundle["resources"]["jobs"].items():
        assert job["timeout_seconds"] == ref(JOB_TIMEOUT_VARIABLE), name
        for task in job["tasks"]:
            assert task["timeout_seconds"] == ref(TASK_TIMEOUT_VARIABLE), (name, task["task_key"])


def test_dev_writes_to_per_user_schemas(bundle: dict) -> None:
    dev_variables = bundle["targets"]["dev"]["variables"]
    for schema in LAYER_SCHEMAS:
        assert "${workspace.current_user.short_name}" in dev_variables[schema], schema
        assert dev_variables[schema] != bundle["variables"][schema]["default"], schema
    assert len({dev_variables[schema] for schema in LAYER_SCHEMAS}) == len(LAYER_SCHEMAS)
    # Prod uses the declared schemas; nothing else in dev may override them back.
    assert not set(LAYER_SCHEMAS) & set(bundle["targets"]["prod"].get("variables", {}))
    for job in bundle["resources"]["jobs"].values():
        for task in job["tasks"]:
            parameters = task["python_wheel_task"]["parameters"]
            for schema in LAYER_SCHEMAS:
                flag = "--" + schema.replace("_", "-")
                assert parameters[parameters.index(flag) + 1] == ref(schema)


def test_the_service_principal_has_no_placeholder(bundle: dict) -> None:
    declared = bundle["variables"][SERVICE_PRINCIPAL_VARIABLE]
    assert "default" not in declared and "lookup" not in declared  # prod refuses to validate without one
    assert SERVICE_PRINCIPAL_VARIABLE not in bundle["targets"]["prod"].get("variables", {})
    # The CLI wants every declared variable assigned per target; dev runs as its user and assigns nothing real.
    assert bundle["targets"]["dev"]["variables"][SERVICE_PRINCIPAL_VARIABLE] == ""
    principal = ref(SERVICE_PRINCIPAL_VARIABLE)
    prod = bundle["targets"]["prod"]
    assert prod["run_as"] == {"service_principal_name": principal}
    assert {"level": "CAN_MANAGE", "service_principal_name": principal} in prod["permissions"]
    assert principal in prod["workspace"]["root_path"]
    dev_and_shared = {key: value for key, value in bundle.items() if key != "targets"}
    assert principal not in yaml.safe_dump(dev_and_shared) + yaml.safe_dump(bundle["targets"]["dev"])


def test_every_asset_has_exactly_one_task_and_every_task_an_asset(bundle: dict) -> None:
    graph = defs.resolve_asset_graph()
    for job in bundle["resources"]["jobs"].values():
        domain_keys = [
            key
            for key in graph.get_all_asset_keys()
            if defs.resolve_assets_def(key).specs_by_key[key].tags[DOMAIN_TAG] == job["tags"][DOMAIN_TAG]
        ]
        tasks = [task["task_key"] for task in job["tasks"]]
        assert len(tasks) == len(set(tasks))
        assert set(tasks) == {task_key_for(key.path) for key in domain_keys}
        by_key = {task["task_key"]: task for task in job["tasks"]}
        for key in domain_keys:
            upstream = {task_key_for(parent.path) for parent in graph.get(key).parent_keys}
            declared = {d["task_key"] for d in by_key[task_key_for(key.path)].get("depends_on", [])}
            assert declared == upstream, key


def test_every_task_installs_the_built_wheel_and_runs_the_entry_point(bundle: dict) -> None:
    # The jobs are declared in the root-level databricks.yml, and bundle paths resolve from the declaring file.
    assert bundle["artifacts"]["medallion_wheel"]["type"] == "whl"
    assert bundle["artifacts"]["medallion_wheel"]["path"] == "."
    for job in bundle["resources"]["jobs"].values():
        compute = job["tags"][COMPUTE_TAG]
        environments = {e["environment_key"]: e for e in job.get("environments", [])}
        for task in job["tasks"]:
            wheel_task = task["python_wheel_task"]
            assert (wheel_task["package_name"], wheel_task["entry_point"]) == (PACKAGE, ENTRY_POINT)
            transport = wheel_task["parameters"][wheel_task["parameters"].index("--pipes-transport") + 1]
            assert transport == PIPES_TRANSPORT_OF[compute]
            if compute == "serverless":
                assert environments[task["environment_key"]]["spec"]["dependencies"] == [WHEEL]
                assert "libraries" not in task
            else:
                assert task["libraries"] == [{"whl": WHEEL}]
                assert task["job_cluster_key"] in {c["job_cluster_key"] for c in job["job_clusters"]}
        for environment in environments.values():
            assert environment["spec"]["environment_version"] == SERVERLESS_ENVIRONMENT_VERSION


def ref(variable: str) -> str:
    return "${var." + variable + "}"


def task_key_for(path: list[str]) -> str:
    """The bundle task of an asset: a table's build, or its maintenance (`maintenance/<layer>/<table>`)."""
    from medallion_assets.framework.table import TableKey

    if path[0] == MAINTENANCE_PREFIX:
        return maintenance_task_key(TableKey(path[1], path[2]))  # type: ignore[arg-type]
    return task_key(TableKey(path[0], path[1]))  # type: ignore[arg-type]
