"""scripts/kind.sh run end to end against fake docker/kind/kubectl/helm that record their calls.

The script runs from a copy of the files it needs (so no test can touch the checkout's chart/charts/ or
.kind/), with a PATH holding only the fakes and the system tools (bash, coreutils, sed, awk, base64).
"""

from __future__ import annotations

import base64
import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
FAKE_TOOLS = pathlib.Path(__file__).with_name("fake_tools.py")
TOOLS = ("docker", "kind", "kubectl", "helm")
# The only system commands the script may use; the sandbox PATH holds these and the fakes, nothing else
# (a real kubectl or helm on the test machine must never be reached).
SYSTEM_COMMANDS = (
    "awk", "base64", "bash", "cat", "chmod", "cp", "cut", "dirname", "env", "grep", "head", "mkdir", "mktemp",
    "rm", "sed", "sh", "sort", "tr",
)  # fmt: skip
GIT_REPO = "https://github.com/example/airbricks.git"
GENERATED_SECRETS = (
    "airbricks-fernet-key",
    "airbricks-api-secret-key",
    "airbricks-jwt-secret",
    "airbricks-ui-login",
    "airbricks-postgresql",
    "airbricks-minio",
    "airbricks-databricks-emulator",
    "airbricks-metadata-db",
)


class Harness:
    """A copy of the repository's kind assets, fake tools on PATH, and readers for what they recorded."""

    def __init__(self, root: pathlib.Path, tools: tuple[str, ...] = TOOLS) -> None:
        self.repo = root / "repo"
        for part in ("scripts", "k8s", "chart", "cicd"):
            shutil.copytree(REPO_ROOT / part, self.repo / part, ignore=shutil.ignore_patterns("charts"))
        (self.repo / "dags").mkdir()
        self.bin = root / "bin"
        self.bin.mkdir()
        for tool in tools:
            wrapper = self.bin / tool
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S -E "{FAKE_TOOLS}" {tool} "$@"\n')
            wrapper.chmod(0o755)
        system = root / "system"
        system.mkdir()
        for command in SYSTEM_COMMANDS:
            found = shutil.which(command)
            assert found, f"{command} is needed to run scripts/kind.sh"
            (system / command).symlink_to(found)
        self.log = root / "calls.jsonl"
        self.state = root / "state.json"
        self.env = {
            "PATH": f"{self.bin}:{system}",
            "HOME": str(root),
            "FAKE_LOG": str(self.log),
            "FAKE_STATE": str(self.state),
            "GIT_REPO": GIT_REPO,
            "GIT_BRANCH": "feature/dags",
        }

    def run(self, command: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(self.repo / "scripts" / "kind.sh"), command],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.is_file():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commands(self) -> list[str]:
        """Each call as 'tool arg arg', with kubectl's --context/--namespace dropped for readability."""
        out = []
        for call in self.calls():
            argv = call["argv"]
            if call["tool"] == "kubectl":
                argv = [arg for index, arg in enumerate(argv) if not _is_global(argv, index)]
            out.append(" ".join([call["tool"], *argv]))
        return out

    def secrets(self) -> dict[str, dict[str, str]]:
        return json.loads(self.state.read_text())["secrets"]

    def reset_log(self) -> None:
        self.log.unlink(missing_ok=True)


def _is_global(argv: list[str], index: int) -> bool:
    flags = {"--context", "--namespace"}
    return argv[index] in flags or (index > 0 and argv[index - 1] in flags)


def _index(commands: list[str], prefix: str) -> int:
    for index, command in enumerate(commands):
        if command.startswith(prefix):
            return index
    raise AssertionError(f"no call starting with {prefix!r} in:\n" + "\n".join(commands))


@pytest.fixture
def harness(tmp_path: pathlib.Path) -> Harness:
    return Harness(tmp_path)


def test_kind_up_runs_the_steps_in_order(harness: Harness) -> None:
    result = harness.run("up")
    assert result.returncode == 0, result.stderr
    commands = harness.commands()
    steps = [
        "docker version",
        "kind version",
        "kubectl version --client",
        "helm version",
        "docker info",
        "kind get clusters",
        "kind create cluster --name airbricks --config",
        "docker build --file",
        "docker image inspect",
        "docker tag airbricks-airflow:dev airbricks-airflow:sha-0123456789ab",
        "kind load docker-image airbricks-airflow:sha-0123456789ab --name airbricks",
        "kubectl apply -f " + str(harness.repo / "k8s/base/namespace.yaml"),
        "kubectl create secret generic airbricks-fernet-key",
        "kubectl create secret generic airbricks-metadata-db",
        "kubectl apply -f " + str(harness.repo / "k8s/base/minio.yaml"),
        "helm repo add apache-airflow https://airflow.apache.org --force-update",
        "helm dependency build",
        "kubectl delete job --ignore-not-found airbricks-run-airflow-migrations airbricks-create-user",
        "helm upgrade --install airbricks",
        "kubectl rollout status deployment/minio",
        "kubectl wait --for=condition=complete job/minio-buckets",
        "kubectl rollout status deployment/airbricks-api-server",
        "kubectl rollout status deployment/airbricks-triggerer",
    ]
    positions = [_index(commands, step) for step in steps]
    assert positions == sorted(positions), list(zip(steps, positions, strict=True))
    password = harness.secrets()["airbricks-ui-login"]["password"]
    assert "http://localhost:8080" in result.stdout
    assert "user:              airbricks" in result.stdout
    assert password in result.stdout


def test_helm_gets_the_local_layering_the_image_and_the_git_source(harness: Harness) -> None:
    assert harness.run("up").returncode == 0
    (upgrade,) = [call["argv"] for call in harness.calls() if call["argv"][:2] == ["upgrade", "--install"]]
    values = [upgrade[index + 1] for index, arg in enumerate(upgrade) if arg == "--values"]
    assert values == [str(harness.repo / "chart/values.yaml"), str(harness.repo / "chart/values-local.yaml")]
    sets = {upgrade[index + 1] for index, arg in enumerate(upgrade) if arg == "--set-string"}
    assert sets == {
        "airflow.images.airflow.tag=sha-0123456789ab",
        f"airflow.dags.gitSync.repo={GIT_REPO}",
        "airflow.dags.gitSync.branch=feature/dags",
        "airflow.dags.gitSync.ref=feature/dags",
    }
    assert {
        "--wait",
        "--wait-for-jobs",
        "--namespace",
        "airbricks",
        "--kube-context",
        "kind-airbricks",
    } <= set(upgrade)
    (emulator,) = [
        call["stdin"]
        for call in harness.calls()
        if call["stdin"] and "name: databricks-emulator" in call["stdin"]
    ]
    assert "image: airbricks-airflow:sha-0123456789ab" in emulator
    assert "image: airbricks-airflow:kind" not in emulator


def test_second_kind_up_keeps_cluster_and_secrets(harness: Harness) -> None:
    first = harness.run("up")
    assert first.returncode == 0, first.stderr
    secrets_before = harness.secrets()
    assert set(GENERATED_SECRETS) <= set(secrets_before)
    harness.reset_log()

    second = harness.run("up")
    assert second.returncode == 0, second.stderr
    commands = harness.commands()
    assert not [command for command in commands if command.startswith("kind create cluster")]
    created = [c for c in commands if c.startswith("kubectl create secret generic") and "--dry-run" not in c]
    assert created == [], "a rerun must not generate secrets again"
    assert harness.secrets() == secrets_before
    assert "exists: kept" in second.stderr
    assert secrets_before["airbricks-ui-login"]["password"] in second.stdout


def test_generated_secrets_are_well_formed(harness: Harness) -> None:
    from cryptography.fernet import Fernet

    assert harness.run("up").returncode == 0
    secrets = harness.secrets()
    Fernet(secrets["airbricks-fernet-key"]["fernet-key"].encode())  # raises on a malformed key
    assert len(secrets["airbricks-jwt-secret"]["jwt-secret"]) == 48
    assert len(secrets["airbricks-api-secret-key"]["api-secret-key"]) == 48
    assert len(secrets["airbricks-ui-login"]["password"]) == 20
    pg_password = secrets["airbricks-postgresql"]["postgres-password"]
    assert secrets["airbricks-metadata-db"]["connection"] == (
        f"postgresql://postgres:{pg_password}@airbricks-postgresql.airbricks:5432/postgres?sslmode=disable"
    )
    connections = secrets["airbricks-connections"]
    minio = secrets["airbricks-minio"]
    s3 = json.loads(connections["AIRFLOW_CONN_AWS_DEFAULT"])
    assert (s3["login"], s3["password"]) == (minio["root-user"], minio["root-password"])
    assert s3["extra"]["endpoint_url"] == "http://minio.airbricks:9000"
    assert connections["AIRFLOW_CONN_AWS_LOGS"] == connections["AIRFLOW_CONN_AWS_DEFAULT"]
    databricks = json.loads(connections["AIRFLOW_CONN_DATABRICKS_DEFAULT"])
    assert databricks["password"] == secrets["airbricks-databricks-emulator"]["token"]
    assert databricks["host"] == "databricks-emulator.airbricks"


def test_no_secret_value_ever_reaches_a_command_line(harness: Harness) -> None:
    """Secrets go through 0600 files (--from-file), never argv, where `ps` would show them."""
    token = "ghp_" + base64.b32encode(os.urandom(15)).decode()
    assert harness.run("up", GIT_TOKEN=token).returncode == 0
    not_secret = {"username", "GITSYNC_USERNAME", "GIT_SYNC_USERNAME"}
    values = {
        value
        for secret in harness.secrets().values()
        for key, value in secret.items()
        if key not in not_secret and len(value) >= 16
    }
    assert token in {secret.get("GITSYNC_PASSWORD") for secret in harness.secrets().values()}
    for call in harness.calls():
        argv = " ".join(call["argv"])
        leaked = [value for value in values if value in argv]
        assert not leaked, f"{call['tool']} {argv}"


def test_git_token_adds_the_credentials_secret(harness: Harness) -> None:
    assert harness.run("up", GIT_TOKEN="t0ken-for-test", GIT_USERNAME="someone").returncode == 0
    credentials = harness.secrets()["airbricks-git-credentials"]
    assert credentials["GITSYNC_USERNAME"] == "someone"
    assert credentials["GITSYNC_PASSWORD"] == credentials["GIT_SYNC_PASSWORD"] == "t0ken-for-test"
    (upgrade,) = [call["argv"] for call in harness.calls() if call["argv"][:2] == ["upgrade", "--install"]]
    assert "airflow.dags.gitSync.credentialsSecret=airbricks-git-credentials" in upgrade


def test_ssh_key_needs_known_hosts(harness: Harness, tmp_path: pathlib.Path) -> None:
    key = tmp_path / "deploy_key"
    key.write_text("not-a-real-key\n")
    result = harness.run("up", GIT_SSH_KEY_FILE=str(key), GIT_REPO="git@github.com:example/airbricks.git")
    assert result.returncode == 1
    assert "GIT_KNOWN_HOSTS_FILE" in result.stderr
    assert not [c for c in harness.commands() if c.startswith("helm upgrade")]

    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("github.com ssh-ed25519 AAAA\n")
    result = harness.run(
        "up",
        GIT_SSH_KEY_FILE=str(key),
        GIT_KNOWN_HOSTS_FILE=str(known_hosts),
        GIT_REPO="git@github.com:example/airbricks.git",
    )
    assert result.returncode == 0, result.stderr
    assert harness.secrets()["airbricks-git-ssh"]["gitSshKey"] == "not-a-real-key"
    (upgrade,) = [call["argv"] for call in harness.calls() if call["argv"][:2] == ["upgrade", "--install"]]
    assert f"airflow.dags.gitSync.knownHosts={known_hosts}" in upgrade


def test_repo_url_with_credentials_is_refused(harness: Harness) -> None:
    result = harness.run("up", GIT_REPO="https://user:secret@github.com/example/airbricks.git")
    assert result.returncode == 1
    assert "must not contain credentials" in result.stderr


def test_no_git_source_gives_an_actionable_error(harness: Harness) -> None:
    env = {key: value for key, value in harness.env.items() if key != "GIT_REPO"}
    harness.env = env
    result = harness.run("up")
    assert result.returncode == 1
    assert "set GIT_REPO=https://github.com/<you>/airbricks.git" in result.stderr


@pytest.mark.parametrize("missing", TOOLS)
def test_missing_tool_is_named_with_an_install_hint(tmp_path: pathlib.Path, missing: str) -> None:
    harness = Harness(tmp_path, tools=tuple(tool for tool in TOOLS if tool != missing))
    result = harness.run("up")
    assert result.returncode == 127
    assert f"{missing} is not installed" in result.stderr
    assert "install" in result.stderr.split(f"{missing} is not installed", 1)[1]
    assert not [
        c for c in harness.commands() if c.startswith(("kind create", "docker build", "helm upgrade"))
    ]


@pytest.mark.parametrize(
    ("tool", "version", "minimum"),
    [
        ("helm", "v3.18.4", "3.19.0"),
        ("kind", "kind v0.29.0 go1.24", "0.31.0"),
        ("docker", "20.10.7", "24.0.0"),
    ],
)
def test_old_tool_is_refused(harness: Harness, tool: str, version: str, minimum: str) -> None:
    result = harness.run("up", **{f"FAKE_{tool.upper()}_VERSION": version})
    assert result.returncode == 126
    assert f"too old, airbricks needs >= {minimum}" in result.stderr


def test_docker_daemon_down(harness: Harness) -> None:
    result = harness.run("up", FAKE_DOCKER_DOWN="1")
    assert result.returncode == 1
    assert "Docker daemon is not reachable" in result.stderr


def test_local_dags_mode_mounts_the_checkout(harness: Harness) -> None:
    result = harness.run("up", AIRBRICKS_LOCAL_DAGS="1")
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(json.loads(harness.state.read_text())["cluster_config"])
    worker = config["nodes"][1]
    assert worker["labels"]["airbricks.dev/local-dags"] == "true"
    assert worker["extraMounts"] == [
        {"hostPath": str(harness.repo / "dags"), "containerPath": "/airbricks/dags", "readOnly": True}
    ]
    assert "extraMounts" not in config["nodes"][0]
    assert config["nodes"][0]["image"] == worker["image"]
    (upgrade,) = [call["argv"] for call in harness.calls() if call["argv"][:2] == ["upgrade", "--install"]]
    assert str(harness.repo / "chart/values-local-dags.yaml") in upgrade
    assert not [arg for arg in upgrade if arg.startswith("airflow.dags.gitSync.repo=")]
    assert (
        _index(harness.commands(), "kubectl apply -f " + str(harness.repo / "k8s/local-dags/volume.yaml"))
        >= 0
    )
    # The committed config stays free of any host path.
    assert "extraMounts" not in (REPO_ROOT / "k8s/kind/cluster.yaml").read_text()


def test_local_dags_on_a_cluster_without_the_mount(harness: Harness) -> None:
    assert harness.run("up").returncode == 0
    result = harness.run("up", AIRBRICKS_LOCAL_DAGS="1")
    assert result.returncode == 1
    assert "make kind-down" in result.stderr


def test_deploy_needs_a_cluster(harness: Harness) -> None:
    result = harness.run("deploy")
    assert result.returncode == 1
    assert "run 'make kind-up' first" in result.stderr


def test_deploy_rebuilds_reloads_and_upgrades(harness: Harness) -> None:
    assert harness.run("up").returncode == 0
    harness.reset_log()
    result = harness.run("deploy")
    assert result.returncode == 0, result.stderr
    commands = harness.commands()
    order = ["docker build", "kind load docker-image", "helm upgrade --install", "kubectl rollout status"]
    positions = [_index(commands, step) for step in order]
    assert positions == sorted(positions)
    assert not [c for c in commands if c.startswith("kind create cluster")]


def test_kind_down_deletes_and_is_idempotent(harness: Harness) -> None:
    assert harness.run("up").returncode == 0
    assert harness.run("down").returncode == 0
    assert "kind delete cluster --name airbricks" in harness.commands()
    harness.reset_log()
    again = harness.run("down")
    assert again.returncode == 0
    assert "nothing to delete" in again.stderr
    assert not [c for c in harness.commands() if c.startswith("kind delete")]


def test_ui_forwards_the_api_server(harness: Harness) -> None:
    assert harness.run("up").returncode == 0
    harness.reset_log()
    result = harness.run("ui")
    assert result.returncode == 0, result.stderr
    assert "kubectl port-forward svc/airbricks-api-server 8080:8080" in harness.commands()


def test_commands_on_a_missing_cluster_say_what_to_do(harness: Harness) -> None:
    for command in ("ui", "status", "logs", "smoke"):
        result = harness.run(command)
        assert result.returncode == 1, command
        assert "run 'make kind-up' first" in result.stderr, command


def test_unknown_command(harness: Harness) -> None:
    result = harness.run("frobnicate")
    assert result.returncode == 2
    assert "unknown command 'frobnicate'" in result.stderr
    assert "scripts/kind.sh up" in result.stderr
