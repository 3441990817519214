"""JSON views of runs and task runs: the bodies of runs/get, runs/list and runs/get-output."""

from __future__ import annotations

import copy
import time
from typing import Any

from airbricks.emulator.runs import TERMINAL, Run, TaskRun, now_ms

OUTPUT_LIMIT = 5 * 1024 * 1024  # Databricks truncates notebook results and logs at 5 MB


def state_json(obj: Run | TaskRun) -> dict[str, Any]:
    state: dict[str, Any] = {
        "life_cycle_state": obj.life_cycle_state,
        "state_message": obj.state_message,
        "user_cancelled_or_timedout": obj.result_state in ("CANCELED", "TIMEDOUT"),
    }
    if obj.result_state and obj.life_cycle_state in ("TERMINATING", *TERMINAL):
        state["result_state"] = obj.result_state
    if obj.life_cycle_state == "QUEUED":
        state["queue_reason"] = obj.state_message
    return state


def status_json(obj: Run | TaskRun) -> dict[str, Any]:
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


def original_history_item(run: Run) -> dict[str, Any]:
    """The ``ORIGINAL`` entry of a run's ``repair_history`` (the run before any repair)."""
    return {
        "type": "ORIGINAL",
        "start_time": run.start_time,
        "end_time": run.end_time,
        "state": state_json(run),
        "status": status_json(run),
        "task_run_ids": [t.run_id for t in run.tasks],
    }


def _url(run: Run, run_id: int, base_url: str) -> str:
    return f"{base_url}/#job/{run.job_id or 0}/run/{run_id}"


def task_json(run: Run, task: TaskRun, base_url: str) -> dict[str, Any]:
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
        state=state_json(task),
        status=status_json(task),
        start_time=task.start_time,
        end_time=task.end_time,
        setup_duration=setup,
        execution_duration=exec_,
        cleanup_duration=0,
        run_duration=(task.end_time or now_ms()) - task.start_time if task.start_time else 0,
        run_page_url=_url(run, task.run_id, base_url),
    )
    if task.cluster_id:
        body["cluster_instance"] = {"cluster_id": task.cluster_id, "spark_context_id": "0"}
    return body


def task_run_json(run: Run, task: TaskRun, base_url: str) -> dict[str, Any]:
    body = task_json(run, task, base_url)
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
    body["tasks"] = [task_json(run, task, base_url)]
    return body


def run_json(run: Run, expand_tasks: bool, base_url: str) -> dict[str, Any]:
    tasks = [task_json(run, t, base_url) for t in run.tasks]
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
        "state": state_json(run),
        "status": status_json(run),
        "start_time": run.start_time or run.created,
        "end_time": run.end_time if not run.active else 0,
        "setup_duration": run.setup_duration,
        "execution_duration": sum(t["execution_duration"] for t in tasks),
        "cleanup_duration": 0,
        "run_duration": ((run.end_time if not run.active else now_ms()) - run.start_time)
        if run.start_time
        else 0,
        "run_page_url": _url(run, run.run_id, base_url),
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
    # The ORIGINAL entry is there before any repair too (the provider's get_latest_repair_id needs it).
    history = copy.deepcopy(run.repair_history) or [original_history_item(run)]
    if history[-1].get("state") is None:
        history[-1]["state"] = state_json(run)
        history[-1]["status"] = status_json(run)
    body["repair_history"] = history
    clusters = {t.cluster_id for t in run.latest if t.cluster_id}
    if len(clusters) == 1:
        body["cluster_instance"] = {"cluster_id": clusters.pop(), "spark_context_id": "0"}
    return body


def output_json(run: Run, task: TaskRun, base_url: str) -> dict[str, Any]:
    """runs/get-output of one task attempt."""
    metadata = task_json(run, task, base_url)
    metadata.update(job_id=run.job_id, run_name=run.run_name, number_in_job=run.number_in_job)
    out: dict[str, Any] = {"metadata": metadata}
    if "notebook_task" in task.spec:
        if task.exit_value is not None or task.done:
            result = task.exit_value
            out["notebook_output"] = (
                {"result": result[:OUTPUT_LIMIT], "truncated": len(result) > OUTPUT_LIMIT}
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
