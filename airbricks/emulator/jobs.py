"""Jobs and runs: job store, run scheduling (DAG of tasks), task subprocesses, outputs, repair.

A run goes QUEUED (if the job is at ``max_concurrent_runs``) → PENDING (clusters starting) → RUNNING →
TERMINATING (job clusters shut down) → TERMINATED, or INTERNAL_ERROR for platform failures. Each task
runs ``taskhost.py`` in its own process group so cancel and timeouts can kill it with everything it
started (Spark's JVM included).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import itertools
import json
import os
import pathlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from airbricks.emulator.clusters import ClusterFailed, ClusterManager
from airbricks.emulator.errors import ApiError, as_int, coerce_int, invalid, not_found
from airbricks.emulator.faults import Faults
from airbricks.emulator.storage import Mirror, StorageMapper

TASK_TYPES = ("notebook_task", "spark_python_task")
_UNSUPPORTED_TASK_TYPES = (
    "spark_jar_task",
    "spark_submit_task",
    "python_wheel_task",
    "pipeline_task",
    "sql_task",
    "dbt_task",
    "run_job_task",
    "condition_task",
    "for_each_task",
    "clean_rooms_notebook_task",
    "dashboard_task",
    "power_bi_task",
)
_TASKHOST = str(pathlib.Path(__file__).with_name("taskhost.py"))
_REF = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")
_TERMINAL = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
_FAILED_RESULTS = ("FAILED", "TIMEDOUT", "CANCELED", "UPSTREAM_FAILED", "UPSTREAM_CANCELED")
_OUTPUT_LIMIT = 5 * 1024 * 1024  # Databricks truncates notebook results and logs at 5 MB
_LOG_TAIL = 64 * 1024

# Environment variables a task must never inherit from the emulator process.
_SECRET_ENV = ("DATABRICKS_TOKEN", "AIRBRICKS_EMULATOR_TOKEN", "DATABRICKS_HOST")


def now_ms() -> int:
    return int(time.time() * 1000)


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        prefix, _, number = text.partition(":")
        if prefix != "offset":
            raise ValueError(text)
        return int(number)
    except ValueError as exc:
        raise invalid(f"Invalid page_token {token!r}") from exc


@dataclass
class TaskRun:
    run_id: int
    task_key: str
    spec: dict[str, Any]
    attempt_number: int = 0
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    termination: tuple[str, str] | None = None  # (code, type) of status.termination_details
    start_time: int = 0
    setup_start: float | None = None
    exec_start: float | None = None
    exec_end: float | None = None
    end_time: int = 0
    cluster_id: str | None = None
    exit_value: str | None = None
    error: str | None = None
    error_trace: str | None = None
    logs: str | None = None
    logs_truncated: bool = False
    task_values: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    kill_reason: str | None = None  # CANCELED | TIMEDOUT | CLUSTER_LOST

    @property
    def done(self) -> bool:
        return self.life_cycle_state in _TERMINAL


@dataclass
class Run:
    run_id: int
    job_id: int | None
    number_in_job: int
    run_name: str
    run_type: str
    settings: dict[str, Any]
    job_parameters: dict[str, str]
    overriding: dict[str, Any]
    tasks: list[TaskRun]
    created: int = field(default_factory=now_ms)
    life_cycle_state: str = "QUEUED"
    result_state: str | None = None
    state_message: str = ""
    termination: tuple[str, str] | None = None
    start_time: int = 0
    end_time: int = 0
    setup_duration: int = 0
    cancel_requested: bool = False
    timed_out: bool = False
    admission: str = "new"  # new -> queued -> started: the per-job FIFO of max_concurrent_runs
    repair_history: list[dict[str, Any]] = field(default_factory=list)
    job_cluster_ids: dict[str, str] = field(default_factory=dict)
    owned_clusters: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.life_cycle_state not in _TERMINAL

    @property
    def latest(self) -> list[TaskRun]:
        """The latest attempt of each task, in task order (``tasks`` holds every attempt, like Databricks)."""
        by_key: dict[str, TaskRun] = {}
        for task in self.tasks:
            by_key[task.task_key] = task
        return list(by_key.values())


class JobsService:
    """In-memory jobs and runs, executing tasks for real.

    :param clusters: cluster manager (job clusters and new clusters are created there).
    :param faults: fault registry.
    :param state_dir: where run logs, specs and results are written.
    :param storage: s3:// parameter mapping.
    :param base_url: public URL of the server, for ``run_page_url``.
    """

    def __init__(
        self,
        clusters: ClusterManager,
        faults: Faults,
        state_dir: pathlib.Path,
        storage: StorageMapper,
        base_url: str = "",
        spark_driver_memory: str = "512m",
        retry_interval_cap: float | None = None,
    ):
        self.clusters = clusters
        self.faults = faults
        self.state_dir = state_dir
        self.storage = storage
        self.base_url = base_url
        self.spark_driver_memory = spark_driver_memory
        self.retry_interval_cap = retry_interval_cap
        self.bundle_root: pathlib.Path | None = None  # set by the workspace when a bundle is loaded
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self.jobs: dict[int, dict[str, Any]] = {}
        self.runs: dict[int, Run] = {}
        self._task_index: dict[int, tuple[Run, TaskRun]] = {}
        self._idempotency: dict[str, int] = {}
        self._ids = itertools.count(1000 + int(time.time()) % 1000 * 1000)
        self._job_numbers: dict[int, itertools.count[int]] = {}
        self._threads: list[threading.Thread] = []

    # ================================================================================================
    # Jobs
    # ================================================================================================
    def _validate_settings(self, settings: Any) -> dict[str, Any]:
        if not isinstance(settings, dict):
            raise invalid("Job settings must be a JSON object")
        settings = copy.deepcopy(settings)
        tasks = settings.get("tasks") or []
        if not isinstance(tasks, list):
            raise invalid("tasks must be an array")
        job_cluster_keys = {c.get("job_cluster_key") for c in settings.get("job_clusters") or []}
        for jc in settings.get("job_clusters") or []:
            if not jc.get("job_cluster_key"):
                raise invalid("job_clusters[].job_cluster_key is required")
            if not isinstance(jc.get("new_cluster"), dict):
                raise invalid(f"job cluster {jc.get('job_cluster_key')!r} needs a new_cluster spec")
        keys: set[str] = set()
        for i, task in enumerate(tasks):
            key = task.get("task_key")
            if not key:
                raise invalid(f"tasks[{i}].task_key is required")
            if key in keys:
                raise invalid(f"Task key {key!r} is used by more than one task")
            keys.add(key)
            self._validate_task(task, job_cluster_keys)
        for task in tasks:
            for dep in task.get("depends_on") or []:
                if dep.get("task_key") not in keys:
                    raise invalid(
                        f"Task {task['task_key']!r} depends on {dep.get('task_key')!r}, "
                        "which is not a task of this job"
                    )
        _check_acyclic(tasks)
        for p in settings.get("parameters") or []:
            if not p.get("name") or "default" not in p:
                raise invalid("Each job parameter needs a name and a default")
        for key in ("timeout_seconds", "max_concurrent_runs"):
            coerce_int(settings, key, "job")
        return settings

    def _validate_task(self, task: dict[str, Any], job_cluster_keys: set[Any]) -> None:
        key = task["task_key"]
        for field_name in ("timeout_seconds", "min_retry_interval_millis"):
            coerce_int(task, field_name, f"task {key!r}")
        coerce_int(task, "max_retries", f"task {key!r}", minimum=-1)
        if isinstance(task.get("retry_on_timeout"), str):
            task["retry_on_timeout"] = task["retry_on_timeout"].lower() == "true"
        types = [t for t in (*TASK_TYPES, *_UNSUPPORTED_TASK_TYPES) if t in task]
        if len(types) != 1:
            raise invalid(
                f"Task {key!r} must have exactly one task type (e.g. notebook_task), found {types or 'none'}"
            )
        if types[0] not in TASK_TYPES:
            raise invalid(
                f"Task {key!r}: {types[0]} is not supported by the local emulator "
                f"(only {', '.join(TASK_TYPES)})"
            )
        spec = task[types[0]]
        path_key = "notebook_path" if types[0] == "notebook_task" else "python_file"
        if not isinstance(spec, dict) or not spec.get(path_key):
            raise invalid(f"Task {key!r}: {types[0]}.{path_key} is required")
        if task.get("job_cluster_key") and task["job_cluster_key"] not in job_cluster_keys:
            raise invalid(
                f"Task {key!r} refers to job cluster {task['job_cluster_key']!r}, "
                "which is not defined in job_clusters"
            )
        if task.get("existing_cluster_id") and not self.clusters.exists(task["existing_cluster_id"]):
            raise invalid(f"Task {key!r}: cluster {task['existing_cluster_id']} does not exist")
        if task.get("new_cluster") is not None and not task["new_cluster"].get("spark_version"):
            raise invalid(f"Task {key!r}: new_cluster.spark_version is required")

    def create_job(self, settings: dict[str, Any]) -> int:
        settings = self._validate_settings(settings)
        settings.setdefault("name", "Untitled")
        settings.setdefault("max_concurrent_runs", 1)
        settings.setdefault("format", "MULTI_TASK")
        with self._lock:
            job_id = next(self._ids)
            self.jobs[job_id] = {
                "job_id": job_id,
                "created_time": now_ms(),
                "creator_user_name": "emulator@localhost",
                "run_as_user_name": "emulator@localhost",
                "settings": settings,
            }
            self._job_numbers[job_id] = itertools.count(1)
        return job_id

    def _job(self, job_id: Any) -> dict[str, Any]:
        job_id = as_int(job_id, "job_id")
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found(f"Job {job_id} does not exist.")
        return job

    def get_job(self, job_id: Any) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._job(job_id))

    def reset_job(self, job_id: Any, new_settings: Any) -> None:
        settings = self._validate_settings(new_settings)
        settings.setdefault("max_concurrent_runs", 1)
        with self._lock:
            self._job(job_id)["settings"] = settings

    def update_job(self, job_id: Any, new_settings: Any, fields_to_remove: list[str] | None) -> None:
        with self._lock:
            job = self._job(job_id)
            merged = copy.deepcopy(job["settings"])
            for key, value in (new_settings or {}).items():
                if key in ("tasks", "job_clusters") and isinstance(value, list):
                    id_field = "task_key" if key == "tasks" else "job_cluster_key"
                    by_key = {item[id_field]: item for item in merged.get(key) or []}
                    for item in value:
                        by_key[item.get(id_field)] = item
                    merged[key] = list(by_key.values())
                else:
                    merged[key] = value
            for name in fields_to_remove or []:
                if name.startswith("tasks/"):
                    merged["tasks"] = [
                        t for t in merged.get("tasks") or [] if t["task_key"] != name.split("/", 1)[1]
                    ]
                elif name.startswith("job_clusters/"):
                    jc = name.split("/", 1)[1]
                    merged["job_clusters"] = [
                        c for c in merged.get("job_clusters") or [] if c["job_cluster_key"] != jc
                    ]
                else:
                    merged.pop(name, None)
            job["settings"] = self._validate_settings(merged)

    def delete_job(self, job_id: Any) -> None:
        with self._lock:
            job = self._job(job_id)
            del self.jobs[job["job_id"]]

    def list_jobs(self, name: str | None, limit: int, offset: int, expand_tasks: bool) -> dict[str, Any]:
        if not 1 <= limit <= 100:
            raise invalid(f"limit must be between 1 and 100, got {limit}")
        with self._lock:
            jobs = sorted(self.jobs.values(), key=lambda j: j["job_id"])
            if name is not None:
                jobs = [j for j in jobs if j["settings"].get("name", "").lower() == name.lower()]
            page = [copy.deepcopy(j) for j in jobs[offset : offset + limit]]
        for job in page:
            job["has_more"] = False
            if not expand_tasks:
                job["settings"].pop("tasks", None)
                job["settings"].pop("job_clusters", None)
        out: dict[str, Any] = {"jobs": page, "has_more": offset + limit < len(jobs)}
        if offset + limit < len(jobs):
            out["next_page_token"] = encode_token(offset + limit)
        if offset > 0:
            out["prev_page_token"] = encode_token(max(0, offset - limit))
        return out

    def find_job_by_name(self, name: str) -> int | None:
        with self._lock:
            for job_id, job in self.jobs.items():
                if job["settings"].get("name") == name:
                    return job_id
        return None

    # ================================================================================================
    # Starting runs
    # ================================================================================================
    def run_now(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("idempotency_token")
        with self._lock:
            if token and token in self._idempotency:
                run = self.runs.get(self._idempotency[token])
                if run is not None:
                    return {"run_id": run.run_id, "number_in_job": run.number_in_job}
            job = self._job(body.get("job_id"))
            settings = copy.deepcopy(job["settings"])
        declared = {p["name"]: str(p["default"]) for p in settings.get("parameters") or []}
        given = body.get("job_parameters") or {}
        if not isinstance(given, dict):
            raise invalid("job_parameters must be an object of name -> value")
        legacy = [
            k
            for k in (
                "notebook_params",
                "python_params",
                "python_named_params",
                "jar_params",
                "spark_submit_params",
            )
            if body.get(k)
        ]
        if declared and legacy:
            raise invalid(
                f"{legacy[0]} cannot be used with a job that defines job parameters; "
                "pass job_parameters instead"
            )
        unknown = sorted(set(given) - set(declared))
        if unknown and declared:
            raise invalid(f"Job parameter(s) {unknown} are not defined by job {job['job_id']}")
        params = (
            {**declared, **{k: str(v) for k, v in given.items()}}
            if declared
            else {k: str(v) for k, v in given.items()}
        )
        only = body.get("only")
        if only:
            keys = {t["task_key"] for t in settings.get("tasks") or []}
            missing = sorted(set(only) - keys)
            if missing:
                raise invalid(f"Task(s) {missing} in 'only' are not tasks of job {job['job_id']}")
            settings["tasks"] = [t for t in settings["tasks"] if t["task_key"] in only]
            for t in settings["tasks"]:
                t["depends_on"] = [d for d in t.get("depends_on") or [] if d["task_key"] in only]
        overriding = {
            k: body[k]
            for k in ("notebook_params", "python_params", "python_named_params", "jar_params")
            if body.get(k)
        }
        if given:
            overriding["job_parameters"] = given
        run = self._new_run(
            job_id=job["job_id"],
            run_name=settings.get("name", "Untitled"),
            run_type="JOB_RUN",
            settings=settings,
            job_parameters=params,
            overriding=overriding,
            token=token,
        )
        return {"run_id": run.run_id, "number_in_job": run.number_in_job}

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("idempotency_token")
        with self._lock:
            if token and token in self._idempotency and self._idempotency[token] in self.runs:
                return {"run_id": self._idempotency[token]}
        settings = copy.deepcopy(body)
        if not settings.get("tasks"):
            # Legacy single-task shape (notebook_task / new_cluster at the top level).
            task_fields = {
                k: settings.pop(k)
                for k in (
                    *TASK_TYPES,
                    *_UNSUPPORTED_TASK_TYPES,
                    "new_cluster",
                    "existing_cluster_id",
                    "libraries",
                )
                if k in settings
            }
            if not any(t in task_fields for t in (*TASK_TYPES, *_UNSUPPORTED_TASK_TYPES)):
                raise invalid("runs/submit needs 'tasks' (or a single task type such as notebook_task)")
            settings["tasks"] = [{"task_key": settings.get("run_name") or "task", **task_fields}]
        settings = self._validate_settings(settings)
        run = self._new_run(
            job_id=None,
            run_name=settings.get("run_name") or "Untitled",
            run_type="SUBMIT_RUN",
            settings=settings,
            job_parameters={},
            overriding={},
            token=token,
        )
        return {"run_id": run.run_id}

    def _new_run(
        self,
        *,
        job_id: int | None,
        run_name: str,
        run_type: str,
        settings: dict[str, Any],
        job_parameters: dict[str, str],
        overriding: dict[str, Any],
        token: str | None,
    ) -> Run:
        with self._lock:
            run_id = next(self._ids)
            number = next(self._job_numbers[job_id]) if job_id is not None else run_id
            tasks = [
                TaskRun(run_id=next(self._ids), task_key=t["task_key"], spec=t)
                for t in settings.get("tasks") or []
            ]
            run = Run(
                run_id=run_id,
                job_id=job_id,
                number_in_job=number,
                run_name=run_name,
                run_type=run_type,
                settings=settings,
                job_parameters=job_parameters,
                overriding=overriding,
                tasks=tasks,
            )
            for task in tasks:
                task.life_cycle_state = "BLOCKED" if task.spec.get("depends_on") else "PENDING"
            self.runs[run_id] = run
            for task in tasks:
                self._task_index[task.run_id] = (run, task)
            if token:
                self._idempotency[token] = run_id
            self._start_thread(run, tasks, repair=False)
        return run

    def _start_thread(self, run: Run, tasks: list[TaskRun], repair: bool) -> None:
        thread = threading.Thread(
            target=self._execute, args=(run, tasks, repair), name=f"run-{run.run_id}", daemon=True
        )
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    # ================================================================================================
    # Executing runs
    # ================================================================================================
    def _execute(self, run: Run, to_run: list[TaskRun], repair: bool) -> None:
        try:
            self._execute_inner(run, to_run, repair)
        except Exception as exc:  # a bug here must still end the run, never leave it RUNNING forever
            with self._cond:
                self._finish(
                    run,
                    "INTERNAL_ERROR",
                    "FAILED",
                    f"Emulator error: {exc!r}",
                    ("INTERNAL_ERROR", "INTERNAL_ERROR"),
                )
        finally:
            self._release_clusters(run)
            with self._cond:
                if run.life_cycle_state == "TERMINATING":
                    run.life_cycle_state = "TERMINATED"
                run.end_time = now_ms()
                if run.repair_history:
                    run.repair_history[-1]["end_time"] = run.end_time
                    run.repair_history[-1]["state"] = self._state_json(run)
                self._cond.notify_all()
            shutil.rmtree(self.storage.storage_dir / f"run-{run.run_id}", ignore_errors=True)

    def _execute_inner(self, run: Run, to_run: list[TaskRun], repair: bool) -> None:
        # Queue behind other active runs of the same job (max_concurrent_runs, queueing on by default).
        with self._cond:
            if not repair and run.job_id is not None:
                limit = int(run.settings.get("max_concurrent_runs") or 1)
                queue_enabled = (run.settings.get("queue") or {}).get("enabled", True)
                while (verdict := self._admission(run, limit)) != "start":
                    if verdict == "full" and not queue_enabled:
                        for task in run.tasks:
                            task.life_cycle_state, task.result_state = "SKIPPED", None
                        run.admission = "started"  # decided: lets younger runs through
                        self._finish(
                            run,
                            "SKIPPED",
                            "MAXIMUM_CONCURRENT_RUNS_REACHED",
                            "Run skipped: maximum concurrent runs reached",
                            ("MAX_CONCURRENT_RUNS_EXCEEDED", "CLIENT_ERROR"),
                        )
                        return
                    if verdict == "full":
                        run.admission = "queued"
                        run.state_message = "Waiting: maximum concurrent runs reached"
                    if run.cancel_requested:
                        self._finish(
                            run,
                            "TERMINATED",
                            "CANCELED",
                            "Run canceled while queued",
                            ("USER_CANCELED", "SUCCESS"),
                        )
                        return
                    self._cond.wait(0.2)
            run.admission = "started"
            run.life_cycle_state = "PENDING"
            run.state_message = ""
            run.result_state = None
            run.termination = None
            if not run.start_time:
                run.start_time = now_ms()
        injected = self.faults.take_run_failure()
        if injected is not None and injected.kind == "INTERNAL_ERROR":
            with self._cond:
                for task in to_run:
                    self._end_task(
                        task,
                        "INTERNAL_ERROR",
                        "FAILED",
                        injected.message,
                        ("INTERNAL_ERROR", "INTERNAL_ERROR"),
                    )
                self._finish(
                    run, "INTERNAL_ERROR", "FAILED", injected.message, ("INTERNAL_ERROR", "INTERNAL_ERROR")
                )
            return
        # Job clusters are shared by every task of the run: start them all up front, as Databricks does.
        setup_started = time.monotonic()
        try:
            self._start_job_clusters(run, to_run)
        except ClusterFailed as failed:
            self._cluster_failed(run, to_run, failed)
            return
        with self._cond:
            run.setup_duration = int((time.monotonic() - setup_started) * 1000)
            if run.cancel_requested:
                self._cancel_pending(run, to_run)
                self._finish(run, "TERMINATED", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS"))
                return
            run.life_cycle_state = "RUNNING"
        timeout = run.settings.get("timeout_seconds") or 0
        deadline = time.monotonic() + timeout if timeout else None
        pending = {t.task_key: t for t in to_run}
        workers: dict[str, threading.Thread] = {}
        fail_first = injected  # a FAILED fault fails the first task that starts
        while True:
            with self._cond:
                by_key = {t.task_key: t for t in run.latest}  # retries add attempts: rebuild each round
                if deadline and time.monotonic() > deadline and not run.timed_out:
                    run.timed_out = True
                    for task in run.tasks:
                        if task.process is not None and task.kill_reason is None:
                            task.kill_reason = "TIMEDOUT"
                            _kill(task.process)
                for key, task in list(pending.items()):
                    verdict = self._readiness(task, by_key, run)
                    if verdict == "wait":
                        continue
                    del pending[key]
                    if verdict == "run":
                        task.life_cycle_state = "PENDING"
                        thread = threading.Thread(
                            target=self._run_task_safe, args=(run, task, fail_first), daemon=True
                        )
                        fail_first = None
                        workers[key] = thread
                        thread.start()
                    else:
                        self._end_task(
                            task, "TERMINATED", verdict, _SKIP_MESSAGES[verdict], ("SKIPPED", "SUCCESS")
                        )
                if not pending and all(not w.is_alive() for w in workers.values()):
                    break
                self._cond.wait(0.1)
        with self._cond:
            latest = run.latest
            results = [t.result_state for t in latest]
            if run.timed_out:
                self._finish(
                    run,
                    "TERMINATING",
                    "TIMEDOUT",
                    f"Run timed out after {timeout} seconds",
                    ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
                )
            elif run.cancel_requested:
                self._finish(run, "TERMINATING", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS"))
            elif any(t.life_cycle_state == "INTERNAL_ERROR" for t in latest):
                bad = next(t for t in latest if t.life_cycle_state == "INTERNAL_ERROR")
                self._finish(
                    run,
                    "INTERNAL_ERROR",
                    "FAILED",
                    bad.state_message,
                    bad.termination or ("INTERNAL_ERROR", "INTERNAL_ERROR"),
                )
            elif any(r in _FAILED_RESULTS for r in results):
                failed = [t.task_key for t in latest if t.result_state in ("FAILED", "TIMEDOUT")]
                self._finish(
                    run,
                    "TERMINATING",
                    "FAILED",
                    f"Task(s) {failed} failed" if failed else "Run failed",
                    ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
                )
            else:
                self._finish(run, "TERMINATING", "SUCCESS", "", ("SUCCESS", "SUCCESS"))

    def _admission(self, run: Run, limit: int) -> str:
        """``start``, ``wait`` (an older run of the job has not been admitted yet) or ``full``."""
        others = [r for r in self.runs.values() if r.job_id == run.job_id and r is not run and r.active]
        if any(r.run_id < run.run_id and r.admission != "started" for r in others):
            return "wait"  # first in, first out
        started = sum(1 for r in others if r.admission == "started")
        return "start" if started < limit else "full"

    def _readiness(self, task: TaskRun, by_key: dict[str, TaskRun], run: Run) -> str:
        if run.cancel_requested or run.timed_out:
            return "UPSTREAM_CANCELED" if run.cancel_requested else "UPSTREAM_FAILED"
        deps = [by_key[d["task_key"]] for d in task.spec.get("depends_on") or [] if d["task_key"] in by_key]
        if any(not d.done or self._will_retry(run, d) for d in deps):
            return "wait"  # a failed dependency that will be retried is not final yet
        if not deps:
            return "run"
        results = [d.result_state for d in deps]
        ok = [r == "SUCCESS" for r in results]
        rule = task.spec.get("run_if") or "ALL_SUCCESS"
        passes = {
            "ALL_SUCCESS": all(ok),
            "ALL_DONE": True,
            "NONE_FAILED": not any(r in ("FAILED", "TIMEDOUT", "UPSTREAM_FAILED") for r in results),
            "AT_LEAST_ONE_SUCCESS": any(ok),
            "ALL_FAILED": not any(ok),
            "AT_LEAST_ONE_FAILED": not all(ok),
        }.get(rule, all(ok))
        if passes:
            return "run"
        if any(r in ("CANCELED", "UPSTREAM_CANCELED") for r in results):
            return "UPSTREAM_CANCELED"
        return "UPSTREAM_FAILED"

    def _start_job_clusters(self, run: Run, to_run: list[TaskRun]) -> None:
        needed = {t.spec.get("job_cluster_key") for t in to_run} - {None}
        specs = {c["job_cluster_key"]: c["new_cluster"] for c in run.settings.get("job_clusters") or []}
        for key in sorted(needed):
            existing = run.job_cluster_ids.get(key)
            if existing and self.clusters.state_of(existing) == "RUNNING":
                continue
            cluster = self.clusters.create(
                {**specs[key], "cluster_name": f"job-{run.job_id or 'submit'}-run-{run.run_id}-{key}"},
                source="JOB",
            )
            with self._lock:
                run.job_cluster_ids[key] = cluster.cluster_id
                run.owned_clusters.append(cluster.cluster_id)
        for key in sorted(needed):
            self.clusters.wait_running(
                run.job_cluster_ids[key], timeout=3600, cancelled=lambda: run.cancel_requested
            )

    def _cluster_failed(self, run: Run, tasks: list[TaskRun], failed: ClusterFailed) -> None:
        message = _cluster_message(failed)
        with self._cond:
            if run.cancel_requested:
                self._cancel_pending(run, tasks)
                self._finish(run, "TERMINATED", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS"))
                return
            for task in tasks:
                if not task.done:
                    self._end_task(
                        task, "INTERNAL_ERROR", "FAILED", message, ("CLUSTER_ERROR", "CLOUD_FAILURE")
                    )
            self._finish(run, "INTERNAL_ERROR", "FAILED", message, ("CLUSTER_ERROR", "CLOUD_FAILURE"))

    def _cancel_pending(self, run: Run, tasks: list[TaskRun]) -> None:
        for task in tasks:
            if not task.done:
                self._end_task(task, "TERMINATED", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS"))

    def _finish(
        self, run: Run, life: str, result: str | None, message: str, termination: tuple[str, str]
    ) -> None:
        run.life_cycle_state = life
        run.result_state = result
        run.state_message = message
        run.termination = termination
        self._cond.notify_all()

    def _end_task(
        self, task: TaskRun, life: str, result: str | None, message: str, termination: tuple[str, str]
    ) -> None:
        task.life_cycle_state = life
        task.result_state = result
        task.state_message = message
        task.termination = termination
        if not task.start_time:
            task.start_time = now_ms()
        task.end_time = now_ms()
        self._cond.notify_all()

    def _release_clusters(self, run: Run) -> None:
        for cluster_id in run.owned_clusters:
            try:
                self.clusters.terminate(
                    cluster_id,
                    {"code": "JOB_FINISHED", "type": "SUCCESS", "parameters": {}},
                    "Job run finished",
                )
            except Exception:  # noqa: S112 - a permanently deleted job cluster needs no termination
                continue

    def _run_task_safe(self, run: Run, task: TaskRun, injected: Any) -> None:
        """Run a task, then its retries (max_retries, min_retry_interval_millis, retry_on_timeout)."""
        while True:
            try:
                self._run_task(run, task, injected)
            except Exception as exc:
                with self._cond:
                    task.error = f"Emulator error: {exc!r}"
                    self._end_task(
                        task, "INTERNAL_ERROR", "FAILED", task.error, ("INTERNAL_ERROR", "INTERNAL_ERROR")
                    )
            injected = None
            with self._cond:
                if not self._will_retry(run, task):
                    return
                fresh = TaskRun(
                    run_id=next(self._ids),
                    task_key=task.task_key,
                    spec=task.spec,
                    attempt_number=task.attempt_number + 1,
                    life_cycle_state="WAITING_FOR_RETRY",
                )
                run.tasks.append(fresh)  # runs/get lists every attempt; clients keep the latest
                self._task_index[fresh.run_id] = (run, fresh)
                task = fresh
                interval = (task.spec.get("min_retry_interval_millis") or 0) / 1000
                if self.retry_interval_cap is not None:
                    interval = min(interval, self.retry_interval_cap)
                deadline = time.monotonic() + interval
                while time.monotonic() < deadline and not (run.cancel_requested or run.timed_out):
                    self._cond.wait(0.1)
                if run.cancel_requested or run.timed_out:
                    self._end_task(
                        task, "TERMINATED", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS")
                    )
                    return

    def _will_retry(self, run: Run, task: TaskRun) -> bool:
        """Whether a finished attempt gets another one, as Databricks decides it."""
        if run.cancel_requested or run.timed_out or task.kill_reason == "CANCELED":
            return False
        failed = task.result_state == "FAILED" or task.life_cycle_state == "INTERNAL_ERROR"
        timed_out = task.result_state == "TIMEDOUT" and bool(task.spec.get("retry_on_timeout"))
        if not (failed or timed_out):
            return False
        max_retries = int(task.spec.get("max_retries") or 0)
        return max_retries == -1 or task.attempt_number < max_retries

    def _run_task(self, run: Run, task: TaskRun, injected: Any) -> None:
        with self._cond:
            task.start_time = now_ms()
            task.setup_start = time.monotonic()
            task.life_cycle_state = "PENDING"
        # 1. cluster
        try:
            cluster_id = self._task_cluster(run, task)
        except ClusterFailed as failed:
            message = _cluster_message(failed)
            with self._cond:
                if run.cancel_requested:
                    self._end_task(
                        task, "TERMINATED", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS")
                    )
                else:
                    self._end_task(
                        task, "INTERNAL_ERROR", "FAILED", message, ("CLUSTER_ERROR", "CLOUD_FAILURE")
                    )
            return
        with self._cond:
            task.cluster_id = cluster_id
            if run.cancel_requested or run.timed_out:
                self._end_task(
                    task,
                    "TERMINATED",
                    "CANCELED" if run.cancel_requested else "TIMEDOUT",
                    "Run canceled",
                    ("USER_CANCELED", "SUCCESS"),
                )
                return
        if injected is not None:
            with self._cond:
                task.exec_start = task.exec_end = time.monotonic()
                task.error = injected.message
                task.error_trace = f"InjectedFault: {injected.message}"
                self._end_task(
                    task, "TERMINATED", "FAILED", injected.message, ("RUN_EXECUTION_ERROR", "CLIENT_ERROR")
                )
            return
        # 2. parameters and storage mapping
        task_dir = self.state_dir / "runs" / str(run.run_id) / f"{task.task_key}-{task.attempt_number}"
        task_dir.mkdir(parents=True, exist_ok=True)
        mirrors: dict[str, Mirror] = {}
        try:
            spec = self._task_spec(run, task, mirrors, task_dir)
            if mirrors:
                self.storage.download(mirrors)
        except Exception as exc:
            with self._cond:
                task.error = f"{type(exc).__name__}: {exc}"
                task.error_trace = task.error
                self._end_task(
                    task,
                    "INTERNAL_ERROR",
                    "FAILED",
                    task.error,
                    ("INVALID_RUN_CONFIGURATION", "CLIENT_ERROR"),
                )
            return
        # 3. the process
        spec_file = task_dir / "spec.json"
        spec_file.write_text(json.dumps(spec))
        stdout_path, stderr_path = task_dir / "stdout.txt", task_dir / "stderr.txt"
        loss = self.faults.take_cluster_loss()
        timeout = task.spec.get("timeout_seconds") or 0
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            with self._cond:
                task.life_cycle_state = "RUNNING"
                task.exec_start = time.monotonic()
                task.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                    [sys.executable, _TASKHOST, str(spec_file)],
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    env=self._task_env(task_dir),
                    cwd=str(task_dir),
                    start_new_session=True,  # own process group: cancel kills the JVM too
                )
            proc = task.process
            while proc.poll() is None:
                elapsed = time.monotonic() - task.exec_start
                with self._cond:
                    if run.cancel_requested and task.kill_reason is None:
                        task.kill_reason = "CANCELED"
                    elif timeout and elapsed > timeout and task.kill_reason is None:
                        task.kill_reason = "TIMEDOUT"
                    elif loss is not None and elapsed > loss.after_seconds and task.kill_reason is None:
                        task.kill_reason = "CLUSTER_LOST"
                        if cluster_id:
                            self.clusters.lose(cluster_id, loss.code, loss.type, loss.message)
                    if task.kill_reason is not None:
                        _kill(proc)
                        break
                    self._cond.wait(0.05)
            proc.wait()
            # An armed loss hits this task even if the process ended before `after_seconds` (a busy machine
            # or a very short task): the fault means "this task's cluster dies", never a silent no-op.
            if loss is not None and task.kill_reason is None:
                with self._cond:
                    task.kill_reason = "CLUSTER_LOST"
                    if cluster_id:
                        self.clusters.lose(cluster_id, loss.code, loss.type, loss.message)
        task.exec_end = time.monotonic()
        # 4. outcome
        result_file = pathlib.Path(spec["result_file"])
        result = json.loads(result_file.read_text()) if result_file.exists() else None
        stats = None
        if mirrors:
            try:
                stats = self.storage.upload(mirrors)
            except Exception as exc:
                result = {
                    "ok": False,
                    "error": f"Syncing outputs to S3 failed: {exc}",
                    "error_trace": repr(exc),
                }
        logs = stdout_path.read_bytes()
        with self._cond:
            task.process = None
            task.logs = logs[-_LOG_TAIL:].decode("utf-8", "replace")
            task.logs_truncated = len(logs) > _LOG_TAIL
            if stats:
                task.logs += (
                    f"\n[emulator] synced to S3: {stats['uploaded']} uploaded, {stats['deleted']} deleted\n"
                )
            if task.kill_reason == "CANCELED":
                self._end_task(
                    task, "TERMINATED", "CANCELED", "Run canceled by user", ("USER_CANCELED", "SUCCESS")
                )
            elif task.kill_reason == "TIMEDOUT":
                limit = timeout or run.settings.get("timeout_seconds")
                self._end_task(
                    task,
                    "TERMINATED",
                    "TIMEDOUT",
                    f"Task timed out after {limit} seconds",
                    ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
                )
            elif task.kill_reason == "CLUSTER_LOST":
                assert loss is not None
                message = (
                    f"Cluster {cluster_id} was terminated during the run. Reason: {loss.code}. {loss.message}"
                )
                task.error = message
                self._end_task(task, "INTERNAL_ERROR", "FAILED", message, ("CLUSTER_ERROR", "CLOUD_FAILURE"))
            elif result is None:
                tail = stderr_path.read_bytes()[-4000:].decode("utf-8", "replace")
                task.error = f"Task process exited with code {proc.returncode} without a result"
                task.error_trace = tail
                self._end_task(
                    task, "TERMINATED", "FAILED", task.error, ("RUN_EXECUTION_ERROR", "CLIENT_ERROR")
                )
            elif result.get("ok"):
                task.exit_value = result.get("exit_value")
                task.task_values = result.get("task_values") or {}
                self._end_task(task, "TERMINATED", "SUCCESS", "", ("SUCCESS", "SUCCESS"))
            else:
                task.error = result.get("error")
                task.error_trace = result.get("error_trace")
                task.task_values = result.get("task_values") or {}
                self._end_task(
                    task,
                    "TERMINATED",
                    "FAILED",
                    "Workload failed, see run output for details",
                    ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
                )
        # A task's own new_cluster lives only as long as the task.
        if task.spec.get("new_cluster") is not None and cluster_id:
            with contextlib.suppress(ApiError):  # permanently deleted meanwhile: nothing to stop
                self.clusters.terminate(
                    cluster_id, {"code": "JOB_FINISHED", "type": "SUCCESS", "parameters": {}}
                )

    def _task_cluster(self, run: Run, task: TaskRun) -> str | None:
        spec = task.spec
        if spec.get("existing_cluster_id"):
            self.clusters.ensure_started(spec["existing_cluster_id"])
            self.clusters.wait_running(spec["existing_cluster_id"], 3600, lambda: run.cancel_requested)
            return spec["existing_cluster_id"]
        if spec.get("job_cluster_key"):
            cluster_id = run.job_cluster_ids[spec["job_cluster_key"]]
            self.clusters.wait_running(cluster_id, 3600, lambda: run.cancel_requested)
            return cluster_id
        if spec.get("new_cluster") is not None:
            cluster = self.clusters.create(
                {**spec["new_cluster"], "cluster_name": f"job-{run.job_id or 'submit'}-run-{task.run_id}"},
                source="JOB",
            )
            with self._lock:
                run.owned_clusters.append(cluster.cluster_id)
            self.clusters.wait_running(cluster.cluster_id, 3600, lambda: run.cancel_requested)
            return cluster.cluster_id
        return None  # serverless: no cluster

    def _task_env(self, task_dir: pathlib.Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
        env["AIRBRICKS_EMULATOR"] = "1"
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # leave no __pycache__ in the bundle's source tree
        # Only used if the task touches Spark: a small single-core local session, no UI.
        env["PYSPARK_SUBMIT_ARGS"] = (
            f"--master local[1] --driver-memory {self.spark_driver_memory} "
            "--conf spark.ui.enabled=false --conf spark.sql.shuffle.partitions=1 "
            "--conf spark.default.parallelism=1 --conf spark.driver.host=127.0.0.1 "
            "--conf spark.driver.bindAddress=127.0.0.1 "
            # keep Spark's side files (warehouse, Derby) in the task's own directory, not in the bundle
            f"--conf spark.sql.warehouse.dir={shlex.quote(str(task_dir / 'spark-warehouse'))} "
            f"--conf {shlex.quote('spark.driver.extraJavaOptions=-Dderby.system.home=' + str(task_dir))} "
            "pyspark-shell"
        )
        return env

    def _task_spec(
        self, run: Run, task: TaskRun, mirrors: dict[str, Mirror], task_dir: pathlib.Path
    ) -> dict[str, Any]:
        by_key = {t.task_key: t for t in run.latest}
        context = {
            "job.id": str(run.job_id or ""),
            "job.name": run.run_name,
            "job.run_id": str(run.run_id),
            "run.id": str(run.run_id),
            "job.repair_count": str(len(run.repair_history)),
            "job.start_time.iso_date": time.strftime("%Y-%m-%d", time.gmtime(run.start_time / 1000)),
            "job.start_time.iso_datetime": time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(run.start_time / 1000)
            ),
            "job.start_time.timestamp_ms": str(run.start_time),
            "job.trigger.type": "one_time",
            "task.name": task.task_key,
            "task.run_id": str(task.run_id),
            "task.execution_count": str(task.attempt_number + 1),
            "workspace.id": "1234567890",
            "run_id": str(task.run_id),
            "parent_run_id": str(run.run_id),
            "task_key": task.task_key,
            **{f"job.parameters.{k}": v for k, v in run.job_parameters.items()},
        }
        for other in run.latest:
            for key, value in other.task_values.items():
                context[f"tasks.{other.task_key}.values.{key}"] = (
                    value if isinstance(value, str) else json.dumps(value)
                )
            if other.result_state:
                context[f"tasks.{other.task_key}.run_id"] = str(other.run_id)
                context[f"tasks.{other.task_key}.result_state"] = other.result_state.lower()

        def resolve(value: Any) -> Any:
            if not isinstance(value, str):
                value = json.dumps(value) if isinstance(value, (dict, list)) else str(value)

            def sub(match: re.Match[str]) -> str:
                ref = match.group(1)
                if ref not in context:
                    raise ValueError(f"Task {task.task_key!r}: unknown dynamic value reference {{{{{ref}}}}}")
                return str(context[ref])

            resolved = _REF.sub(sub, value)
            return self.storage.map_value(resolved, mirrors, f"run-{run.run_id}")

        upstream_values = {k: t.task_values for k, t in by_key.items() if t.result_state is not None}
        spec: dict[str, Any] = {
            "task_key": task.task_key,
            "result_file": str(task_dir / "result.json"),
            "workspace_root": str(self.state_dir / "workspace"),
            "upstream_task_values": upstream_values,
        }
        if "notebook_task" in task.spec:
            nb = task.spec["notebook_task"]
            widgets = {k: resolve(v) for k, v in (nb.get("base_parameters") or {}).items()}
            widgets.update({k: resolve(v) for k, v in (run.overriding.get("notebook_params") or {}).items()})
            # Job parameters are pushed down to every notebook task and win over task parameters.
            widgets.update({k: resolve(v) for k, v in run.job_parameters.items()})
            spec.update(kind="notebook", path=nb["notebook_path"], widgets=widgets)
        else:
            py = task.spec["spark_python_task"]
            params = run.overriding.get("python_params") or py.get("parameters") or []
            spec.update(kind="python", path=py["python_file"], argv=[resolve(v) for v in params])
        spec["path"] = self._local_source(spec["path"])
        if not pathlib.Path(spec["path"]).is_file():
            raise FileNotFoundError(f"Task {task.task_key!r}: source file {spec['path']} does not exist")
        return spec

    def _local_source(self, path: str) -> str:
        """A workspace path of a deployed bundle file (``/Workspace/.../.bundle/<name>/<target>/files/src/x``)
        maps to ``<bundle>/src/x``; notebooks may omit ``.py``."""
        candidates = [pathlib.Path(path)]
        if self.bundle_root is not None and "/files/" in path:
            candidates.append(self.bundle_root / path.split("/files/", 1)[1])
        for candidate in candidates:
            for option in (candidate, candidate.with_name(candidate.name + ".py")):
                if option.is_file():
                    return str(option)
        return path

    # ================================================================================================
    # Cancel, delete, repair
    # ================================================================================================
    def _run(self, run_id: Any) -> Run:
        run_id = as_int(run_id, "run_id")
        run = self.runs.get(run_id)
        if run is None:
            raise not_found(f"Run {run_id} does not exist.")
        return run

    def cancel(self, run_id: Any) -> None:
        with self._cond:
            run = self._run(run_id)
            if run.active:
                run.cancel_requested = True
                self._cond.notify_all()

    def cancel_all(self, job_id: Any, all_queued_runs: bool) -> None:
        with self._cond:
            if job_id is not None:
                job_id = self._job(job_id)["job_id"]
            elif not all_queued_runs:
                raise invalid("Either job_id or all_queued_runs must be given")
            for run in self.runs.values():
                if run.active and (job_id is None or run.job_id == job_id):
                    if job_id is None and run.life_cycle_state != "QUEUED":
                        continue
                    run.cancel_requested = True
            self._cond.notify_all()

    def delete_run(self, run_id: Any) -> None:
        with self._cond:
            run = self._run(run_id)
            if run.active:
                raise invalid(f"Run {run.run_id} is still active; cancel it before deleting it")
            del self.runs[run.run_id]
            for task in run.tasks:
                self._task_index.pop(task.run_id, None)

    def repair(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._cond:
            run = self._run(body.get("run_id"))
            if run.active:
                raise invalid(
                    f"Run {run.run_id} is still active; it can be repaired only once it has terminated"
                )
            if body.get("latest_repair_id") is not None and run.repair_history:
                latest = run.repair_history[-1].get("id")
                if latest is not None and int(body["latest_repair_id"]) != latest:
                    raise invalid(
                        f"latest_repair_id {body['latest_repair_id']} is not the latest repair ({latest})"
                    )
            by_key = {t.task_key: t for t in run.latest}
            if body.get("rerun_all_failed_tasks"):
                keys = {t.task_key for t in run.latest if t.result_state != "SUCCESS"}
            else:
                keys = set(body.get("rerun_tasks") or [])
                unknown = sorted(keys - set(by_key))
                if unknown:
                    raise invalid(f"Task(s) {unknown} are not tasks of run {run.run_id}")
                if body.get("rerun_dependent_tasks"):
                    keys |= _dependents(run.settings.get("tasks") or [], keys)
            if not keys:
                raise invalid(
                    "Nothing to repair: give rerun_tasks or rerun_all_failed_tasks with failed tasks"
                )
            if body.get("job_parameters"):
                unknown = sorted(set(body["job_parameters"]) - set(run.job_parameters))
                if unknown:
                    raise invalid(f"Job parameter(s) {unknown} are not defined by job {run.job_id}")
                run.job_parameters.update({k: str(v) for k, v in body["job_parameters"].items()})
            for legacy in ("notebook_params", "python_params"):
                if body.get(legacy):
                    run.overriding[legacy] = body[legacy]
            if not run.repair_history:
                run.repair_history.append(
                    {
                        "type": "ORIGINAL",
                        "start_time": run.start_time,
                        "end_time": run.end_time,
                        "state": self._state_json(run),
                        "status": self._status_json(run),
                        "task_run_ids": [t.run_id for t in run.tasks],
                    }
                )
            repair_id = next(self._ids)
            new_tasks = []
            for old in run.latest:
                if old.task_key not in keys:
                    continue
                fresh = TaskRun(
                    run_id=next(self._ids),
                    task_key=old.task_key,
                    spec=old.spec,
                    attempt_number=old.attempt_number + 1,
                )
                fresh.life_cycle_state = "PENDING"
                run.tasks.append(fresh)
                self._task_index[fresh.run_id] = (run, fresh)
                new_tasks.append(fresh)
            run.repair_history.append(
                {
                    "type": "REPAIR",
                    "id": repair_id,
                    "start_time": now_ms(),
                    "task_run_ids": [t.run_id for t in new_tasks],
                }
            )
            run.cancel_requested = run.timed_out = False
            run.life_cycle_state = "PENDING"
            run.result_state = None
            run.state_message = ""
            run.termination = None
            self._start_thread(run, new_tasks, repair=True)
            return {"repair_id": repair_id}

    # ================================================================================================
    # JSON views
    # ================================================================================================
    def _state_json(self, obj: Run | TaskRun) -> dict[str, Any]:
        state: dict[str, Any] = {
            "life_cycle_state": obj.life_cycle_state,
            "state_message": obj.state_message,
            "user_cancelled_or_timedout": obj.result_state in ("CANCELED", "TIMEDOUT"),
        }
        if obj.result_state and obj.life_cycle_state in ("TERMINATING", *_TERMINAL):
            state["result_state"] = obj.result_state
        if obj.life_cycle_state == "QUEUED":
            state["queue_reason"] = obj.state_message
        return state

    def _status_json(self, obj: Run | TaskRun) -> dict[str, Any]:
        mapping = {
            "QUEUED": "QUEUED",
            "PENDING": "PENDING",
            "BLOCKED": "BLOCKED",
            "RUNNING": "RUNNING",
            "TERMINATING": "TERMINATING",
            "TERMINATED": "TERMINATED",
            "SKIPPED": "TERMINATED",
            "INTERNAL_ERROR": "TERMINATED",
        }
        status: dict[str, Any] = {"state": mapping.get(obj.life_cycle_state, "PENDING")}
        if status["state"] in ("TERMINATED", "TERMINATING") and obj.termination:
            code, type_ = obj.termination
            status["termination_details"] = {"code": code, "type": type_, "message": obj.state_message}
        if obj.life_cycle_state == "QUEUED":
            status["queue_details"] = {"code": "ACTIVE_RUNS_LIMIT_REACHED", "message": obj.state_message}
        return status

    def _url(self, run: Run, run_id: int) -> str:
        return f"{self.base_url}/#job/{run.job_id or 0}/run/{run_id}"

    def _task_json(self, run: Run, task: TaskRun) -> dict[str, Any]:
        body = {k: copy.deepcopy(v) for k, v in task.spec.items()}
        setup = exec_ = 0
        if task.setup_start is not None:
            setup = int(((task.exec_start or time.monotonic()) - task.setup_start) * 1000)
        if task.exec_start is not None:
            exec_ = int(((task.exec_end or time.monotonic()) - task.exec_start) * 1000)
        body.update(
            run_id=task.run_id,
            task_key=task.task_key,
            attempt_number=task.attempt_number,
            state=self._state_json(task),
            status=self._status_json(task),
            start_time=task.start_time,
            end_time=task.end_time,
            setup_duration=setup,
            execution_duration=exec_,
            cleanup_duration=0,
            run_duration=(task.end_time or now_ms()) - task.start_time if task.start_time else 0,
            run_page_url=self._url(run, task.run_id),
        )
        if task.cluster_id:
            body["cluster_instance"] = {"cluster_id": task.cluster_id, "spark_context_id": "0"}
        return body

    def run_json(self, run_id: Any) -> dict[str, Any]:
        with self._lock:
            key = as_int(run_id, "run_id")
            if key in self._task_index:
                # A task run id is a run id too: the provider's workflow operators poll them directly.
                run, task = self._task_index[key]
                return self._task_run_json(run, task)
            return self._run_json(self._run(key), expand_tasks=True)

    def _task_run_json(self, run: Run, task: TaskRun) -> dict[str, Any]:
        body = self._task_json(run, task)
        body.update(
            job_id=run.job_id,
            run_name=run.run_name,
            number_in_job=run.number_in_job,
            parent_run_id=run.run_id,
            original_attempt_run_id=task.run_id,
            run_type=run.run_type,
            trigger="ONE_TIME",
            format="SINGLE_TASK",
            creator_user_name="emulator@localhost",
        )
        body["tasks"] = [self._task_json(run, task)]
        return body

    def _run_json(self, run: Run, expand_tasks: bool) -> dict[str, Any]:
        tasks = [self._task_json(run, t) for t in run.tasks]
        body: dict[str, Any] = {
            "job_id": run.job_id,
            "run_id": run.run_id,
            "original_attempt_run_id": run.run_id,
            "number_in_job": run.number_in_job,
            "creator_user_name": "emulator@localhost",
            "run_name": run.run_name,
            "run_type": run.run_type,
            "trigger": "ONE_TIME",
            "format": "MULTI_TASK",
            "state": self._state_json(run),
            "status": self._status_json(run),
            "start_time": run.start_time or run.created,
            "end_time": run.end_time if not run.active else 0,
            "setup_duration": run.setup_duration,
            "execution_duration": sum(t["execution_duration"] for t in tasks),
            "cleanup_duration": 0,
            "run_duration": ((run.end_time if not run.active else now_ms()) - run.start_time)
            if run.start_time
            else 0,
            "run_page_url": self._url(run, run.run_id),
            "attempt_number": 0,
            "job_clusters": copy.deepcopy(run.settings.get("job_clusters") or []),
            "has_more": False,
        }
        if run.job_id is None:
            body.pop("job_id")
        if expand_tasks:
            body["tasks"] = tasks
        if run.settings.get("parameters") is not None or run.job_parameters:
            declared = {p["name"]: p.get("default") for p in run.settings.get("parameters") or []}
            body["job_parameters"] = [
                {"name": k, "default": declared.get(k), "value": v} for k, v in run.job_parameters.items()
            ]
        if run.overriding:
            body["overriding_parameters"] = copy.deepcopy(run.overriding)
        if run.repair_history:
            history = copy.deepcopy(run.repair_history)
            if history[-1].get("state") is None:
                history[-1]["state"] = self._state_json(run)
                history[-1]["status"] = self._status_json(run)
            body["repair_history"] = history
        clusters = {t.cluster_id for t in run.latest if t.cluster_id}
        if len(clusters) == 1:
            body["cluster_instance"] = {"cluster_id": clusters.pop(), "spark_context_id": "0"}
        return body

    def get_output(self, run_id: Any) -> dict[str, Any]:
        with self._lock:
            key = as_int(run_id, "run_id")
            if key in self._task_index:
                run, task = self._task_index[key]
            else:
                run = self._run(key)
                if len(run.latest) != 1:
                    raise invalid(
                        "Retrieving the output of runs with multiple tasks is not supported. "
                        "Please retrieve the output of each individual task run instead."
                    )
                task = run.latest[0]
            metadata = self._task_json(run, task)
            metadata.update(job_id=run.job_id, run_name=run.run_name, number_in_job=run.number_in_job)
            out: dict[str, Any] = {"metadata": metadata}
            if "notebook_task" in task.spec:
                if task.exit_value is not None or task.done:
                    result = task.exit_value
                    out["notebook_output"] = (
                        {"result": result[:_OUTPUT_LIMIT], "truncated": len(result) > _OUTPUT_LIMIT}
                        if result is not None
                        else {}
                    )
            elif task.logs is not None:
                out["logs"] = task.logs
                out["logs_truncated"] = task.logs_truncated
            if task.error:
                out["error"] = task.error
            if task.error_trace:
                out["error_trace"] = task.error_trace
            return out

    def list_runs(self, query: dict[str, Any]) -> dict[str, Any]:
        active_only, completed_only = query["active_only"], query["completed_only"]
        if active_only and completed_only:
            raise invalid("active_only and completed_only cannot both be true")
        limit = query["limit"]
        if not 1 <= limit <= 25:
            raise invalid(f"limit must be between 1 and 25, got {limit}")
        with self._lock:
            runs = sorted(self.runs.values(), key=lambda r: -r.run_id)
            if query.get("job_id") is not None:
                job_id = int(query["job_id"])
                runs = [r for r in runs if r.job_id == job_id]
            if active_only:
                runs = [r for r in runs if r.active]
            if completed_only:
                runs = [r for r in runs if not r.active]
            if query.get("run_type"):
                runs = [r for r in runs if r.run_type == query["run_type"]]
            if query.get("start_time_from"):
                runs = [r for r in runs if (r.start_time or r.created) >= int(query["start_time_from"])]
            if query.get("start_time_to"):
                runs = [r for r in runs if (r.start_time or r.created) <= int(query["start_time_to"])]
            offset = query["offset"]
            page = [self._run_json(r, query["expand_tasks"]) for r in runs[offset : offset + limit]]
        out: dict[str, Any] = {"runs": page, "has_more": offset + limit < len(runs)}
        if out["has_more"]:
            out["next_page_token"] = encode_token(offset + limit)
        if offset > 0:
            out["prev_page_token"] = encode_token(max(0, offset - limit))
        return out

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "jobs": [
                    {"job_id": j["job_id"], "name": j["settings"].get("name")} for j in self.jobs.values()
                ],
                "runs": [
                    {
                        "run_id": r.run_id,
                        "job_id": r.job_id,
                        "life_cycle_state": r.life_cycle_state,
                        "result_state": r.result_state,
                        "tasks": {
                            t.task_key: {
                                "run_id": t.run_id,
                                "life_cycle_state": t.life_cycle_state,
                                "result_state": t.result_state,
                                "pid": t.process.pid if t.process else None,
                            }
                            for t in r.latest
                        },
                    }
                    for r in self.runs.values()
                ],
            }

    def shutdown(self, reset: bool = False) -> None:
        """Cancel every active run and wait for its processes; with ``reset`` forget jobs and runs."""
        with self._cond:
            for run in self.runs.values():
                if run.active:
                    run.cancel_requested = True
            self._cond.notify_all()
        for thread in list(self._threads):
            thread.join(timeout=15)
        if reset:
            with self._lock:
                self.jobs.clear()
                self.runs.clear()
                self._task_index.clear()
                self._idempotency.clear()


def _cluster_message(failed: ClusterFailed) -> str:
    code = failed.reason.get("code")
    return f"Cluster {failed.cluster_id} terminated. Reason: {code}. {failed.message}".strip()


_SKIP_MESSAGES = {
    "UPSTREAM_FAILED": "Upstream task(s) failed.",
    "UPSTREAM_CANCELED": "Upstream task(s) were canceled.",
}


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the task's process group now and SIGKILL it after a grace period, without blocking."""
    try:
        pgid = os.getpgid(proc.pid)
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def finish() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)

    timer = threading.Timer(3.0, finish)
    timer.daemon = True
    timer.start()


def _check_acyclic(tasks: list[dict[str, Any]]) -> None:
    graph = {t["task_key"]: [d.get("task_key") for d in t.get("depends_on") or []] for t in tasks}
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(key: str, path: list[str]) -> None:
        if key in done:
            return
        if key in visiting:
            raise invalid(f"Tasks form a cycle: {' -> '.join([*path, key])}")
        visiting.add(key)
        for dep in graph.get(key, []):
            visit(dep, [*path, key])
        visiting.discard(key)
        done.add(key)

    for key in graph:
        visit(key, [])


def _dependents(tasks: list[dict[str, Any]], keys: set[str]) -> set[str]:
    out: set[str] = set()
    changed = True
    while changed:
        changed = False
        for task in tasks:
            deps = {d["task_key"] for d in task.get("depends_on") or []}
            if task["task_key"] not in out | keys and deps & (out | keys):
                out.add(task["task_key"])
                changed = True
    return out
