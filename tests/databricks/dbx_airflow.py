"""Helpers for running this repo's Databricks DAGs with ``dag.test()`` and reading the outcome."""

from __future__ import annotations

import logging
import pathlib
import runpy
from datetime import timedelta
from typing import Any

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DAGS = REPO_ROOT / "dags"
OPS_BUNDLE = pathlib.Path(__file__).resolve().parent / "ops_bundle"
PARTITION = "s3://airbricks-raw/raw/hackernews/stories/dt=2026-11-20/"
# A manual run names its raw partition by key; the DAG derives path, date, folder and interval from it.
MANUAL_CONF = {"partition_key": "2026-11-20"}


def use_emulator(emulator: Any, monkeypatch: Any, tmp_path: pathlib.Path) -> Any:
    """Point the DAGs (parsed after this) at the emulator with the stand-in bundle's notebook."""
    for name, value in emulator.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRBRICKS_LAKE_ROOT", "s3://test-lake")
    # Failure notifications keep their rate-limit state locally (the default is an S3 bucket).
    monkeypatch.setenv("AIRBRICKS_NOTIFY_STATE_URL", f"file://{tmp_path}/notify-state")
    monkeypatch.setenv("AIRBRICKS_DATABRICKS_NOTEBOOK", str(OPS_BUNDLE / "src" / "medallion_layer.py"))
    return emulator


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


def clear_and_resume(dag: Any, dag_run: Any, task_ids: list[str]) -> Any:
    """Clear ``task_ids`` of a finished ``dag.test()`` run, as the UI's Clear does, and run it on.

    ``dag.test()`` always starts a new run (it deletes an existing one, and the task state with it), so
    this is its scheduling loop over the SAME run: Airflow's ``clear_task_instances`` (what the REST API's
    clear calls), then ``update_state`` and ``dag.test``'s own task runner until the run finishes.
    Returns the refreshed DAG run.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import clear_task_instances
    from airflow.sdk.definitions.dag import _run_task  # dag.test()'s runner (test support only)
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.settings import Session
    from airflow.utils.state import DagRunState, TaskInstanceState

    session = Session()
    scheduler_dag = DagSerialization.deserialize_dag(DagSerialization.serialize_dag(dag))
    # As dag.test() does: the serialized DAG loses its callbacks, the run's state update calls them.
    scheduler_dag.on_success_callback = dag.on_success_callback
    scheduler_dag.on_failure_callback = dag.on_failure_callback

    def load() -> Any:
        found = session.query(DagRun).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id).one()
        found.dag = scheduler_dag
        return found

    run = load()
    tis = [ti for ti in run.get_task_instances(session=session) if ti.task_id in task_ids]
    assert {ti.task_id for ti in tis} == set(task_ids), f"no such tasks in the run: {task_ids}"
    clear_task_instances(tis, session, dag_run_state=DagRunState.RUNNING)
    session.commit()
    while run.state == DagRunState.RUNNING:
        session.expire_all()
        run = load()
        schedulable, _ = run.update_state(session=session)
        for ti in schedulable:
            ti.try_number += 1
            ti.state = TaskInstanceState.SCHEDULED
        session.commit()
        for ti in [
            t for t in run.get_task_instances(session=session) if t.state == TaskInstanceState.SCHEDULED
        ]:
            try:
                _run_task(ti=ti, task=dag.task_dict[ti.task_id], run_triggerer=True)
            except Exception:  # as in dag.test(): the failure is in the task instance's state
                logging.getLogger(__name__).exception("task %s failed", ti.task_id)
    session.close()
    return load()
