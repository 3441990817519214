"""The in-cluster emulator's command line (k8s/base/databricks-emulator.yaml) really starts the emulator.

The manifest's exact arguments are run locally with the console script the image installs, only the bind
address, the port and the paths mapped to this machine (the image copies databricks/ to the --bundle path).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
MANIFEST = REPO_ROOT / "k8s" / "base" / "databricks-emulator.yaml"


def _container() -> dict:
    deployment = next(yaml.safe_load_all(MANIFEST.read_text()))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.integration
def test_manifest_command_starts_the_emulator_with_the_bundle(tmp_path: pathlib.Path) -> None:
    command = list(_container()["command"])
    mapping = {
        "0.0.0.0": "127.0.0.1",  # noqa: S104
        "8080": "0",
        "/opt/airflow/databricks": str(REPO_ROOT / "databricks"),
        "/var/lib/airbricks-emulator": str(tmp_path / "state"),
    }
    command = [mapping.get(arg, arg) for arg in command]
    executable = pathlib.Path(sys.executable).with_name(command[0])
    assert executable.is_file(), "the airbricks-emulator console script (pyproject [project.scripts])"
    token = os.urandom(16).hex()
    process = subprocess.Popen(
        [str(executable), *command[1:]],
        env={**os.environ, "AIRBRICKS_EMULATOR_TOKEN": token},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        deadline = time.monotonic() + 60
        while "listening on" not in line and time.monotonic() < deadline and process.poll() is None:
            line = process.stdout.readline()
        assert "listening on" in line, line
        url = line.split("listening on ", 1)[1].split()[0]
        request = urllib.request.Request(
            f"{url}/api/2.2/jobs/list", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        process.terminate()
        process.wait(timeout=30)
