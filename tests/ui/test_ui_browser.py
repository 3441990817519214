"""The Airflow UI of ``make demo DEMO_ARGS=--keep-running`` in a real browser (headless system Chromium).

What a person checks after the demo: log in with the generated password, see the DAGs, the asset graph
ingestion -> processing, a successful run with its task logs, and the Databricks run link of the
processing task pointing at the run on the (emulated) workspace. The second test proves the check fails
on a broken UI: served behind an ingress-like path prefix that ``AIRFLOW__API__BASE_URL`` does not know,
the page loads but its static files do not, which is what a person would see as a blank page.
docs/OBSERVABILITY.md#the-airflow-ui-in-a-browser.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from ui_browser import AirflowUi, UiCheckError
from ui_prefix_proxy import PrefixProxy

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(1080)]

INGEST_DAG = "ingest_hackernews"
PROCESSING_DAG = "databricks_hackernews_stories"
ASSET_URI = "s3://airbricks-raw/raw/hackernews/stories"
DATABRICKS_TASK = "run_medallion_job"  # mapped over the event's partitions: one here, map index 0
DATABRICKS_LINK = "See Databricks Job Run"  # the provider's DatabricksJobRunLink
DEMO_PARTITION = "2026-11-19"  # the demo interval's partition key, written by the ingestion DAG


def _the_successful_run(api, dag_id: str, partition_key: str | None = None) -> str:
    """The run id of ``dag_id``'s one run (of ``partition_key``, if given); every run of it succeeded."""
    runs = api.get(f"/dags/{dag_id}/dagRuns", limit=10)["dag_runs"]
    assert runs, f"{dag_id}: no run"
    assert all(run["state"] == "success" for run in runs), f"{dag_id}: runs {runs}"
    mine = [run for run in runs if partition_key is None or run["partition_key"] == partition_key]
    assert len(mine) == 1, f"{dag_id}: runs of partition {partition_key}: {runs}"
    return mine[0]["dag_run_id"]


def _xcom(api, dag_id: str, run_id: str, task_id: str, key: str, map_index: int) -> object:
    path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/{key}"
    return api.get(path, map_index=map_index)["value"]


def test_the_demo_ui_shows_dags_assets_runs_logs_and_the_databricks_run(
    demo_airflow, browser_page, tmp_path: Path
) -> None:
    api = demo_airflow.api
    ingest_run = _the_successful_run(api, INGEST_DAG)
    # The demo's other producer (plain boto3, the watcher DAG) has the processing DAG run 2026-11-18 too.
    processing_run = _the_successful_run(api, PROCESSING_DAG, DEMO_PARTITION)
    asset_id = next(a["id"] for a in api.get("/assets")["assets"] if a["uri"] == ASSET_URI)
    databricks_run_id = _xcom(api, PROCESSING_DAG, processing_run, DATABRICKS_TASK, "run_id", 0)

    ui = AirflowUi(browser_page, demo_airflow.base_url, tmp_path)
    ui.login(demo_airflow.username, demo_airflow.password)

    ui.dag_list([INGEST_DAG, "ingest_github", PROCESSING_DAG])
    ui.screenshot("ui-dag-list")

    ui.asset_graph(asset_id, producer_dag=INGEST_DAG, consumer_dag=PROCESSING_DAG)
    ui.screenshot("ui-asset-graph")

    ui.successful_run(INGEST_DAG, ingest_run)
    ui.task_logs(
        INGEST_DAG,
        ingest_run,
        "ingest_stories",
        lines=[
            "attempt 1/5 failed (HTTP 429 Too Many Requests, Retry-After 2s)",  # the demo's injected 429
            "published s3://airbricks-raw/raw/hackernews/stories/dt=2026-11-19/ (3 pages, 13 records",
        ],
    )
    ui.screenshot("ui-task-logs")

    ui.successful_run(PROCESSING_DAG, processing_run)
    ui.task_logs(
        PROCESSING_DAG,
        processing_run,
        DATABRICKS_TASK,
        lines=[
            f"Run-now returned run_id {databricks_run_id}",  # airbricks' run-now (or repair) of the job
            "Job run completed successfully.",  # the provider, once the trigger saw the run end
        ],
        map_index=0,
    )
    href = ui.extra_link(PROCESSING_DAG, processing_run, DATABRICKS_TASK, DATABRICKS_LINK, map_index=0)
    ui.screenshot("ui-databricks-run-link")

    # The button points at the run's page on the workspace that ran it: the emulator, this very run.
    assert href.startswith(f"{demo_airflow.emulator_url}/#job/"), href
    assert href.endswith(f"/run/{databricks_run_id}"), (href, databricks_run_id)
    assert href == _xcom(api, PROCESSING_DAG, processing_run, DATABRICKS_TASK, "run_page_url", 0)
    assert not ui.errors, f"JavaScript errors in the UI: {ui.errors}"
    assert all(path.stat().st_size > 10_000 for path in ui.screenshots), ui.screenshots  # not blank


def test_a_ui_behind_a_path_prefix_airflow_does_not_know_fails_the_check(
    demo_airflow, chromium, tmp_path: Path
) -> None:
    """Control first: the same proxy without a prefix (a port-forward) passes; with ``/airflow`` it fails."""
    for prefix in ("", "airflow"):
        proxy = PrefixProxy(demo_airflow.api_port, prefix).start()
        context = chromium.new_context()
        try:
            ui = AirflowUi(context.new_page(), proxy.url, tmp_path)
            if not prefix:
                ui.login(demo_airflow.username, demo_airflow.password)
                ui.dag_list([INGEST_DAG, PROCESSING_DAG])
                continue
            with pytest.raises(UiCheckError) as failure:
                ui.login(demo_airflow.username, demo_airflow.password)
            ui.screenshot("ui-broken-behind-prefix", publish=False)  # evidence in tmp only
        finally:
            context.close()
            proxy.stop()
    message = str(failure.value)
    assert "static files did not load" in message, message
    assert "<base href> is '/'" in message, message
    assert "AIRFLOW__API__BASE_URL" in message, message
    # What broke is what the message says: the page itself came through the prefix, its assets 404'd.
    assert ("GET", "/airflow/", 200) in proxy.seen, proxy.seen
    assert any(path.startswith("/static/") and status == 404 for _, path, status in proxy.seen), proxy.seen
