"""Run ``ingest_hackernews`` and then ``databricks_hackernews_stories`` on the partition it published, with
``dag.test()``, in this fresh interpreter (started by test_lineage_chain.py with OpenLineage configured:
the provider registers its listener when Airflow loads plugins, once per process).

Usage: ``python lineage_run.py <logical date ISO>``; prints one line: RESULT_MARKER + JSON of the task
states and the partition.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import runpy
import sys

DAGS = pathlib.Path(__file__).resolve().parents[2] / "dags"
RESULT_MARKER = "LINEAGE-RUN-RESULT "  # Airflow logs to stdout too, also after this line


def load(file_name: str, dag_id: str):
    from airflow.sdk import DAG

    namespace = runpy.run_path(str(DAGS / file_name))
    dag = next(v for v in namespace.values() if isinstance(v, DAG) and v.dag_id == dag_id)
    dag.deadline = None  # see tests/databricks/dbx_airflow.py: dag.test() of 3.3.2 crashes on a DeadlineAlert
    return dag


def states(run) -> dict[str, str]:
    return {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}


def main() -> None:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    logical_date = datetime.datetime.fromisoformat(sys.argv[1])
    ingest = load("ingest_hackernews.py", "ingest_hackernews").test(logical_date=logical_date)
    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=ingest.dag_id, run_id=ingest.run_id, task_id="ingest_stories", key="return_value"
            )
            .one()
        )
        summary = XComModel.deserialize_value(row)
    conf = {"partition_key": summary["partition_key"]}
    processing = load("databricks_hackernews_stories.py", "databricks_hackernews_stories").test(run_conf=conf)
    outcome = {"ingest": states(ingest), "processing": states(processing), "partition": summary["partition"]}
    print(RESULT_MARKER + json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main()
