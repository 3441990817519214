"""Repair a failed multi-task Databricks run (``runs/repair``) when Airflow re-runs the task that follows it.

Databricks can re-run only the failed tasks of a finished job run, and their downstream tasks, inside the
same run (same run id, same run page, new job cluster): ``POST /api/2.2/jobs/runs/repair``. Every repair
after the first must name the latest repair (``latest_repair_id``), so two repairs never race.

The provider's own repair path does not work on Airflow 3 (see docs/DATABRICKS.md, "Repairing failed
tasks"): its "Repair" extra links and their Flask view are switched off there (apache/airflow#52280,
#58826), and a cleared workflow task just watches its failed Databricks attempt again and fails again.
The operators of :mod:`airbricks.databricks.operators` call :func:`repair_failed_tasks` instead, from a
new try of the Airflow task (an automatic retry or a clear), using only public hook methods.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.providers.databricks.hooks.databricks import RunState

if TYPE_CHECKING:
    from airbricks.databricks.hooks import AirbricksDatabricksHook

GET_RUN = "2.2/jobs/runs/get"
# Result states of a task that a repair re-runs: it failed, or never ran because an upstream task failed.
REPAIRABLE_RESULT_STATES = frozenset(
    {
        "FAILED",
        "TIMEDOUT",
        "CANCELED",
        "UPSTREAM_FAILED",
        "UPSTREAM_CANCELED",
        "MAXIMUM_CONCURRENT_RUNS_REACHED",
    }
)


def get_run_with_history(hook: AirbricksDatabricksHook, run_id: int) -> dict[str, Any]:
    """``runs/get`` with ``include_history``: every attempt of every task plus ``repair_history``.

    (The provider's ``DatabricksHook.get_run`` takes no ``include_history``; its ``get_latest_repair_id``
    reads the history but returns only the id.)
    """
    return hook.call_json("GET", GET_RUN, query={"run_id": run_id, "include_history": "true"})


def latest_repair_id(run: dict[str, Any]) -> int | None:
    """Id of the latest repair of ``run`` (``None`` before the first repair: the ORIGINAL entry has none)."""
    repairs = [item for item in run.get("repair_history") or [] if item.get("type") == "REPAIR"]
    return int(repairs[-1]["id"]) if repairs else None


def current_attempts(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The newest attempt of each task of ``run``, by ``task_key``.

    ``tasks`` lists every attempt (retries and repairs add entries with the same ``task_key``). The newest
    is the one with the highest task run id: ids are allocated when the attempt is created, so a repaired
    attempt that has not started yet (``start_time`` 0) is still recognised as the current one.
    """
    newest: dict[str, dict[str, Any]] = {}
    for task in run.get("tasks") or []:
        key = task.get("task_key")
        if key is None:
            continue
        if key not in newest or int(task.get("run_id", 0)) > int(newest[key].get("run_id", 0)):
            newest[key] = task
    return newest


def needs_repair(task: dict[str, Any]) -> bool:
    """Whether a task attempt ended failed (or was never run because an upstream task failed)."""
    state = task.get("state") or {}
    return state.get("life_cycle_state") in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR") and (
        state.get("result_state") in REPAIRABLE_RESULT_STATES
        or state.get("life_cycle_state") == "INTERNAL_ERROR"
    )


def run_state(run: dict[str, Any]) -> RunState:
    return RunState(**run["state"])


def repair_failed_tasks(
    hook: AirbricksDatabricksHook,
    run: dict[str, Any],
    *,
    job_parameters: dict[str, Any] | None = None,
    log: Any,
) -> int:
    """Re-run every failed task of the finished ``run`` and every task downstream of one, in the same run.

    :param run: the run as returned by :func:`get_run_with_history` (must be terminal).
    :param job_parameters: job parameters for the repaired tasks (override the run's; ``None`` keeps them).
    :return: the new repair id.
    """
    body: dict[str, Any] = {
        "run_id": run["run_id"],
        "rerun_all_failed_tasks": True,
        # Also re-run tasks downstream of a failed one that Databricks may not count as failed.
        "rerun_dependent_tasks": True,
    }
    previous = latest_repair_id(run)
    if previous is not None:
        body["latest_repair_id"] = previous
    if job_parameters:
        body["job_parameters"] = job_parameters
    failed = sorted(key for key, task in current_attempts(run).items() if needs_repair(task))
    repair_id = hook.repair_run(body)
    log.warning(
        "Repairing Databricks run %s (repair %s after %s): re-running %s and their downstream tasks. %s",
        run["run_id"],
        repair_id,
        previous if previous is not None else "the original run",
        failed,
        run.get("run_page_url", ""),
    )
    return repair_id


def wait_until_terminal(
    hook: AirbricksDatabricksHook, run_id: int, *, polling_period_seconds: float, log: Any
) -> dict[str, Any]:
    """Poll ``run_id`` until it has finished (a repair is refused while the run is active)."""
    while True:
        run = get_run_with_history(hook, run_id)
        state = run_state(run)
        if state.is_terminal:
            return run
        log.info("Databricks run %s is %s; waiting for it to finish before repairing it", run_id, state)
        time.sleep(polling_period_seconds)
