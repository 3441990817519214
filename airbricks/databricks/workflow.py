"""Tasks of a ``DatabricksWorkflowTaskGroup`` that can be repaired from Airflow 3 by clearing them.

Inside the provider's ``DatabricksWorkflowTaskGroup`` the ``launch`` task starts ONE Databricks job run and
each notebook task only follows its own Databricks task in that run. When a Databricks task fails, a new
try of its Airflow task (an automatic retry or a clear) follows the same failed attempt again and fails
again: the provider's repair lives in a Flask view and two extra links that it switches off on Airflow 3
(apache/airflow#52280, #58826). :class:`AirbricksDatabricksNotebookOperator` repairs the run instead.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.providers.databricks.operators.databricks import DatabricksNotebookOperator
from airflow.providers.databricks.operators.databricks_workflow import DatabricksWorkflowTaskGroup

from airbricks.databricks.hooks import DatabricksHookMixin
from airbricks.databricks.repair import (
    current_attempts,
    get_run_with_history,
    needs_repair,
    repair_failed_tasks,
    run_state,
    wait_until_terminal,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

LAUNCH_TASK_LABEL = "launch"


class AirbricksDatabricksNotebookOperator(DatabricksHookMixin, DatabricksNotebookOperator):
    """The provider's ``DatabricksNotebookOperator``; inside a ``DatabricksWorkflowTaskGroup`` a new try of
    a task whose Databricks task failed **repairs** the workflow run.

    Every argument of the provider's operator is accepted and behaves the same. In a workflow group, when
    this is not the task's first try (an automatic retry, or the failed task cleared in the UI, CLI or REST
    API) and its Databricks task ended failed, it calls ``runs/repair`` on the group's run with the latest
    repair id: only the failed Databricks tasks and the tasks downstream of them re-run, in the same run
    (same run page), on a new job cluster. Then it follows its new attempt as usual. Clear the failed task
    *with its downstream tasks* (the UI's default) so Airflow follows the re-run downstream tasks too.
    Clearing the group's ``launch`` task still starts a whole new run.

    Outside a workflow group it is exactly the provider's operator (a one-time ``runs/submit`` run cannot
    be repaired).
    """

    def _workflow_group(self) -> DatabricksWorkflowTaskGroup | None:
        group = self.task_group
        while group is not None:
            if isinstance(group, DatabricksWorkflowTaskGroup):
                return group
            group = group.parent_group
        return None

    def _launch_metadata(self, context: Context, group: DatabricksWorkflowTaskGroup) -> dict[str, Any]:
        """``{"conn_id", "job_id", "run_id"}`` of the group's run (the launch task's return value)."""
        if self.workflow_run_metadata:
            return dict(self.workflow_run_metadata)
        launch_task_id = group.child_id(LAUNCH_TASK_LABEL)
        metadata = context["ti"].xcom_pull(task_ids=launch_task_id)
        if not metadata or "run_id" not in metadata:
            raise ValueError(
                f"{launch_task_id} pushed no workflow run metadata (got {metadata!r}): it must succeed first"
            )
        return dict(metadata)

    def execute(self, context: Context) -> None:
        group = self._workflow_group()
        if group is not None:
            metadata = self._launch_metadata(context, group)
            # The launch task's connection is the one the run lives in (the provider switches to it too).
            self.databricks_conn_id = metadata["conn_id"]
            run_id = int(metadata["run_id"])
            if int(getattr(context["ti"], "try_number", 1) or 1) > 1:
                self._repair_if_failed(run_id)
            self._wait_for_current_attempt(run_id)
        return super().execute(context)

    def _repair_if_failed(self, run_id: int) -> None:
        run = get_run_with_history(self._hook, run_id)
        mine = current_attempts(run).get(self.databricks_task_key)
        if mine is None or not needs_repair(mine):
            return  # still running, re-run already by a sibling's repair, or succeeded
        if not run_state(run).is_terminal:
            # Other tasks of the run are still going; Databricks repairs only finished runs.
            run = wait_until_terminal(
                self._hook, run_id, polling_period_seconds=self.polling_period_seconds, log=self.log
            )
            mine = current_attempts(run)[self.databricks_task_key]
            if not needs_repair(mine):
                return
        self.log.warning(
            "Databricks task %s (%s) of run %s ended %s: repairing the run instead of failing again",
            self.databricks_task_key,
            self.task_id,
            run_id,
            (mine.get("state") or {}).get("result_state"),
        )
        repair_failed_tasks(self._hook, run, log=self.log)

    def _wait_for_current_attempt(self, run_id: int) -> None:
        """Wait until this task's newest attempt has started before the provider picks an attempt.

        The provider follows the attempt with the latest ``start_time``; a repaired attempt that is still
        pending has none yet, and the provider would follow the old failed one.
        """
        while True:
            attempts = [
                t
                for t in get_run_with_history(self._hook, run_id).get("tasks") or []
                if t.get("task_key") == self.databricks_task_key
            ]
            if len(attempts) < 2:
                return
            newest = max(attempts, key=lambda t: int(t.get("run_id", 0)))
            if int(newest.get("start_time") or 0) >= max(int(t.get("start_time") or 0) for t in attempts):
                return
            self.log.info(
                "Waiting for the repaired attempt %s of Databricks task %s to start",
                newest.get("run_id"),
                self.databricks_task_key,
            )
            time.sleep(self.polling_period_seconds)
