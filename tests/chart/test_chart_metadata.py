"""chart/Chart.yaml pins the official chart and chart/Chart.lock is in sync with it, as Helm checks it."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
from chart_support import CHART_DIR, load_yaml

OFFICIAL = {"name": "airflow", "version": "1.22.0", "repository": "https://airflow.apache.org"}

# Runs Helm's own `dependency build` (helm-python-sdk) in a child process whose HTTPS proxy is a closed
# port, so no download can happen: it either refuses the lock as out of sync or fails on the network.
_BUILD = """
import sys, helm_python
try:
    helm_python.dependency_build(sys.argv[1])
except helm_python.HelmError as error:
    print(error)
"""


def _dependency_build_message(chart_dir: pathlib.Path) -> str:
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9"}
    env.pop("NO_PROXY", None)
    env["HELM_REPOSITORY_CONFIG"] = str(chart_dir.parent / "repositories.yaml")
    env["HELM_REPOSITORY_CACHE"] = str(chart_dir.parent / "cache")
    result = subprocess.run(
        [sys.executable, "-c", _BUILD, str(chart_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    return result.stdout + result.stderr


def test_chart_is_an_umbrella_over_the_official_chart() -> None:
    chart = load_yaml(CHART_DIR / "Chart.yaml")
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "airbricks"
    assert chart["appVersion"] == "3.3.2"
    assert chart["dependencies"] == [OFFICIAL]


def test_chart_lock_digest_is_helms_hash_of_the_dependencies() -> None:
    """Helm's resolver.HashReq: sha256 of Go's json.Marshal([requested deps, locked deps])."""
    chart = load_yaml(CHART_DIR / "Chart.yaml")
    lock = load_yaml(CHART_DIR / "Chart.lock")
    assert lock["dependencies"] == [OFFICIAL]
    # Go marshals the Dependency struct in field order, whatever the order in the YAML files.
    go_order = ("name", "version", "repository")
    as_go = [
        [{key: dep[key] for key in go_order} for dep in deps]
        for deps in (chart["dependencies"], lock["dependencies"])
    ]
    payload = json.dumps(as_go, separators=(",", ":"))
    assert lock["digest"] == "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


@pytest.mark.parametrize("tamper", [False, True], ids=["as-committed", "tampered-lock"])
def test_helm_accepts_the_lock(tmp_path: pathlib.Path, tamper: bool) -> None:
    """The real Helm code path: an out-of-sync lock is refused before any download is attempted."""
    chart_copy = tmp_path / "airbricks"
    shutil.copytree(CHART_DIR, chart_copy, ignore=shutil.ignore_patterns("charts"))
    if tamper:
        lock = chart_copy / "Chart.lock"
        text = lock.read_text()
        digest = load_yaml(lock)["digest"]
        lock.write_text(text.replace(digest, digest[:-4] + "0000"))
    message = _dependency_build_message(chart_copy)
    assert ("out of sync" in message) is tamper, message


def test_vendored_chart_is_never_committed() -> None:
    ignored = (CHART_DIR.parent / ".gitignore").read_text().splitlines()
    assert "chart/charts/" in ignored
