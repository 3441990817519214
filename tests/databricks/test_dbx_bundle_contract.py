"""The contract between the DAGs and the bundle, and the DAG conventions (parse only, no servers)."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from dbx_airflow import load_dag

from airbricks.databricks.processing import DATASETS, GOLD_TASK_KEY, processed_dataset
from airbricks.partitions import JOB_PARAMETER_NAMES

BUNDLE = pathlib.Path(__file__).resolve().parents[2] / "databricks"
DAGS = pathlib.Path(__file__).resolve().parents[2] / "dags"
# The partition as RawPartition.job_parameters passes it, output_root, and OPENLINEAGE_CONTEXT (set by the
# provider's OpenLineage parent-run injection, docs/LINEAGE.md); Databricks refuses run-now job parameters
# a job does not declare.
JOB_PARAMETERS = {*JOB_PARAMETER_NAMES, "output_root", "OPENLINEAGE_CONTEXT"}


def _bundle_jobs() -> dict[str, tuple[pathlib.Path, dict]]:
    root = yaml.safe_load((BUNDLE / "databricks.yml").read_text())
    assert root["include"] == ["resources/*.yml"]
    jobs = {}
    for path in sorted(BUNDLE.glob("resources/*.yml")):
        for key, job in (yaml.safe_load(path.read_text())["resources"]["jobs"]).items():
            jobs[job["name"]] = (path, job)
            assert key == job["name"], "bundle key and job name are kept equal"
    return jobs


def test_bundle_targets_and_variables():
    root = yaml.safe_load((BUNDLE / "databricks.yml").read_text())
    assert root["bundle"]["name"] == "airbricks"
    assert root["targets"]["dev"]["default"] is True
    assert root["targets"]["dev"]["mode"] == "development"
    assert root["targets"]["prod"]["mode"] == "production"
    assert "host" not in str(root["targets"]), "the workspace comes from DATABRICKS_HOST, not the file"
    assert {"lake_root", "spark_version", "node_type_id"} <= set(root["variables"])
    # The raw bucket reaches the jobs only inside partition_path (its one default is airbricks.partitions).
    assert "raw_bucket" not in root["variables"]


def test_every_processed_dataset_has_its_dag_file():
    """One DAG per file (each parsed on its own), the file named after the dag_id."""
    declared = {spec.dag_id for spec in DATASETS}
    files = {path.stem for path in DAGS.glob("databricks_*.py")} - {
        "databricks_cluster_example",
        "databricks_workflow_example",
    }
    assert declared == files, (
        f"DATASETS without a DAG file: {declared - files}; files without: {files - declared}"
    )


def test_an_undeclared_dataset_is_named_with_the_declared_ones():
    with pytest.raises(ValueError, match=r"no processed dataset a/b .*declared: hackernews/stories"):
        processed_dataset("a", "b")


@pytest.mark.parametrize("spec", DATASETS, ids=lambda s: s.job_name)
def test_every_processing_dag_has_its_bundle_job_with_the_parameters_it_sends(spec):
    path, job = _bundle_jobs()[spec.job_name]
    assert {p["name"] for p in job["parameters"]} == JOB_PARAMETERS
    [cluster] = job["job_clusters"]
    tasks = {t["task_key"]: t for t in job["tasks"]}
    assert list(tasks) == ["bronze", "silver", GOLD_TASK_KEY]
    for key, task in tasks.items():
        assert task["job_cluster_key"] == cluster["job_cluster_key"], f"{key} must share the job cluster"
        notebook = (path.parent / task["notebook_task"]["notebook_path"]).resolve()
        assert notebook.is_file(), notebook
        assert notebook.read_text().startswith("# Databricks notebook source")
        assert task["notebook_task"]["base_parameters"] == {
            "dataset": f"{spec.source}_{spec.dataset}",
            "layer": key,
        }
    assert tasks["silver"]["depends_on"] == [{"task_key": "bronze"}]
    assert tasks["gold"]["depends_on"] == [{"task_key": "silver"}]


def test_dags_follow_the_conventions_and_schedule_on_the_ingestion_assets(monkeypatch):
    monkeypatch.setenv("AIRBRICKS_RAW_BUCKET", "contract-raw")
    dags = [
        *(load_dag(f"{spec.dag_id}.py", spec.dag_id) for spec in DATASETS),
        load_dag("databricks_cluster_example.py", "databricks_cluster_example"),
        load_dag("databricks_workflow_example.py", "databricks_workflow_example"),
    ]
    for dag in dags:
        assert "databricks" in dag.tags, dag.dag_id
        for task in dag.tasks:
            assert task.owner == "data-platform", (dag.dag_id, task.task_id)
            assert task.retries >= 2, (dag.dag_id, task.task_id)
    for spec, dag in zip(DATASETS, dags, strict=False):
        [asset] = (
            dag.timetable.asset_condition.objects
            if hasattr(dag.timetable.asset_condition, "objects")
            else [dag.timetable.asset_condition]
        )
        assert asset.uri == f"s3://contract-raw/raw/{spec.source}/{spec.dataset}"
        run = dag.get_task("run_medallion_job")
        assert run.partial_kwargs["job_name"] == spec.job_name
        assert run.partial_kwargs["deferrable"] is True
