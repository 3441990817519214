"""runs/repair: rerun chosen tasks of a terminated run as new attempts, with Databricks' repair history."""

from __future__ import annotations

from typing import Any

from airbricks.emulator.errors import invalid
from airbricks.emulator.job_store import dependents
from airbricks.emulator.runs import RunStore, now_ms
from airbricks.emulator.scheduler import RunScheduler
from airbricks.emulator.views import original_history_item


def repair_run(store: RunStore, scheduler: RunScheduler, body: dict[str, Any]) -> dict[str, Any]:
    """runs/repair: new attempts of the chosen tasks of a terminated run, run by the scheduler."""
    with store.cond:
        run = store.get(body.get("run_id"))
        if run.active:
            raise invalid(f"Run {run.run_id} is still active; it can be repaired only once it has terminated")
        latest = run.repair_history[-1].get("id") if run.repair_history else None
        # Databricks: not needed for the first repair of a run, required (and must match) after that.
        if latest is not None and body.get("latest_repair_id") is None:
            raise invalid(f"Run {run.run_id} has been repaired: latest_repair_id ({latest}) is required")
        if latest is not None and int(body["latest_repair_id"]) != latest:
            raise invalid(f"latest_repair_id {body['latest_repair_id']} is not the latest repair ({latest})")
        by_key = {t.task_key: t for t in run.latest}
        if body.get("rerun_all_failed_tasks"):
            keys = {t.task_key for t in run.latest if t.result_state != "SUCCESS"}
        else:
            keys = set(body.get("rerun_tasks") or [])
            unknown = sorted(keys - set(by_key))
            if unknown:
                raise invalid(f"Task(s) {unknown} are not tasks of run {run.run_id}")
        if body.get("rerun_dependent_tasks"):  # with rerun_tasks or with rerun_all_failed_tasks
            keys |= dependents(run.settings.get("tasks") or [], keys)
        if not keys:
            raise invalid("Nothing to repair: give rerun_tasks or rerun_all_failed_tasks with failed tasks")
        if body.get("job_parameters"):
            unknown = sorted(set(body["job_parameters"]) - set(run.job_parameters))
            if unknown:
                raise invalid(f"Job parameter(s) {unknown} are not defined by job {run.job_id}")
            run.job_parameters.update({k: str(v) for k, v in body["job_parameters"].items()})
        for legacy in ("notebook_params", "python_params"):
            if body.get(legacy):
                run.overriding[legacy] = body[legacy]
        if not run.repair_history:
            run.repair_history.append(original_history_item(run))
        repair_id = store.next_id()
        new_tasks = []
        for old in run.latest:
            if old.task_key not in keys:
                continue
            new_tasks.append(store.new_attempt(run, old, "PENDING"))
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
        scheduler.start(run, new_tasks, repair=True)
        return {"repair_id": repair_id}
