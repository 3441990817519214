"""`make chart-validate`, the chart gate CI runs, wired as documented.

The helm CLI is not installable from the registries this machine reaches (CI installs it with
Azure/setup-helm), so ``helm`` is a recording stand-in here that prints a fixed manifest for ``helm
template``. The rest is real: the Makefile recipe, its loop over the values layerings, and
kubernetes-validate checking what ``helm template`` printed against the Kubernetes 1.33 schemas -- the part
that must turn a bad manifest into a failed build.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

VALID = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: airbricks-config
data:
  airflow.cfg: "[core]"
"""
INVALID = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: airbricks-scheduler
spec:
  replicas: "one"
"""
HELM_STUB = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["HELM_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1] == "template":
    sys.stdout.write(os.environ["HELM_TEMPLATE_OUTPUT"])
"""


def run_target(tmp_path: Path, manifest: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helm = bin_dir / "helm"
    helm.write_text(HELM_STUB)
    helm.chmod(helm.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "helm.jsonl"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAKE")},
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HELM_LOG": str(log),
        "HELM_TEMPLATE_OUTPUT": manifest,
    }
    result = subprocess.run(
        # -o: never rebuild the venv from inside a test run (the venv this test runs in is the one to use).
        [
            "make",
            "--no-print-directory",
            "-C",
            str(REPO_ROOT),
            "-o",
            ".venv/.airbricks-installed",
            "chart-validate",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


@pytest.fixture(autouse=True)
def _venv_ready() -> None:
    if not (REPO_ROOT / ".venv" / ".airbricks-installed").exists():
        pytest.fail("`make chart-validate` needs the project venv: run `make venv` first", pytrace=False)


def test_builds_dependencies_then_lints_and_validates_every_layering(tmp_path: Path) -> None:
    result, calls = run_target(tmp_path, VALID)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls[0][:3] == ["repo", "add", "apache-airflow"]
    assert calls[1] == ["dependency", "build", "chart"]
    lints = [call for call in calls if call[0] == "lint"]
    templates = [call for call in calls if call[0] == "template"]
    assert len(lints) == len(templates) == 2
    for env, lint, template in zip(("local", "prod"), lints, templates, strict=True):
        layering = ["--values", "chart/values.yaml", "--values", f"chart/values-{env}.yaml"]
        assert lint[2:6] == layering
        assert template[template.index("--values") :][:4] == layering
        assert "--kube-version" in template
        assert template[template.index("--kube-version") + 1] == "1.33.0"


def test_a_manifest_that_breaks_the_kubernetes_schema_fails_the_target(tmp_path: Path) -> None:
    result, calls = run_target(tmp_path, INVALID)
    assert result.returncode != 0
    assert "did not validate for resource deployment/airbricks-scheduler" in result.stdout + result.stderr
    assert len([call for call in calls if call[0] == "template"]) == 1, "stops at the first bad layering"
