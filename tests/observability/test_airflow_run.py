"""A real Airflow task run: its failure callback POSTs to a local receiver and its metrics reach a UDP socket.

The probe DAG must live in the dags folder of the Airflow that runs it (``dag.test()`` serialises the bundle
first), and the repo's ``dags/`` belongs to other components, so this test runs Airflow in a subprocess with
its own AIRFLOW_HOME, SQLite database (``airflow db migrate``) and dags folder holding only the probe.
Everything else is real: Airflow's task runner, its XCom and connection APIs, its secrets masker, its
StatsD client configured like the chart, the HTTP provider's hook, HTTP over loopback.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from exporter_model import apply, matching_rules, parse_line

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

PROBE_DAG = textwrap.dedent(
    """
    import datetime as dt

    from airflow.sdk import DAG, task

    from airbricks.notifications import notify_dag_failure, notify_task_failure

    with DAG(
        "obs_probe",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1),
        catchup=False,
        default_args={"on_failure_callback": notify_task_failure, "retries": 0},
        on_failure_callback=notify_dag_failure,
    ) as dag:

        @task
        def databricks_like(ti=None):
            from airflow.sdk import BaseHook

            from airbricks import metrics

            conn = BaseHook.get_connection("probe_secret")  # registers its password with the masker
            # What the Databricks provider's operators push:
            ti.xcom_push(key="run_id", value=991)
            ti.xcom_push(key="run_page_url", value="https://dbx.example.com/?o=1#job/7/run/991")
            metrics.record_ingested("probe", "events", records=3, bytes_written=120)
            raise RuntimeError(f"job 7 run 991 FAILED; client used {conn.password}")

        databricks_like()
    """
)


@pytest.fixture(scope="module")
def probe_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("probe-airflow")
    (home / "dags").mkdir()
    (home / "dags" / "obs_probe.py").write_text(PROBE_DAG)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRBRICKS_NOTIFY_STATE_URL": f"file://{home}/notify-state",
    }
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )
    return env


def test_failing_task_notifies_and_emits_metrics(
    probe_home: dict[str, str], webhook_server: Any, statsd_socket: Any, statsd_mappings: list[dict[str, Any]]
) -> None:
    password = secrets.token_urlsafe(18)
    env = {
        **probe_home,
        "AIRFLOW_CONN_AIRBRICKS_ALERTS_WEBHOOK": json.dumps(
            {"conn_type": "http", "host": f"{webhook_server.url}/hooks/airflow"}
        ),
        "AIRFLOW_CONN_PROBE_SECRET": json.dumps(
            {"conn_type": "http", "host": "api.example.com", "password": password}
        ),
        # As the chart configures it (chart/values.yaml airflow.config.metrics + the chart's own keys).
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd_socket.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
        "AIRFLOW__METRICS__LEGACY_NAMES_ON": "False",
    }
    statsd_socket.drain(timeout=0.3)
    script = "import runpy; runpy.run_path(__import__('sys').argv[1])['dag'].test()"
    result = subprocess.run(
        [sys.executable, "-c", script, f"{env['AIRFLOW__CORE__DAGS_FOLDER']}/obs_probe.py"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert "RuntimeError: job 7 run 991 FAILED" in output, output[-3000:]

    events = [r.json() for r in webhook_server.requests]
    task_failure = next(e for e in events if e["event"] == "task_failure")
    assert (task_failure["dag_id"], task_failure["task_id"], task_failure["try_number"]) == (
        "obs_probe",
        "databricks_like",
        1,
    )
    assert task_failure["log_url"].endswith("/tasks/databricks_like?try_number=1")
    assert task_failure["run_id"].startswith("manual__")
    assert task_failure["databricks"]["run_id"] == 991
    assert task_failure["databricks"]["run_page_url"] == "https://dbx.example.com/?o=1#job/7/run/991"
    assert task_failure["error"] == "RuntimeError: job 7 run 991 FAILED; client used ***"
    assert all(password not in r.body.decode() for r in webhook_server.requests)
    # dag.test() runs the DAG's on_failure_callback too.
    dag_failure = next(e for e in events if e["event"] == "dag_failure")
    assert (dag_failure["dag_id"], dag_failure["run_id"]) == ("obs_probe", task_failure["run_id"])

    lines = statsd_socket.drain(timeout=3)
    assert not [line for line in lines if line.startswith("airflow.ti.finish.obs_probe")], (
        "legacy names are off"
    )
    mapped = [
        apply(statsd_mappings, event)
        for event in map(parse_line, lines)
        if matching_rules(statsd_mappings, event.name, event.metric_type)
    ]
    samples = {sample.name: sample for sample in mapped}
    assert samples["airflow_ti_finish_total"].labels == {
        "dag_id": "obs_probe",
        "task_id": "databricks_like",
        "state": "failed",
    }
    assert samples["airflow_ti_failures_total"].labels == {
        "dag_id": "obs_probe",
        "task_id": "databricks_like",
    }
    assert samples["airflow_task_duration_seconds"].observer == "histogram"
    assert samples["airbricks_ingest_records_total"].value == 3
    sent = [sample.labels["kind"] for sample in mapped if sample.name == "airbricks_notifications_sent_total"]
    assert sorted(sent) == ["dag_failure", "task_failure"]
