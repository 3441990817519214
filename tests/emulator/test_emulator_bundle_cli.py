"""Bundle loading (variables, targets, includes, errors) and the airbricks-emulator process."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap

import pytest
import requests

from airbricks.emulator.bundle import BundleError, load_bundle
from airbricks.emulator.errors import ApiError
from airbricks.emulator.files import LocalFiles

BUNDLE = pathlib.Path(__file__).parent / "bundle"


def test_default_target_variables_and_relative_paths():
    bundle = load_bundle(BUNDLE)
    assert bundle.target == "local"
    assert bundle.variables == {"greeting": "hello-local", "job_prefix": "contract"}
    greet = bundle.jobs["greet"]
    assert greet["name"] == "contract-greet"
    assert greet["tasks"][0]["notebook_task"]["notebook_path"] == str(BUNDLE / "src" / "greet.py")
    # dynamic value references are left for run time
    assert greet["tasks"][1]["spark_python_task"]["parameters"][0] == "{{job.parameters.who}}"


def test_overrides_and_env_vars(monkeypatch):
    monkeypatch.setenv("BUNDLE_VAR_job_prefix", "env")
    bundle = load_bundle(BUNDLE, overrides={"greeting": "cli"})
    assert bundle.jobs["greet"]["name"] == "env-greet"
    assert bundle.jobs["greet"]["tasks"][0]["notebook_task"]["base_parameters"] == {"greeting": "cli"}


def _write_bundle(tmp_path: pathlib.Path, body: str) -> pathlib.Path:
    (tmp_path / "databricks.yml").write_text(textwrap.dedent(body))
    return tmp_path


def test_target_resources_merge_over_top_level(tmp_path):
    root = _write_bundle(
        tmp_path,
        """
        bundle: {name: b}
        variables:
          bucket: {default: raw}
        resources:
          jobs:
            j:
              name: j-${bundle.target}
              tasks:
                - task_key: t
                  notebook_task: {notebook_path: ./nb, base_parameters: {path: "s3://${var.bucket}/x"}}
        targets:
          dev: {default: true}
          prod:
            variables: {bucket: prod-raw}
            resources:
              jobs:
                j:
                  timeout_seconds: 60
        """,
    )
    (root / "nb.py").write_text("# Databricks notebook source\n")
    dev = load_bundle(root)
    assert dev.jobs["j"]["name"] == "j-dev"
    assert "timeout_seconds" not in dev.jobs["j"]
    assert dev.jobs["j"]["tasks"][0]["notebook_task"]["notebook_path"] == str(root / "nb.py")
    prod = load_bundle(root, target="prod")
    assert prod.jobs["j"]["timeout_seconds"] == 60
    assert prod.jobs["j"]["tasks"][0]["notebook_task"]["base_parameters"]["path"] == "s3://prod-raw/x"


@pytest.mark.parametrize(
    ("body", "kwargs", "message"),
    [
        ("bundle: {name: b}\nresources: {jobs: {j: {name: '${var.nope}'}}}\n", {}, "undeclared variable"),
        ("bundle: {name: b}\nvariables: {v: {description: no default}}\n", {}, "no value for variable"),
        ("bundle: {name: b}\ntargets: {dev: {}}\n", {"target": "prod"}, "target 'prod' is not defined"),
        ("- just\n- a list\n", {}, "top level must be a mapping"),
        ("bundle: {name: b}\n", {"overrides": {"x": "1"}}, "'x' is not declared"),
    ],
)
def test_bad_bundles_name_the_problem(tmp_path, body, kwargs, message):
    _write_bundle(tmp_path, body)
    with pytest.raises(BundleError, match=message):
        load_bundle(tmp_path, **kwargs)


def test_missing_databricks_yml(tmp_path):
    with pytest.raises(BundleError, match=r"no databricks\.yml"):
        load_bundle(tmp_path)


def test_volume_paths_cannot_escape_the_root(tmp_path):
    files = LocalFiles(tmp_path)
    with pytest.raises(ApiError, match=r"'\.\.'"):
        files.volume_path("/Volumes/a/b/c/../../../../etc/passwd")
    with pytest.raises(ApiError, match=r"'\.\.'"):
        files.dbfs_path("dbfs:/../x")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.integration
def test_cli_serves_bundle_jobs_with_generated_token(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "AIRBRICKS_EMULATOR_TOKEN"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airbricks.local.emulator_cli",
            "--port",
            str(port),
            "--bundle",
            str(BUNDLE),
            "--state-dir",
            str(tmp_path / "state"),
            "--cluster-start-seconds",
            "0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        banner = proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in banner, (
            proc.stderr.read() if proc.poll() else banner
        )
        token_file = tmp_path / "state" / "token"
        token = token_file.read_text()
        assert token not in banner
        assert token_file.stat().st_mode & 0o777 == 0o600
        assert "contract-greet" in proc.stdout.readline()
        url = f"http://127.0.0.1:{port}/api/2.2/jobs/list"
        jobs = requests.get(
            url, headers={"Authorization": f"Bearer {token}"}, params={"name": "contract-greet"}, timeout=5
        )
        assert len(jobs.json()["jobs"]) == 1
        assert requests.get(f"http://127.0.0.1:{port}/_emulator/health", timeout=5).json() == {"status": "ok"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert token not in out + err


@pytest.mark.integration
def test_cli_rejects_bad_bundle(tmp_path):
    (tmp_path / "databricks.yml").write_text("bundle: {name: b}\ntargets: {dev: {}}\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "airbricks.local.emulator_cli",
            "--port",
            "0",
            "--bundle",
            str(tmp_path),
            "--target",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "target 'x' is not defined" in result.stderr


def test_json_is_what_the_fixture_hands_airflow(databricks_emulator):
    env = databricks_emulator.airflow_conn_env()
    conn = json.loads(env["AIRFLOW_CONN_DATABRICKS_DEFAULT"])
    assert conn == {
        "conn_type": "databricks",
        "host": "127.0.0.1",
        "schema": "http",
        "port": databricks_emulator.port,
        "password": databricks_emulator.token,
    }
