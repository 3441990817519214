"""``make run-dag``: one ingestion DAG on the local stand-ins, as a newcomer runs it (real make and Airflow).

The end-to-end case runs the target itself in a subprocess: it starts the moto S3 and API replay servers,
migrates a throw-away metadata DB, runs ``dag.test()`` in a child process and reports the partition; the
test then checks that report against the local copy of the objects it made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _make_run_dag(*make_vars: str, work_dir: Path, extra: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "-s", "run-dag", *make_vars, f"RUN_DAG_ARGS=--work-dir {work_dir} {extra}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ),
    )


@pytest.mark.integration
@pytest.mark.airflow
@pytest.mark.slow
def test_run_dag_writes_the_partition_of_date_and_says_where(tmp_path: Path) -> None:
    work = tmp_path / "run-dag"
    result = _make_run_dag("DAG=ingest_hackernews", "DATE=2026-11-19", work_dir=work)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert all(line.startswith("run-dag | ") for line in lines), output

    # DATE is the partition (the interval start), not Airflow's manual logical date (the interval end).
    uri = "s3://airbricks-raw/raw/hackernews/stories/dt=2026-11-19/"
    assert f"stories: {uri}" in output
    assert "Airflow logical date 2026-11-20T00:00:00+00:00" in output
    assert "dt=2026-11-18" not in output
    assert "ingest_stories=success" in output

    local = work / "s3" / "airbricks-raw" / "raw" / "hackernews" / "stories" / "dt=2026-11-19"
    manifest = json.loads((local / "_manifest.json").read_text())
    assert manifest["interval_start"] == "2026-11-19T00:00:00+00:00"
    assert manifest["interval_end"] == "2026-11-20T00:00:00+00:00"
    parts = sorted(p.name for p in local.glob("part-*.json"))
    assert len(parts) == manifest["pages"] > 0
    assert sum((local / p).stat().st_size for p in parts) == manifest["bytes"]
    assert (
        f"manifest {uri}_manifest.json: {manifest['records']} records, {manifest['pages']} page(s), "
        f"{manifest['bytes']} bytes" in output
    )
    assert f"local copy: {local}" in output
    # The metadata DB was migrated into the work dir, not into the caller's AIRFLOW_HOME.
    assert (work / "airflow" / "airflow.db").is_file()


def test_run_dag_unknown_dag_lists_the_valid_ones(tmp_path: Path) -> None:
    result = _make_run_dag("DAG=ingest_nope", "DATE=2026-11-19", work_dir=tmp_path)
    assert result.returncode != 0
    assert "unknown DAG 'ingest_nope'" in result.stdout
    assert "ingest_hackernews, ingest_github" in result.stdout
    assert not (tmp_path / "airflow").exists()  # refused before anything started


def test_run_dag_names_a_source_without_its_dag_file(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    shutil.copytree(REPO_ROOT / "dags", dags, ignore=shutil.ignore_patterns("__pycache__"))
    (dags / "ingest_github.py").unlink()
    result = _make_run_dag(
        "DAG=ingest_github", "DATE=2026-11-19", work_dir=tmp_path / "work", extra=f"--dags-folder {dags}"
    )
    assert result.returncode != 0
    assert f"source 'github' has no DAG file {dags / 'ingest_github.py'}: copy" in result.stdout


def test_run_dag_refuses_a_malformed_hour(tmp_path: Path) -> None:
    result = _make_run_dag("DAG=ingest_github", "DATE=2026-11-19", "HOUR=5", work_dir=tmp_path)
    assert result.returncode != 0
    assert "HOUR=5" in result.stdout
    assert "neither YYYY-MM-DD nor YYYY-MM-DDTHH" in result.stdout
