"""A local emulator of the Databricks REST API subset our databricks-sdk calls use (loopback only).

It deploys the bundle's jobs the way `databricks bundle deploy -t <target>` would (variables resolved,
development-mode name prefix), and really executes each run's `python_wheel_task`: the installed
package's entry point runs on the driver of an emulated cluster (`emulated_driver`), a process whose local
Spark and Delta session stays up between tasks, as a running cluster's does. Volumes are the local
filesystem (a Volume path is a local path), and DBFS lives under the emulator's root. Faults can be
injected on demand: HTTP 429/503 responses, tasks that fail with a given error, tasks that hang until
cancelled, and tasks whose driver dies under them.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import Distribution, EntryPoints, distribution, entry_points
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import yaml

JOB_PARAMETER = re.compile(r"\{\{job\.parameters\.([A-Za-z0-9_]+)\}\}")
FILES_PREFIX = re.compile(r"^(/api/2.0/fs/(?:files|directories)).*")
BUNDLE_VARIABLE = re.compile(r"\$\{var\.([A-Za-z0-9_]+)\}")
BUNDLE_REFERENCE = re.compile(r"\$\{((?:bundle|workspace)\.[A-Za-z0-9_.]+)\}")


class ApiError(Exception):
    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error_code, self.message = status, error_code, message


@dataclass
class TaskRun:
    task_key: str
    run_id: int
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    error: str | None = None
    error_trace: str | None = None
    # Dagster modules loaded on the driver once the task had run: the task code must need none.
    orchestration_modules: list[str] = field(default_factory=list)
    log_path: Path | None = None


@dataclass
class JobRun:
    run_id: int
    job_id: int | None
    tasks: list[TaskRun]
    job_parameters: dict[str, str]
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)
    # Epoch milliseconds, as the Jobs API reports start_time and end_time.
    start_time: int = field(default_factory=lambda: int(time.time() * 1000))
    end_time: int = 0


@dataclass
class Injection:
    """A status code or an answer delay for the next `remaining` requests whose path contains `path_contains`."""

    value: float
    remaining: int
    path_contains: str


class DriverLost(RuntimeError):
    """The cluster's driver process exited while a task was running on it."""


class ClusterDriver:
    """A warm driver of the emulated cluster (`emulated_driver`): it runs one task at a time."""

    def __init__(self, log: Path, environment: dict[str, str], libraries: Path | None = None) -> None:
        self.log = log
        self.libraries = libraries
        log.parent.mkdir(parents=True, exist_ok=True)
        replies, reply_writer = os.pipe()
        if libraries is None:
            command = [sys.executable, "-m", "medallion_assets_tests.emulated_driver", str(reply_writer)]
            working_directory = None
        else:
            # The task's code comes from the installed wheel alone: the script's own folder and the wheel's are
            # the first entries of sys.path, and the working directory is not the repository.
            command = [sys.executable, str(Path(__file__).with_name("emulated_driver.py")), str(reply_writer)]
            environment = {**environment, "PYTHONPATH": str(libraries)}
            working_directory = log.parent
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                command,
                cwd=working_directory,
                stdin=subprocess.PIPE,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=environment,
                pass_fds=(reply_writer,),
                start_new_session=True,
                text=True,
            )
        os.close(reply_writer)
        self._replies = os.fdopen(replies, "r")
        self._ready = False

    def run(
        self, entry_point: str, name: str, parameters: list[str], log: Path, cancel: threading.Event
    ) -> dict[str, Any] | None:
        """The task's outcome (exit code, error, trace), or None when `cancel` was set before it finished."""
        if not self._ready:
            if self._reply(cancel) is None:
                return None
            self._ready = True
        assert self.process.stdin is not None
        request = {"entry_point": entry_point, "name": name, "parameters": parameters, "log": str(log)}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._reply(cancel)

    def _reply(self, cancel: threading.Event) -> dict[str, Any] | None:
        while not cancel.is_set():
            readable, _, _ = select.select([self._replies], [], [], 0.2)
            if readable:
                line = self._replies.readline()
                if not line:
                    raise DriverLost(f"the cluster driver exited with status {self.process.wait()}; see {self.log}")
                return json.loads(line)
        return None

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def stop(self) -> None:
        for stop_signal in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
                break
        self._replies.close()


class DatabricksEmulator:
    def __init__(
        self, root: Path, token: str, user: str = "dev.user@example.com", task_env: dict[str, str] | None = None
    ):
        self.root = root
        self.token = token
        self.user = user
        self.task_env = task_env or {}
        self.jobs: dict[int, dict[str, Any]] = {}
        # The workspace file system (`/Workspace/...`), where `databricks bundle deploy` puts state and artifacts.
        self.workspace_files: dict[str, bytes] = {}
        self.workspace_dirs: set[str] = set()
        self.runs: dict[int, JobRun] = {}
        self.task_runs: dict[int, TaskRun] = {}
        # run-now's idempotency tokens: a repeated token names the run it started, never a new one.
        self.runs_by_token: dict[str, int] = {}
        self._submissions = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.faults: list[Injection] = []
        self.delays: list[Injection] = []
        self.injected: Counter[int] = Counter()
        self.hang_tasks: set[str] = set()
        self.fail_tasks: dict[str, str] = {}
        # Tasks whose driver process is killed while they run, as when a cluster loses its driver.
        self.crash_tasks: set[str] = set()
        self._drivers: list[ClusterDriver] = []
        self._idle_drivers: list[ClusterDriver] = []
        self._driver_count = 0
        self._ids = iter(range(1000, 10**9))
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    # lifecycle -------------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> DatabricksEmulator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for run in self.runs.values():
            run.cancel.set()
        self._server.shutdown()
        self._server.server_close()
        for driver in self._drivers:
            driver.stop()

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    # faults -----------------------------------------------------------------------------------
    def inject_status(self, status: int, times: int, path_contains: str = "") -> None:
        self.faults.append(Injection(status, times, path_contains))

    def delay_responses(self, seconds: float, times: int, path_contains: str = "") -> None:
        """Handle the next matching requests at once but answer them only after `seconds`: a slow network."""
        self.delays.append(Injection(seconds, times, path_contains))

    def _take(self, injections: list[Injection], path: str) -> float | None:
        with self._lock:
            for injection in injections:
                if injection.remaining > 0 and injection.path_contains in path:
                    injection.remaining -= 1
                    return injection.value
        return None

    def _take_fault(self, path: str) -> int | None:
        status = self._take(self.faults, path)
        if status is None:
            return None
        self.injected[int(status)] += 1
        return int(status)

    # bundle deploy ----------------------------------------------------------------------------
    def deploy_bundle(self, bundle_file: Path, target: str, variables: dict[str, str]) -> dict[str, int]:
        """Create the bundle's jobs for `target`, as `databricks bundle deploy -t target --var ...` would."""
        document = yaml.safe_load(bundle_file.read_text())
        target_config = document["targets"][target]
        values = {name: spec.get("default", "") for name, spec in document.get("variables", {}).items()}
        values.update(target_config.get("variables", {}))
        unknown = set(variables) - set(values)
        if unknown:
            raise ValueError(f"undefined bundle variables: {sorted(unknown)}")
        values.update(variables)

        # The CLI's short name: the user name's local part, lower case, anything else than letters and digits as _.
        short_name = re.sub(r"[^a-z0-9]", "_", self.user.split("@")[0].lower())
        references = {
            "bundle.name": document["bundle"]["name"],
            "bundle.target": target,
            "workspace.current_user.userName": self.user,
            "workspace.current_user.short_name": short_name,
        }

        def resolve(node: Any) -> Any:
            if isinstance(node, str):
                node = BUNDLE_VARIABLE.sub(lambda m: str(values[m.group(1)]), node)
                return BUNDLE_REFERENCE.sub(lambda m: references[m.group(1)], node)
            if isinstance(node, list):
                return [resolve(item) for item in node]
            if isinstance(node, dict):
                return {key: resolve(value) for key, value in node.items()}
            return node

        self._check_wheel_artifact(document)
        created = {}
        for name, job in document["resources"]["jobs"].items():
            settings = resolve(job)
            if target_config.get("mode") == "development":
                # As the CLI's development mode does: a per-user name prefix and a `dev` tag.
                settings["name"] = f"[dev {short_name}] {settings['name']}"
                settings["tags"] = {**settings.get("tags", {}), "dev": short_name}
                if "schedule" in settings:
                    settings["schedule"]["pause_status"] = "PAUSED"
            created[name] = self._create_job(settings)
        return created

    @staticmethod
    def _check_wheel_artifact(document: dict[str, Any]) -> None:
        artifacts = document.get("artifacts", {})
        if not any(a.get("type") == "whl" for a in artifacts.values()):
            raise ValueError("the bundle builds no wheel artifact")
        distribution("medallion_assets")  # the wheel's package must be installed to be executed

    def _create_job(self, settings: dict[str, Any]) -> int:
        job_id = self._next_id()
        self.jobs[job_id] = {"job_id": job_id, "settings": settings, "creator_user_name": self.user}
        return job_id

    # runs -------------------------------------------------------------------------------------
    def _start_run(self, job_id: int | None, tasks: list[dict[str, Any]], parameters: dict[str, str], environments):
        run = JobRun(self._next_id(), job_id, [TaskRun(t["task_key"], self._next_id()) for t in tasks], parameters)
        self.runs[run.run_id] = run
        for task_run in run.tasks:
            self.task_runs[task_run.run_id] = task_run
        threading.Thread(target=self._execute, args=(run, tasks, environments), daemon=True).start()
        return run

    def _execute(self, run: JobRun, tasks: list[dict[str, Any]], environments: list[dict[str, Any]]) -> None:
        run.life_cycle_state = "RUNNING"
        by_key = {t["task_key"]: t for t in tasks}
        for task_run in run.tasks:
            if run.cancel.is_set():
                task_run.life_cycle_state, task_run.result_state = "TERMINATED", "CANCELED"
                continue
            self._execute_with_timeout(run, task_run, by_key[task_run.task_key], environments)
        results = {t.result_state for t in run.tasks}
        run.result_state = next((r for r in ("TIMEDOUT", "CANCELED", "FAILED") if r in results), "SUCCESS")
        run.state_message = next((t.error for t in run.tasks if t.error), "") or ""
        run.end_time = int(time.time() * 1000)
        run.life_cycle_state = "TERMINATED"

    def _execute_with_timeout(self, run: JobRun, task_run: TaskRun, task: dict[str, Any], environments) -> None:
        """A task that outlives its timeout_seconds is stopped and ends TIMEDOUT, as the Jobs API documents."""
        timeout = float(task.get("timeout_seconds") or 0)
        timed_out = threading.Event()
        timer = threading.Timer(timeout, lambda: (timed_out.set(), run.cancel.set())) if timeout > 0 else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            self._execute_task(run, task_run, task, environments)
        finally:
            if timer is not None:
                timer.cancel()
        if timed_out.is_set() and task_run.result_state == "CANCELED":
            task_run.result_state = "TIMEDOUT"
            task_run.error = f"the task did not finish within its timeout_seconds ({timeout:.0f} s)"

    def _execute_task(self, run: JobRun, task_run: TaskRun, task: dict[str, Any], environments) -> None:
        task_run.life_cycle_state = "RUNNING"
        wheel_task = task.get("python_wheel_task")
        if wheel_task is None:
            task_run.life_cycle_state, task_run.result_state = "INTERNAL_ERROR", "FAILED"
            task_run.error = "the emulator runs python_wheel_task tasks only"
            return
        environment = next((e for e in environments if e["environment_key"] == task.get("environment_key")), None)
        if task.get("environment_key") and environment is None:
            task_run.life_cycle_state, task_run.result_state = "INTERNAL_ERROR", "FAILED"
            task_run.error = f"environment {task['environment_key']!r} is not defined"
            return
        if task_run.task_key in self.fail_tasks:
            task_run.life_cycle_state, task_run.result_state = "TERMINATED", "FAILED"
            task_run.error = self.fail_tasks[task_run.task_key]
            return
        if task_run.task_key in self.hang_tasks:
            run.cancel.wait()
            task_run.life_cycle_state, task_run.result_state = "TERMINATED", "CANCELED"
            return
        libraries = self._install_libraries(task, environment)
        # The entry point of the wheel the task installs, or of the package installed here when it names none.
        installed = entry_points(group="console_scripts") if libraries is None else _wheel_entry_points(libraries)
        (entry_point,) = installed.select(name=wheel_task["entry_point"])
        parameters = [
            JOB_PARAMETER.sub(lambda m: run.job_parameters.get(m.group(1), ""), p)
            for p in wheel_task.get("parameters", [])
        ]
        log_dir = self.root / "runs" / str(run.run_id)
        log_dir.mkdir(parents=True, exist_ok=True)
        task_run.log_path = log_dir / f"{task_run.task_key}.log"
        driver = self._acquire_driver(libraries)
        if task_run.task_key in self.crash_tasks:
            threading.Timer(1.0, driver.kill).start()
        try:
            outcome = driver.run(entry_point.value, entry_point.name, parameters, task_run.log_path, run.cancel)
        except DriverLost as lost:
            driver.stop()
            task_run.life_cycle_state, task_run.result_state = "INTERNAL_ERROR", "FAILED"
            task_run.error = str(lost)
            return
        if outcome is None:  # cancelled: the driver was restarted, as Databricks does to stop a task
            driver.stop()
            task_run.life_cycle_state, task_run.result_state = "TERMINATED", "CANCELED"
            return
        self._release_driver(driver)
        task_run.life_cycle_state = "TERMINATED"
        task_run.result_state = "SUCCESS" if outcome["exit_code"] == 0 else "FAILED"
        task_run.error = outcome.get("error")
        task_run.error_trace = outcome.get("error_trace")
        task_run.orchestration_modules = outcome.get("orchestration_modules", [])

    # the cluster ------------------------------------------------------------------------------
    def _install_libraries(self, task: dict[str, Any], environment: dict[str, Any] | None) -> Path | None:
        """Install the task's wheels that were uploaded to the workspace, as the task's compute would.

        Serverless tasks list them in their environment's dependencies, classic tasks in `libraries`. Only
        the wheel is installed (`--no-deps`): the test's own environment stands for the Databricks Runtime.
        Returns None when the task names no uploaded wheel; it then runs the package installed here.
        """
        wheels = [
            *((environment or {}).get("spec", {}).get("dependencies", [])),
            *(library["whl"] for library in task.get("libraries", []) if "whl" in library),
        ]
        uploaded = [wheel for wheel in wheels if wheel in self.workspace_files]
        if not uploaded:
            return None
        digest = hashlib.sha256(b"".join(self.workspace_files[w] for w in uploaded)).hexdigest()[:16]
        target = self.root / "libraries" / digest
        with self._lock:
            if not target.is_dir():
                staging = self.root / "libraries" / f"{digest}.download"
                staging.mkdir(parents=True, exist_ok=True)
                for wheel in uploaded:
                    (staging / Path(wheel).name).write_bytes(self.workspace_files[wheel])
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--no-deps",
                        "--target",
                        str(target),
                        *(str(staging / Path(wheel).name) for wheel in uploaded),
                    ],
                    check=True,
                    capture_output=True,
                )
        return target

    def _acquire_driver(self, libraries: Path | None) -> ClusterDriver:
        with self._lock:
            for idle in self._idle_drivers:
                if idle.libraries == libraries:
                    self._idle_drivers.remove(idle)
                    return idle
            self._driver_count += 1
            number = self._driver_count
        environment = {k: v for k, v in os.environ.items() if not k.startswith("DATABRICKS_")}
        log = self.root / "runs" / "drivers" / f"driver-{number}.log"
        driver = ClusterDriver(log, {**environment, **self.task_env}, libraries)
        with self._lock:
            self._drivers.append(driver)
        return driver

    def _release_driver(self, driver: ClusterDriver) -> None:
        with self._lock:
            self._idle_drivers.append(driver)

    def _run_json(self, run: JobRun) -> dict[str, Any]:
        return {
            "run_id": run.run_id,
            "job_id": run.job_id,
            "run_page_url": f"{self.host}/#job/{run.job_id}/run/{run.run_id}",
            "state": {
                "life_cycle_state": run.life_cycle_state,
                **({"result_state": run.result_state} if run.result_state else {}),
                "state_message": run.state_message,
            },
            "job_parameters": [{"name": k, "value": v} for k, v in run.job_parameters.items()],
            "start_time": run.start_time,
            **({"end_time": run.end_time, "run_duration": run.end_time - run.start_time} if run.end_time else {}),
            "tasks": [
                {
                    "task_key": t.task_key,
                    "run_id": t.run_id,
                    "state": {
                        "life_cycle_state": t.life_cycle_state,
                        **({"result_state": t.result_state} if t.result_state else {}),
                    },
                }
                for t in run.tasks
            ],
        }

    # HTTP -------------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        def payload() -> dict[str, Any]:
            return json.loads(body or b"{}")

        if path.startswith("/api/2.0/fs/files/"):
            return self._files(method, "/" + path.removeprefix("/api/2.0/fs/files/"), query, body)
        if path.startswith("/api/2.0/fs/directories/"):
            return self._directories(method, "/" + path.removeprefix("/api/2.0/fs/directories/"))
        if path.startswith("/api/2.0/dbfs/"):
            return self._dbfs(path.removeprefix("/api/2.0/dbfs/"), query, payload() if method == "POST" else query)
        if path.startswith("/api/2.0/workspace") or path == "/telemetry-ext":
            return self._workspace(method, path, query, body)
        if (method, path) == ("GET", "/api/2.0/preview/scim/v2/Me"):
            return 200, {"userName": self.user, "id": "1", "active": True}
        if (method, path) == ("GET", "/api/2.2/jobs/list"):
            jobs = list(self.jobs.values())
            if "name" in query:
                jobs = [j for j in jobs if j["settings"]["name"] == query["name"]]
            return 200, {"jobs": jobs, "has_more": False}
        if (method, path) == ("GET", "/api/2.2/jobs/get"):
            return 200, self._job(int(query["job_id"]))
        if (method, path) == ("POST", "/api/2.2/jobs/create"):
            return 200, {"job_id": self._create_job(payload())}
        if (method, path) == ("POST", "/api/2.2/jobs/run-now"):
            run = self._run_now(payload())
            return 200, {"run_id": run.run_id, "number_in_job": run.run_id}
        if (method, path) == ("POST", "/api/2.2/jobs/runs/submit"):
            request = payload()
            run = self._start_run(None, _in_dependency_order(request["tasks"]), {}, request.get("environments", []))
            return 200, {"run_id": run.run_id}
        if (method, path) == ("GET", "/api/2.2/jobs/runs/get"):
            run = self.runs.get(int(query["run_id"]))
            if run is None:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"run {query['run_id']} does not exist")
            return 200, self._run_json(run)
        if (method, path) == ("GET", "/api/2.2/jobs/runs/get-output"):
            task_run = self.task_runs.get(int(query["run_id"]))
            if task_run is None:
                raise ApiError(400, "INVALID_PARAMETER_VALUE", "get-output takes the run id of a task")
            logs = task_run.log_path.read_text()[-5000:] if task_run.log_path and task_run.log_path.exists() else ""
            output = {"logs": logs, "metadata": {"run_id": task_run.run_id}}
            if task_run.error:
                output.update(error=task_run.error, error_trace=task_run.error_trace or "")
            return 200, output
        if (method, path) == ("POST", "/api/2.2/jobs/runs/cancel"):
            run = self.runs[int(payload()["run_id"])]
            run.cancel.set()
            return 200, {}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"the emulator has no {method} {path}")

    def _workspace(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        """The workspace file system as `databricks bundle deploy` uses it: state, synced files, artifacts."""
        if path == "/telemetry-ext":
            return 200, {}
        if path.startswith("/api/2.0/workspace-files/import-file/"):
            target = "/" + path.removeprefix("/api/2.0/workspace-files/import-file/").lstrip("/")
            if target in self.workspace_files and query.get("overwrite") != "true":
                raise ApiError(409, "RESOURCE_ALREADY_EXISTS", f"{target} already exists")
            self._workspace_mkdirs(str(Path(target).parent))
            self.workspace_files[target] = body
            return 200, {}
        request = json.loads(body or b"{}") if method == "POST" else query
        target = request.get("path", "")
        if path == "/api/2.0/workspace/get-status":
            if target in self.workspace_files:
                return 200, {"path": target, "object_type": "FILE", "object_id": _object_id(target)}
            if target in self.workspace_dirs:
                return 200, {"path": target, "object_type": "DIRECTORY", "object_id": _object_id(target)}
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({target}) doesn't exist.")
        if path == "/api/2.0/workspace/export":
            if target not in self.workspace_files:
                raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"Path ({target}) doesn't exist.")
            if query.get("direct_download") == "true":
                return 200, self.workspace_files[target]
            return 200, {"content": base64.b64encode(self.workspace_files[target]).decode()}
        if path == "/api/2.0/workspace/mkdirs":
            self._workspace_mkdirs(target)
            return 200, {}
        if path == "/api/2.0/workspace/delete":
            inside = target.rstrip("/") + "/"
            nested = [f for f in self.workspace_files if f.startswith(inside)]
            if nested and not request.get("recursive"):
                raise ApiError(400, "DIRECTORY_NOT_EMPTY", f"{target} is not empty")
            for name in [*nested, target]:
                self.workspace_files.pop(name, None)
            self.workspace_dirs = {d for d in self.workspace_dirs if d != target and not d.startswith(inside)}
            return 200, {}
        if path == "/api/2.0/workspace/list":
            inside = target.rstrip("/") + "/"
            children = [
                {"path": name, "object_type": kind, "object_id": _object_id(name)}
                for kind, names in (("FILE", self.workspace_files), ("DIRECTORY", self.workspace_dirs))
                for name in names
                if name.startswith(inside) and "/" not in name.removeprefix(inside)
            ]
            return 200, {"objects": children}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"the emulator has no {method} {path}")

    def _workspace_mkdirs(self, folder: str) -> None:
        while folder not in ("", "/"):
            self.workspace_dirs.add(folder)
            folder = str(Path(folder).parent)

    def _run_now(self, request: dict[str, Any]) -> JobRun:
        settings = self._job(int(request["job_id"]))["settings"]
        only = request.get("only")
        tasks = [t for t in settings["tasks"] if not only or t["task_key"] in only]
        if only and len(tasks) != len(only):
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"unknown task keys in only: {only}")
        parameters = {p["name"]: p.get("default", "") for p in settings.get("parameters", [])}
        parameters.update(request.get("job_parameters") or {})
        token = request.get("idempotency_token")
        with self._submissions:
            if token in self.runs_by_token:
                return self.runs[self.runs_by_token[token]]
            run = self._start_run(
                int(request["job_id"]), _in_dependency_order(tasks), parameters, settings.get("environments", [])
            )
            if token:
                self.runs_by_token[token] = run.run_id
        return run

    def client_run_now(self, job_id: int, task: str, parameters: dict[str, str], timeout: float = 300) -> JobRun:
        """Start one task of a job as a run-now from outside Dagster would (the job's own schedule, a user), and
        wait for the run to end."""
        run = self._run_now({"job_id": job_id, "only": [task], "job_parameters": parameters})
        deadline = time.monotonic() + timeout
        while run.life_cycle_state != "TERMINATED" and time.monotonic() < deadline:
            time.sleep(0.2)
        return run

    def _job(self, job_id: int) -> dict[str, Any]:
        if job_id not in self.jobs:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", f"job {job_id} does not exist")
        return self.jobs[job_id]

    @staticmethod
    def _files(method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        target = Path(path)
        if method == "PUT":
            if target.exists() and query.get("overwrite") != "true":
                raise ApiError(409, "ALREADY_EXISTS", f"{path} exists")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            return 204, None
        if not target.is_file():
            raise ApiError(404, "NOT_FOUND", f"{path} does not exist")
        if method == "DELETE":
            target.unlink()
            return 204, None
        return 200, target.read_bytes()

    @staticmethod
    def _directories(method: str, path: str) -> tuple[int, Any]:
        target = Path(path)
        if method == "PUT":
            target.mkdir(parents=True, exist_ok=True)
            return 204, None
        if not target.is_dir():
            raise ApiError(404, "NOT_FOUND", f"{path} does not exist")
        if method == "DELETE":
            target.rmdir()
            return 204, None
        contents = [
            {
                "path": str(child),
                "name": child.name,
                "is_directory": child.is_dir(),
                "file_size": stat.st_size,
                "last_modified": stat.st_mtime_ns // 1_000_000,
            }
            for child in sorted(target.iterdir())
            if (stat := child.stat())
        ]
        return 200, {"contents": contents}

    def _dbfs(self, operation: str, query: dict[str, str], request: dict[str, Any]) -> tuple[int, Any]:
        local = self.root / "dbfs" / str(request.get("path", "")).removeprefix("dbfs:").lstrip("/")
        if operation in ("mkdirs",):
            local.mkdir(parents=True, exist_ok=True)
            return 200, {}
        if operation == "put":
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(base64.b64decode(request.get("contents", "")))
            return 200, {}
        if operation == "create":
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(b"")
            handle = self._next_id()
            self.__dict__.setdefault("_handles", {})[handle] = local
            return 200, {"handle": handle}
        if operation in ("add-block", "close"):
            target = self.__dict__["_handles"][int(request["handle"])]
            if operation == "add-block":
                with target.open("ab") as out:
                    out.write(base64.b64decode(request["data"]))
            return 200, {}
        if operation == "delete":
            if local.is_dir():
                shutil.rmtree(local)
            elif local.exists():
                local.unlink()
            return 200, {}
        if not local.exists():
            raise ApiError(404, "RESOURCE_DOES_NOT_EXIST", f"{request.get('path')} does not exist")
        if operation == "get-status":
            return 200, {"path": request["path"], "is_dir": local.is_dir(), "file_size": local.stat().st_size}
        if operation == "list":
            return 200, {
                "files": [
                    {
                        "path": f"dbfs:/{p.relative_to(self.root / 'dbfs')}",
                        "is_dir": p.is_dir(),
                        "file_size": p.stat().st_size,
                    }
                    for p in sorted(local.iterdir())
                ]
            }
        if operation == "read":
            offset, length = int(request.get("offset", 0)), int(request.get("length", 1 << 20))
            data = local.read_bytes()[offset : offset + length]
            return 200, {"bytes_read": len(data), "data": base64.b64encode(data).decode()}
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"the emulator has no dbfs/{operation}")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                return

            def _handle(self, method: str) -> None:
                parsed = urlparse(self.path)
                path = unquote(parsed.path)
                query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                emulator.calls[method + " " + FILES_PREFIX.sub(r"\1", path)] += 1
                try:
                    if path == "/.well-known/databricks-config":
                        # Host metadata that newer SDKs and the CLI ask for unauthenticated; ours has none.
                        raise ApiError(404, "ENDPOINT_NOT_FOUND", "no host metadata")
                    if self.headers.get("Authorization") != f"Bearer {emulator.token}":
                        raise ApiError(401, "UNAUTHENTICATED", "invalid access token")
                    fault = emulator._take_fault(path)
                    if fault is not None:
                        code = "TOO_MANY_REQUESTS" if fault == 429 else "TEMPORARILY_UNAVAILABLE"
                        self._send(fault, {"error_code": code, "message": f"injected {fault}"}, {"Retry-After": "1"})
                        return
                    status, result = emulator._route(method, path, query, body)
                except ApiError as error:
                    self._send(error.status, {"error_code": error.error_code, "message": error.message})
                    return
                delay = emulator._take(emulator.delays, path)
                if delay:
                    time.sleep(delay)
                # A client that gave up while its answer was delayed has closed the connection.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._send(status, result)

            def _send(self, status: int, result: Any, headers: dict[str, str] | None = None) -> None:
                raw = result if isinstance(result, bytes) else b"" if result is None else json.dumps(result).encode()
                self.send_response(status)
                content_type = "application/octet-stream" if isinstance(result, bytes) else "application/json"
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(raw)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

            def do_HEAD(self) -> None:
                self._handle("GET")

        return Handler


def _wheel_entry_points(libraries: Path) -> EntryPoints:
    return EntryPoints(
        entry_point
        for info in libraries.glob("*.dist-info")
        for entry_point in Distribution.at(info).entry_points.select(group="console_scripts")
    )


def _object_id(path: str) -> int:
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:6], "big")


def _in_dependency_order(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = {t["task_key"] for t in tasks}
    ordered: list[dict[str, Any]] = []
    placed: set[str] = set()
    while len(ordered) < len(tasks):
        ready = [
            t for t in tasks
            if t["task_key"] not in placed
            and all(d["task_key"] in placed or d["task_key"] not in keys for d in t.get("depends_on", []))
        ]  # fmt: skip
        if not ready:
            raise ApiError(400, "INVALID_PARAMETER_VALUE", "task dependencies form a cycle")
        ordered.extend(ready)
        placed.update(t["task_key"] for t in ready)
    return ordered
