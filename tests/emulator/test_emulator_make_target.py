"""``make emulator`` runs the repo's bundle end to end: it starts (or is given) an S3 endpoint for ``s3://``
parameters; without one, Spark's ``No FileSystem for scheme "s3"`` comes with a hint naming the flags."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pytest
import requests

from airbricks.emulator.task_runner import storage_hint
from airbricks.local.processes import free_port
from airbricks.local.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY
from airbricks.partitions import RawPartition

REPO_ROOT = Path(__file__).resolve().parents[2]
RAW_BUCKET = "airbricks-raw"
PARTITION = RawPartition.from_key("hackernews", "stories", "2026-11-20")
PAGE = {
    "hits": [
        {
            "objectID": "101",
            "title": "Story 101",
            "url": "https://www.example.com/101",
            "author": "alice",
            "points": 30,
            "num_comments": 2,
            "created_at": "2026-11-20T10:00:00Z",
            "created_at_i": 1795168800,
            "_tags": ["story"],
        }
    ],
    "page": 0,
    "nbPages": 1,
}
TERMINAL = {"TERMINATED", "INTERNAL_ERROR", "SKIPPED"}


@pytest.fixture
def databricks_bundle_dir() -> Path:
    """The repo's bundle (this folder's conftest loads the contract test bundle)."""
    return REPO_ROOT / "databricks"


def _lines(stream) -> queue.Queue[str]:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in stream], daemon=True).start()
    return lines


def _wait_for_line(
    lines: queue.Queue[str], pattern: str, proc: subprocess.Popen, seen: list[str]
) -> re.Match:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            assert proc.poll() is None, "make emulator exited:\n" + "".join(seen)
            continue
        seen.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"no line matching {pattern!r} within 120 s:\n{''.join(seen)}")


def _run_bronze(base_url: str, token: str) -> tuple[dict, dict]:
    """``run-now`` of the bundle's hackernews job on :data:`PARTITION`, bronze only; (run, bronze output)."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    jobs = session.get(f"{base_url}/api/2.2/jobs/list", params={"name": "airbricks_hackernews"}, timeout=10)
    job_id = jobs.json()["jobs"][0]["job_id"]
    parameters = {
        **PARTITION.job_parameters(RAW_BUCKET),  # what the processing DAG passes
        "output_root": "s3://airbricks-lake/hackernews/stories/",
    }
    body = {"job_id": job_id, "only": ["bronze"], "job_parameters": parameters}
    run_id = session.post(f"{base_url}/api/2.2/jobs/run-now", json=body, timeout=10).json()["run_id"]
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        run = session.get(f"{base_url}/api/2.2/jobs/runs/get", params={"run_id": run_id}, timeout=10).json()
        if run["state"]["life_cycle_state"] in TERMINAL:
            break
        time.sleep(1)
    else:
        raise AssertionError(f"run {run_id} did not finish: {run['state']}")
    task = run["tasks"][-1]  # the last attempt (a retried task lists one entry per attempt)
    output = session.get(
        f"{base_url}/api/2.2/jobs/runs/get-output", params={"run_id": task["run_id"]}, timeout=10
    ).json()
    return run, output


@pytest.mark.integration
@pytest.mark.slow
def test_make_emulator_runs_the_bronze_job_on_its_local_s3(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    env = {
        k: v for k, v in os.environ.items() if k not in ("AIRBRICKS_EMULATOR_TOKEN", "EMULATOR_S3_ENDPOINT")
    }
    proc = subprocess.Popen(
        ["make", "-s", "emulator", f"EMULATOR_PORT={port}", f"EMULATOR_STATE_DIR={state}"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,  # make and the emulator: one process group, stopped together
    )
    seen: list[str] = []
    try:
        lines = _lines(proc.stdout)
        _wait_for_line(lines, rf"listening on http://127\.0\.0\.1:{port}\b", proc, seen)
        endpoint = _wait_for_line(lines, r"local S3 \(moto\) on (http://\S+) ", proc, seen)[1]
        assert "s3://airbricks-raw" in seen[-1]
        assert "s3://airbricks-lake" in seen[-1]
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=LOCAL_REGION,
            aws_access_key_id=LOCAL_ACCESS_KEY_ID,
            aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
        )
        page = json.dumps(PAGE).encode()
        s3.put_object(Bucket=RAW_BUCKET, Key=PARTITION.prefix + "part-00001.json", Body=page)
        s3.put_object(Bucket=RAW_BUCKET, Key=PARTITION.manifest_key, Body=b'{"records": 1}')

        run, output = _run_bronze(f"http://127.0.0.1:{port}", (state / "token").read_text())

        assert run["state"]["result_state"] == "SUCCESS", output
        bronze = f"hackernews/stories/bronze/{PARTITION.relative_prefix}"
        listed = s3.list_objects_v2(Bucket="airbricks-lake", Prefix=bronze)
        keys = [obj["Key"] for obj in listed.get("Contents", [])]
        assert any(key.endswith(".parquet") for key in keys), keys
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.integration
@pytest.mark.slow
def test_an_s3_path_without_an_s3_endpoint_fails_with_a_hint_naming_the_flag(databricks_emulator) -> None:
    # The session emulator with storage mapping off: what `airbricks-emulator` without --s3-endpoint-url is.
    run, output = _run_bronze(databricks_emulator.url, databricks_emulator.token)
    assert run["state"]["result_state"] == "FAILED"
    error = output["error"]
    first, hint = error.splitlines()[:2]
    assert "UnsupportedFileSystemException" in first  # the manifest is the first thing bronze reads
    assert hint.startswith("Hint: this emulator has no S3 endpoint")
    assert "--s3-endpoint-url" in hint
    assert "--local-s3" in hint
    assert 'No FileSystem for scheme "s3"' in error  # the original message is kept


def test_the_hint_for_an_s3_path_built_inside_job_code() -> None:
    java = 'org.apache.hadoop.fs.UnsupportedFileSystemException: No FileSystem for scheme "s3a"'
    error = f"Py4JJavaError: boom\n: {java}"
    hinted = storage_hint(error, None, s3_mapped=True)
    assert hinted.splitlines()[0] == "Py4JJavaError: boom"
    assert "only those are mapped to local paths" in hinted.splitlines()[1]
    assert hinted.endswith('No FileSystem for scheme "s3a"')
    assert storage_hint("ValueError: bad", "trace", s3_mapped=False) == "ValueError: bad"
