"""databricks.yml: generated from the declarations, valid offline, and one task per asset."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import regex
import yaml
from databricks.bundles.jobs import Job

from medallion_assets.bundle import render, task_key
from medallion_assets.definitions import defs

REPO = Path(__file__).resolve().parents[1]
# A copy travels with the repository, so a bare clone validates against the same official schema.
SCHEMA_CANDIDATES = [
    REPO / ".ci/databricks-bundle-schema.json",
    REPO.parent / "shared/databricks-bundle-schema.json",
    REPO / "../shared/databricks-bundle-schema.json",
]
MODES = {"development", "production"}


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

    def pattern(validator, expected, instance, _schema):
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
    assert bundle["targets"]["dev"] == {"mode": "development", "default": True}
    assert bundle["targets"]["prod"]["mode"] == "production"
    assert "service_principal_name" in bundle["targets"]["prod"]["run_as"]
    for job in bundle["resources"]["jobs"].values():
        keys = {task["task_key"] for task in job["tasks"]}
        for task in job["tasks"]:
            for dependency in task.get("depends_on", []):
                assert dependency["task_key"] in keys, (task["task_key"], dependency)
        assert job["schedule"]["pause_status"] == "PAUSED"
        assert {p["name"] for p in job["parameters"]} >= {"partition_start", "partition_end"}


def test_every_asset_has_exactly_one_task_and_every_task_an_asset(bundle: dict) -> None:
    graph = defs.resolve_asset_graph()
    asset_tasks = {task_key_for(key.path) for key in graph.get_all_asset_keys()}
    for job in bundle["resources"]["jobs"].values():
        tasks = [task["task_key"] for task in job["tasks"]]
        assert len(tasks) == len(set(tasks))
        assert set(tasks) == asset_tasks
        by_key = {task["task_key"]: task for task in job["tasks"]}
        for key in graph.get_all_asset_keys():
            upstream = {task_key_for(parent.path) for parent in graph.get(key).parent_keys}
            declared = {d["task_key"] for d in by_key[task_key_for(key.path)].get("depends_on", [])}
            assert declared == upstream, key


def test_serverless_tasks_carry_the_wheel_and_run_the_entry_point(bundle: dict) -> None:
    job = bundle["resources"]["jobs"]["medallion_flights"]
    (environment,) = job["environments"]
    assert environment["spec"]["dependencies"] == ["../dist/*.whl"]
    assert bundle["artifacts"]["medallion_wheel"]["type"] == "whl"
    for task in job["tasks"]:
        assert task["environment_key"] == environment["environment_key"]
        assert task["python_wheel_task"]["entry_point"] == "medallion-run"


def task_key_for(path: list[str]) -> str:
    from medallion_assets.framework.table import TableKey

    return task_key(TableKey(path[0], path[1]))  # type: ignore[arg-type]
