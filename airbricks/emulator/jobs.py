"""Jobs and runs behind the REST API: one facade over the job store, run store, scheduler and task runner.

Module map (each one readable on its own):

* :mod:`~airbricks.emulator.job_store`: job settings, validated; jobs/create, get, reset, update, list;
* :mod:`~airbricks.emulator.runs`: run and task-attempt records, ids, the shared condition;
* :mod:`~airbricks.emulator.scheduler`: a run's life cycle (admission, job clusters, task DAG, retries);
* :mod:`~airbricks.emulator.task_runner` and :mod:`~airbricks.emulator.task_spec`: one attempt as a process;
* :mod:`~airbricks.emulator.repair`: runs/repair;
* :mod:`~airbricks.emulator.views`: the JSON bodies of runs/get, runs/list, runs/get-output.
"""

from __future__ import annotations

import copy
import pathlib
from typing import Any

from airbricks.emulator import views
from airbricks.emulator.clusters import ClusterManager
from airbricks.emulator.errors import as_int, invalid
from airbricks.emulator.faults import Faults
from airbricks.emulator.job_store import TASK_TYPES, UNSUPPORTED_TASK_TYPES, JobStore
from airbricks.emulator.repair import repair_run
from airbricks.emulator.runs import Run, RunStore, TaskRun, encode_token
from airbricks.emulator.scheduler import RunScheduler
from airbricks.emulator.storage import StorageMapper
from airbricks.emulator.task_runner import TaskRunner


class JobsService:
    """In-memory jobs and runs, executing tasks for real.

    :param clusters: cluster manager (job clusters and new clusters are created there).
    :param faults: fault registry.
    :param state_dir: where run logs, specs and results are written.
    :param storage: s3:// parameter mapping.
    :param base_url: public URL of the server, for ``run_page_url``.
    :param spark_driver_memory: driver memory of a task's local Spark session.
    :param retry_interval_cap: upper bound (seconds) of ``min_retry_interval_millis``; None keeps the job's.
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
        self.base_url = base_url
        self._store = RunStore()
        self.job_store = JobStore(clusters, self._store.next_id)
        self.runner = TaskRunner(self._store, clusters, faults, state_dir, storage, spark_driver_memory)
        self.scheduler = RunScheduler(self._store, clusters, faults, self.runner, retry_interval_cap)

    @property
    def bundle_root(self) -> pathlib.Path | None:
        return self.runner.bundle_root

    @bundle_root.setter
    def bundle_root(self, root: pathlib.Path | None) -> None:
        self.runner.bundle_root = root

    @property
    def runs(self) -> dict[int, Run]:
        return self._store.runs

    @property
    def jobs(self) -> dict[int, dict[str, Any]]:
        return self.job_store.jobs

    # -- jobs ---------------------------------------------------------------------------------------------
    def create_job(self, settings: dict[str, Any]) -> int:
        return self.job_store.create_job(settings)

    def get_job(self, job_id: Any) -> dict[str, Any]:
        return self.job_store.get_job(job_id)

    def reset_job(self, job_id: Any, new_settings: Any) -> None:
        self.job_store.reset_job(job_id, new_settings)

    def update_job(self, job_id: Any, new_settings: Any, fields_to_remove: list[str] | None) -> None:
        self.job_store.update_job(job_id, new_settings, fields_to_remove)

    def delete_job(self, job_id: Any) -> None:
        self.job_store.delete_job(job_id)

    def list_jobs(self, name: str | None, limit: int, offset: int, expand_tasks: bool) -> dict[str, Any]:
        return self.job_store.list_jobs(name, limit, offset, expand_tasks)

    def find_job_by_name(self, name: str) -> int | None:
        return self.job_store.find_job_by_name(name)

    # -- starting runs ------------------------------------------------------------------------------------
    def run_now(self, body: dict[str, Any]) -> dict[str, Any]:
        token = body.get("idempotency_token")
        run = self._store.by_token(token)
        if run is not None:
            return {"run_id": run.run_id, "number_in_job": run.number_in_job}
        job = self.job_store.get_job(body.get("job_id"))
        settings = job["settings"]
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
        run = self._store.by_token(token)
        if run is not None:
            return {"run_id": run.run_id}
        settings = copy.deepcopy(body)
        if not settings.get("tasks"):
            # Legacy single-task shape (notebook_task / new_cluster at the top level).
            task_fields = {
                k: settings.pop(k)
                for k in (
                    *TASK_TYPES,
                    *UNSUPPORTED_TASK_TYPES,
                    "new_cluster",
                    "existing_cluster_id",
                    "libraries",
                )
                if k in settings
            }
            if not any(t in task_fields for t in (*TASK_TYPES, *UNSUPPORTED_TASK_TYPES)):
                raise invalid("runs/submit needs 'tasks' (or a single task type such as notebook_task)")
            settings["tasks"] = [{"task_key": settings.get("run_name") or "task", **task_fields}]
        settings = self.job_store.validate_settings(settings)
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
        with self._store.lock:
            run_id = self._store.next_id()
            number = self.job_store.next_number(job_id) if job_id is not None else run_id
            tasks = [
                TaskRun(run_id=self._store.next_id(), task_key=t["task_key"], spec=t)
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
            self._store.add(run, token)
            self.scheduler.start(run, tasks, repair=False)
        return run

    # -- cancel, delete, repair ---------------------------------------------------------------------------
    def cancel(self, run_id: Any) -> None:
        with self._store.cond:
            run = self._store.get(run_id)
            if run.active:
                run.cancel_requested = True
                self._store.cond.notify_all()

    def cancel_all(self, job_id: Any, all_queued_runs: bool) -> None:
        with self._store.cond:
            if job_id is not None:
                job_id = self.job_store.job(job_id)["job_id"]
            elif not all_queued_runs:
                raise invalid("Either job_id or all_queued_runs must be given")
            for run in self._store.runs.values():
                if run.active and (job_id is None or run.job_id == job_id):
                    if job_id is None and run.life_cycle_state != "QUEUED":
                        continue
                    run.cancel_requested = True
            self._store.cond.notify_all()

    def delete_run(self, run_id: Any) -> None:
        with self._store.cond:
            run = self._store.get(run_id)
            if run.active:
                raise invalid(f"Run {run.run_id} is still active; cancel it before deleting it")
            self._store.remove(run)

    def repair(self, body: dict[str, Any]) -> dict[str, Any]:
        return repair_run(self._store, self.scheduler, body)

    # -- reading runs -------------------------------------------------------------------------------------
    def run_json(self, run_id: Any) -> dict[str, Any]:
        with self._store.lock:
            key = as_int(run_id, "run_id")
            if key in self._store.task_index:
                # A task run id is a run id too: the provider's workflow operators poll them directly.
                run, task = self._store.task_index[key]
                return views.task_run_json(run, task, self.base_url)
            return views.run_json(self._store.get(key), expand_tasks=True, base_url=self.base_url)

    def get_output(self, run_id: Any) -> dict[str, Any]:
        with self._store.lock:
            key = as_int(run_id, "run_id")
            if key in self._store.task_index:
                run, task = self._store.task_index[key]
            else:
                run = self._store.get(key)
                if len(run.latest) != 1:
                    raise invalid(
                        "Retrieving the output of runs with multiple tasks is not supported. "
                        "Please retrieve the output of each individual task run instead."
                    )
                task = run.latest[0]
            return views.output_json(run, task, self.base_url)

    def list_runs(self, query: dict[str, Any]) -> dict[str, Any]:
        active_only, completed_only = query["active_only"], query["completed_only"]
        if active_only and completed_only:
            raise invalid("active_only and completed_only cannot both be true")
        limit = query["limit"]
        if not 1 <= limit <= 25:
            raise invalid(f"limit must be between 1 and 25, got {limit}")
        with self._store.lock:
            runs = sorted(self._store.runs.values(), key=lambda r: -r.run_id)
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
            page = [
                views.run_json(r, query["expand_tasks"], self.base_url) for r in runs[offset : offset + limit]
            ]
        out: dict[str, Any] = {"runs": page, "has_more": offset + limit < len(runs)}
        if out["has_more"]:
            out["next_page_token"] = encode_token(offset + limit)
        if offset > 0:
            out["prev_page_token"] = encode_token(max(0, offset - limit))
        return out

    def snapshot(self) -> dict[str, Any]:
        with self._store.lock:
            return {
                "jobs": [
                    {"job_id": j["job_id"], "name": j["settings"].get("name")}
                    for j in self.job_store.jobs.values()
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
                    for r in self._store.runs.values()
                ],
            }

    def shutdown(self, reset: bool = False) -> None:
        """Cancel every active run and wait for its processes; with ``reset`` forget jobs and runs."""
        with self._store.cond:
            for run in self._store.runs.values():
                if run.active:
                    run.cancel_requested = True
            self._store.cond.notify_all()
        self.scheduler.join(timeout=15)
        if reset:
            self.job_store.clear()
            self._store.clear()
