"""The probe DAG of the process-level faults: each task records its start and finish in the ledger file.

``params.seconds`` is how long each of its three parallel tasks works (heartbeating meanwhile). A task
appends ``{"event": "start"|"done", "run_id", "task_id", "try", "pid", "at"}`` lines to
``$AIRBRICKS_FAULTS_LEDGER`` (O_APPEND: whole lines, never interleaved).
"""

from __future__ import annotations

import datetime

from airflow.sdk import dag, task

TASKS = 3


def _record(event: str, context: dict) -> None:
    import json
    import os
    import time

    ti = context["ti"]
    line = {
        "event": event,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "try": ti.try_number,
        "pid": os.getpid(),
        "at": time.time(),
    }
    with open(os.environ["AIRBRICKS_FAULTS_LEDGER"], "a", encoding="utf-8") as ledger:
        ledger.write(json.dumps(line) + "\n")


@dag(
    dag_id="faults_probe",
    schedule=None,
    start_date=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
    catchup=False,
    max_active_runs=128,
    params={"seconds": 4},
    default_args={"retries": 3, "retry_delay": datetime.timedelta(seconds=1)},
    tags=["faults"],
)
def faults_probe() -> None:
    for number in range(TASKS):

        @task(task_id=f"work_{number}")
        def work(**context: object) -> None:
            import time

            _record("start", context)
            time.sleep(float(context["params"]["seconds"]))
            _record("done", context)

        work()


faults_probe()
