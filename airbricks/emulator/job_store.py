"""The job store: job settings as Databricks validates them; jobs/create, get, reset, update, list."""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable
from typing import Any

from airbricks.emulator.clusters import ClusterManager
from airbricks.emulator.errors import as_int, coerce_int, invalid, not_found
from airbricks.emulator.runs import encode_token, now_ms

TASK_TYPES = ("notebook_task", "spark_python_task")
UNSUPPORTED_TASK_TYPES = (
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


class JobStore:
    """Jobs by id, validated on every write.

    :param clusters: to check that an ``existing_cluster_id`` exists.
    :param next_id: the workspace's id counter (shared with runs).
    """

    def __init__(self, clusters: ClusterManager, next_id: Callable[[], int]):
        self.clusters = clusters
        self._next_id = next_id
        self._lock = threading.RLock()
        self.jobs: dict[int, dict[str, Any]] = {}
        self._job_numbers: dict[int, itertools.count[int]] = {}

    def next_number(self, job_id: int) -> int:
        """``number_in_job`` of the job's next run."""
        with self._lock:
            return next(self._job_numbers.setdefault(job_id, itertools.count(1)))

    def clear(self) -> None:
        with self._lock:
            self.jobs.clear()

    def validate_settings(self, settings: Any) -> dict[str, Any]:
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
        check_acyclic(tasks)
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
        types = [t for t in (*TASK_TYPES, *UNSUPPORTED_TASK_TYPES) if t in task]
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
        settings = self.validate_settings(settings)
        settings.setdefault("name", "Untitled")
        settings.setdefault("max_concurrent_runs", 1)
        settings.setdefault("format", "MULTI_TASK")
        with self._lock:
            job_id = self._next_id()
            self.jobs[job_id] = {
                "job_id": job_id,
                "created_time": now_ms(),
                "creator_user_name": "emulator@localhost",
                "run_as_user_name": "emulator@localhost",
                "settings": settings,
            }
            self._job_numbers[job_id] = itertools.count(1)
        return job_id

    def job(self, job_id: Any) -> dict[str, Any]:
        job_id = as_int(job_id, "job_id")
        job = self.jobs.get(job_id)
        if job is None:
            raise not_found(f"Job {job_id} does not exist.")
        return job

    def get_job(self, job_id: Any) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.job(job_id))

    def reset_job(self, job_id: Any, new_settings: Any) -> None:
        settings = self.validate_settings(new_settings)
        settings.setdefault("max_concurrent_runs", 1)
        with self._lock:
            self.job(job_id)["settings"] = settings

    def update_job(self, job_id: Any, new_settings: Any, fields_to_remove: list[str] | None) -> None:
        with self._lock:
            job = self.job(job_id)
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
            job["settings"] = self.validate_settings(merged)

    def delete_job(self, job_id: Any) -> None:
        with self._lock:
            job = self.job(job_id)
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


def check_acyclic(tasks: list[dict[str, Any]]) -> None:
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


def dependents(tasks: list[dict[str, Any]], keys: set[str]) -> set[str]:
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
