"""Helpers for running this repo's Databricks DAGs with ``dag.test()`` and reading the outcome."""

from __future__ import annotations

import pathlib
import runpy
from datetime import timedelta
from typing import Any

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DAGS = REPO_ROOT / "dags"
OPS_BUNDLE = pathlib.Path(__file__).resolve().parent / "ops_bundle"


def load_dag(file_name: str, dag_id: str, *, retries: int | None = None) -> Any:
    """Parse ``dags/<file_name>`` now (so environment set by the test applies) and return one DAG.

    :param retries: override every task's retries (``retry_delay`` 1 s) so failure tests do not wait
        minutes for the production retry delay.
    """
    from airflow.sdk import DAG

    namespace = runpy.run_path(str(DAGS / file_name))
    dags = {v.dag_id: v for v in namespace.values() if isinstance(v, DAG)}
    dag = dags[dag_id]
    if retries is not None:
        for task in dag.tasks:
            task.retries = retries
            task.retry_delay = timedelta(seconds=1)
            task.retry_exponential_backoff = False
    # Airflow 3.3.2's dag.test() passes the SDK DAG to DagRun.update_state, which looks its `deadline` up as
    # DeadlineAlert row ids: with a DeadlineAlert object there, a successful run crashes in SQLAlchemy
    # ("'dict' object has no attribute 'hex'"). The scheduler passes the serialized DAG (ids) and works, as
    # `make demo` shows; test_processing_dag_declares_a_freshness_deadline checks the declaration itself.
    dag.deadline = None
    return dag


def task_states(dag_run: Any) -> dict[str, str]:
    """``{task_id or task_id[map_index]: state}`` of a finished ``dag.test()`` run."""
    states = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        states[key] = str(ti.state.value if hasattr(ti.state, "value") else ti.state)
    return states


def try_numbers(dag_run: Any) -> dict[str, int]:
    return {ti.task_id: ti.try_number for ti in dag_run.get_task_instances()}


def xcom_values(dag_run: Any, task_id: str, key: str = "return_value") -> list[Any]:
    """Every XCom value ``task_id`` pushed under ``key`` in this run (one per map index, in order)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(XComModel)
            .filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id, key=key)
            .order_by(XComModel.map_index)
            .all()
        )
        return [XComModel.deserialize_value(row) for row in rows]


class RecordingTaskInstance:
    """The slice of a task instance the cluster operators use (ids + XCom), for direct ``execute`` calls."""

    def __init__(
        self,
        dag_id: str = "dbx_test",
        run_id: str = "manual__test",
        task_id: str = "task",
        try_number: int = 1,
    ) -> None:
        self.dag_id, self.run_id, self.task_id, self.map_index = dag_id, run_id, task_id, -1
        self.try_number = try_number
        self.xcoms: dict[tuple[str, str], Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.xcoms.get((task_ids, key))
