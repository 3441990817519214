"""The benchmark harness (bench/) works on tiny inputs. No timing is asserted: `make bench` measures."""

from __future__ import annotations

import pathlib
import sqlite3
import sys

import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # bench/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench import bench_databricks_cost, bench_end_to_end, report  # noqa: E402
from bench.common import summary  # noqa: E402


def test_summary_reports_median_and_spread():
    stats = summary([3.0, 1.0, 2.0, 10.0, 4.0])
    assert stats["median"] == 3.0
    assert (stats["min"], stats["max"], stats["n"]) == (1.0, 10.0, 5)
    assert stats["iqr"] > 0
    with pytest.raises(ValueError, match="no measurements"):
        summary([])


def _db(path: pathlib.Path) -> pathlib.Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE dag_run (dag_id, run_id, run_type, state, queued_at, start_date, end_date)")
        db.execute(
            "CREATE TABLE task_instance (dag_id, run_id, task_id, map_index, state, start_date, end_date)"
        )
        db.execute(
            "INSERT INTO dag_run VALUES ('ingest_x', 'r1', 'manual', 'success', "
            "'2026-11-20 10:00:00', '2026-11-20 10:00:01', '2026-11-20 10:00:12')"
        )
        db.execute(
            "INSERT INTO dag_run VALUES ('databricks_x', 'r2', 'asset_triggered', 'success', "
            "'2026-11-20 10:00:15', '2026-11-20 10:00:16', '2026-11-20 10:01:00')"
        )
        rows = [
            ("ingest_x", "r1", "ingest", -1, "2026-11-20 10:00:02", "2026-11-20 10:00:10"),
            ("databricks_x", "r2", "run_job", 0, "2026-11-20 10:00:20", "2026-11-20 10:00:50"),
            ("databricks_x", "r2", "gold", 0, "2026-11-20 10:00:52", "2026-11-20 10:01:00"),
        ]
        db.executemany("INSERT INTO task_instance VALUES (?, ?, ?, ?, 'success', ?, ?)", rows)
    return path


def test_end_to_end_analysis_separates_task_work_from_overhead(tmp_path):
    figures = bench_end_to_end.analyse(_db(tmp_path / "airflow.db"))
    assert figures["end_to_end_seconds"] == 60.0  # 10:00:00 trigger -> 10:01:00 last task end
    assert figures["task_work_seconds"] == 46.0  # 8 + 30 + 8
    assert figures["orchestration_overhead_seconds"] == 14.0
    assert figures["gold_stage_present"] is True
    assert figures["task_seconds"]["databricks_x.run_job[0]"] == 30.0


def test_per_task_bundle_adds_a_job_with_one_cluster_per_task(tmp_path):
    bundle = bench_databricks_cost.per_task_bundle(REPO_ROOT / "databricks", tmp_path / "bundle")
    resources = bundle / "resources"
    original = yaml.safe_load((resources / bench_databricks_cost.JOB_FILE).read_text())
    assert "job_clusters" in original["resources"]["jobs"][bench_databricks_cost.JOB_NAME]
    variant = yaml.safe_load((resources / ("per_task_" + bench_databricks_cost.JOB_FILE)).read_text())
    job = variant["resources"]["jobs"][bench_databricks_cost.PER_TASK_JOB_NAME]
    assert job["name"] == bench_databricks_cost.PER_TASK_JOB_NAME
    assert "job_clusters" not in job
    assert job["tasks"]
    assert all("new_cluster" in task and "job_cluster_key" not in task for task in job["tasks"])


def test_report_renders_every_section_and_flags_a_missed_target(bench_document):
    stats = {"median": 1.0, "min": 0.9, "max": 1.2, "iqr": 0.1, "n": 3}
    entry = {"cpu_s": stats, "cpu_ratio": 1.0, "wall_s": stats, "wall_ratio": 1.0, "dags": 1}
    document = bench_document(
        {
            "parse": {
                "processor": {
                    "trivial": entry,
                    "slow_dag.py": {**entry, "cpu_ratio": 2.0},
                    "folder": {"cpu_s": 1.0, "cpu_ratio": 2.0, "wall_s": 1.0, "wall_ratio": 2.0},
                },
                "fresh": None,
                "misses": {"slow_dag.py": 2.0},
                "explain": {"slow_dag.py": [{"module": "boto3", "cumulative_ms": 300.0}]},
                "met": False,
            },
            "ingest": {"error": "RuntimeError: boom", "met": None},
        },
        load_average_after=[1, 1, 1],
    )
    text = report.render(document)
    assert "| 1 | DAG parse" in text
    assert "**MISSED**" in text
    assert "`boto3` 300 ms" in text
    assert "did not run" in text
    assert "RuntimeError: boom" in text


def test_end_to_end_reads_the_demo_verdict_line():
    stdout = "demo | stages: x\ndemo | OK in 47s\ndemo | stopping Airflow (process group)\n"
    assert bench_end_to_end.demo_ok_seconds(stdout) == 47.0
    assert bench_end_to_end.demo_ok_seconds("demo | FAILED after 12s: boom\n") is None
