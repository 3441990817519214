"""The contract between the DAGs and the bundle, and the DAG conventions (parse only, no servers)."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from dbx_airflow import load_dag

from airbricks.databricks.processing import (
    GOLD_TASK_KEY,
    bundle_job_mismatches,
    processed_dataset,
    processed_datasets,
)
from airbricks.emulator.bundle import load_bundle
from airbricks.ingestion.config import SourceConfigError
from airbricks.partitions import JOB_PARAMETER_NAMES

BUNDLE = pathlib.Path(__file__).resolve().parents[2] / "databricks"
DAGS = pathlib.Path(__file__).resolve().parents[2] / "dags"
SOURCES = DAGS / "sources.yaml"
DATASETS = processed_datasets(SOURCES)
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
        f"processed datasets of {SOURCES} without a DAG file: {declared - files}; DAG files without a "
        f"processed dataset: {files - declared}"
    )


def test_sources_yaml_and_the_bundle_name_the_same_jobs():
    bundle_jobs = {job["name"] for job in load_bundle(BUNDLE).jobs.values()}
    assert DATASETS, f"{SOURCES} declares no processing"
    assert bundle_job_mismatches(DATASETS, bundle_jobs) == []


def _sources(tmp_path, processing: dict | None) -> pathlib.Path:
    dataset = {"path": "/items", **({"processing": processing} if processing is not None else {})}
    document = {
        "defaults": {"owner": "data-platform", "start_date": "2026-11-01"},
        "sources": {
            "shop": {"schedule": "@daily", "datasets": {"orders": dataset, "refunds": {"path": "/r"}}}
        },
    }
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_job_the_bundle_lacks_and_a_job_no_dataset_names_are_both_named(tmp_path):
    datasets = processed_datasets(_sources(tmp_path, {"job": "airbricks_shop"}))
    assert [(d.source, d.dataset, d.job_name, d.dag_id) for d in datasets] == [
        ("shop", "orders", "airbricks_shop", "databricks_shop_orders")
    ]
    problems = bundle_job_mismatches(datasets, {"airbricks_hackernews"})
    assert len(problems) == 2, problems
    assert problems[0].startswith(
        "dataset shop/orders: processing.job 'airbricks_shop' is not a job of the bundle"
    )
    assert problems[1].startswith("bundle job 'airbricks_hackernews' is processing.job of no dataset")


def test_a_disabled_or_undeclared_processing_has_no_dag(tmp_path):
    disabled = _sources(tmp_path, {"job": "airbricks_shop", "enabled": False})
    assert processed_datasets(disabled) == ()
    with pytest.raises(SourceConfigError, match=r"dataset 'orders': processing is disabled"):
        processed_dataset(disabled, "shop", "orders")
    with pytest.raises(SourceConfigError, match=r"dataset 'refunds': processing is not declared"):
        processed_dataset(disabled, "shop", "refunds")
    with pytest.raises(
        SourceConfigError, match=r"source 'shop' has no dataset 'nope' \(declared: orders, refunds\)"
    ):
        processed_dataset(disabled, "shop", "nope")
    with pytest.raises(SourceConfigError, match=r"field 'datasets.orders.processing.jobs'"):
        processed_datasets(_sources(tmp_path, {"jobs": "typo"}))


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
