"""Decision logic of .github/scripts/deploy.sh, the release steps the workflow runs.

GitHub's API, ECR and EKS cannot run on this machine, so ``gh``, ``aws``, ``helm`` and ``kubectl`` are
replaced on PATH by recording stand-ins that answer what the real tools answer (exit code + stdout) for the
case under test. What is under test is the script's own behaviour: which commit may deploy (never
backwards), how the deploy branch moves (fast-forward only), the exact ``helm upgrade`` it issues, and that
bad input stops it with an error naming the problem before anything touches a cluster.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / ".github" / "scripts" / "deploy.sh"
NEW_SHA = "b" * 40
OLD_SHA = "a" * 40
REPO = "acme/airbricks"
IMAGE = f"111122223333.dkr.ecr.eu-west-1.amazonaws.com/airbricks:{NEW_SHA}"
# What `gh api` prints for a missing ref: the body on stdout, the status on stderr, exit code 1.
NOT_FOUND = '{"message":"Not Found","status":"404"}'
GH_404 = "gh: Not Found (HTTP 404)\n"

# A stand-in prints the canned stdout/stderr of the first rule whose pattern occurs in its arguments, exits
# with that rule's code, and appends its argv (one JSON list per line) to calls.jsonl.
STUB = """#!/usr/bin/env python3
import json, os, sys
tool, args = os.path.basename(sys.argv[0]), sys.argv[1:]
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps([tool, *args]) + "\\n")
for pattern, code, out, err in json.loads(os.environ.get("STUB_RULES_" + tool.upper(), "[]")):
    if pattern in " ".join(args):
        sys.stdout.write(out)
        sys.stderr.write(err)
        sys.exit(code)
"""


class Tools:
    """A PATH directory of recording stand-ins plus the rules they answer by."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / "calls.jsonl"
        self.rules: dict[str, list[tuple[str, int, str, str]]] = {}
        for name in ("gh", "aws", "helm", "kubectl"):
            path = self.bin / name
            path.write_text(STUB)
            path.chmod(path.stat().st_mode | stat.S_IEXEC)

    def answer(self, tool: str, pattern: str, code: int = 0, out: str = "", err: str = "") -> None:
        self.rules.setdefault(tool, []).append((pattern, code, out, err))

    def calls(self, tool: str) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [call[1:] for call in map(json.loads, self.log.read_text().splitlines()) if call[0] == tool]

    def run(self, command: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
        output = tmp_path / "github_output"
        output.write_text("")
        environment = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "RUNNER_TEMP": str(tmp_path),
            "GITHUB_OUTPUT": str(output),
            "STUB_LOG": str(self.log),
            **{f"STUB_RULES_{tool.upper()}": json.dumps(rules) for tool, rules in self.rules.items()},
            **env,
        }
        return subprocess.run(
            ["bash", str(DEPLOY), command], env=environment, capture_output=True, text=True, check=False
        )


def outputs(tmp_path: Path) -> dict[str, str]:
    lines = (tmp_path / "github_output").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


@pytest.fixture
def tools(tmp_path: Path) -> Tools:
    return Tools(tmp_path)


ORDER_ENV = {"DEPLOY_ENV": "staging", "GITHUB_SHA": NEW_SHA, "GITHUB_REPOSITORY": REPO, "GH_TOKEN": "t"}


@pytest.mark.parametrize(
    ("status", "proceed"),
    [("ahead", "true"), ("identical", "true"), ("behind", "false")],
)
def test_check_order_deploys_forwards_or_same_and_skips_older_commits(
    tools: Tools, tmp_path: Path, status: str, proceed: str
) -> None:
    tools.answer("gh", "git/ref/heads/deploy/staging", out=OLD_SHA)
    tools.answer("gh", f"compare/{OLD_SHA}...{NEW_SHA}", out=status)
    result = tools.run("check-order", tmp_path, **ORDER_ENV)
    assert result.returncode == 0, result.stderr
    assert outputs(tmp_path) == {"proceed": proceed}


def test_check_order_refuses_a_deploy_branch_moved_by_hand(tools: Tools, tmp_path: Path) -> None:
    tools.answer("gh", "git/ref/heads/deploy/staging", out=OLD_SHA)
    tools.answer("gh", "compare/", out="diverged")
    result = tools.run("check-order", tmp_path, **ORDER_ENV)
    assert result.returncode == 1
    assert "deploy/staging" in result.stderr
    assert "diverged" in result.stderr
    assert outputs(tmp_path) == {}


def test_check_order_treats_a_missing_branch_as_the_first_deploy(tools: Tools, tmp_path: Path) -> None:
    tools.answer("gh", "git/ref/heads/deploy/staging", code=1, out=NOT_FOUND, err=GH_404)
    result = tools.run("check-order", tmp_path, **ORDER_ENV)
    assert result.returncode == 0, result.stderr
    assert outputs(tmp_path) == {"proceed": "true"}
    assert not [call for call in tools.calls("gh") if "compare" in " ".join(call)]


@pytest.mark.parametrize("command", ["check-order", "advance-ref"])
def test_an_api_failure_other_than_404_stops_the_release(tools: Tools, tmp_path: Path, command: str) -> None:
    tools.answer("gh", "git/ref/heads/deploy/staging", code=1, err="gh: Bad credentials (HTTP 401)\n")
    result = tools.run(command, tmp_path, **ORDER_ENV)
    assert result.returncode == 1
    assert "HTTP 401" in result.stderr
    assert outputs(tmp_path) == {}
    assert not [call for call in tools.calls("gh") if "--method" in call]


def test_advance_ref_fast_forwards_an_existing_branch(tools: Tools, tmp_path: Path) -> None:
    tools.answer("gh", "git/ref/heads/deploy/production", out=OLD_SHA)
    result = tools.run("advance-ref", tmp_path, **{**ORDER_ENV, "DEPLOY_ENV": "production"})
    assert result.returncode == 0, result.stderr
    update = tools.calls("gh")[-1]
    assert update[:3] == ["api", "--method", "PATCH"]
    assert f"repos/{REPO}/git/refs/heads/deploy/production" in update
    assert f"sha={NEW_SHA}" in update
    assert "force=false" in update


def test_advance_ref_creates_a_missing_branch(tools: Tools, tmp_path: Path) -> None:
    tools.answer("gh", "git/ref/heads/deploy/staging", code=1, out=NOT_FOUND, err=GH_404)
    result = tools.run("advance-ref", tmp_path, **ORDER_ENV)
    assert result.returncode == 0, result.stderr
    create = tools.calls("gh")[-1]
    assert create[:3] == ["api", "--method", "POST"]
    assert "ref=refs/heads/deploy/staging" in create


def test_advance_ref_fails_when_github_refuses_the_move(tools: Tools, tmp_path: Path) -> None:
    tools.answer("gh", "--method PATCH", code=1, err="gh: Update is not a fast forward (HTTP 422)\n")
    tools.answer("gh", "git/ref/heads/deploy/staging", out=OLD_SHA)
    result = tools.run("advance-ref", tmp_path, **ORDER_ENV)
    assert result.returncode != 0


UPGRADE_ENV = {
    "DEPLOY_ENV": "staging",
    "IMAGE": IMAGE,
    "EKS_CLUSTER": "airbricks-staging",
    "AWS_REGION": "eu-west-1",
    "K8S_NAMESPACE": "airflow",
    "HELM_RELEASE": "airbricks",
    "HELM_VALUES": "chart/values.yaml chart/values-prod.yaml",
}


def test_helm_upgrade_issues_an_atomic_waiting_upgrade_with_the_commit_image(
    tools: Tools, tmp_path: Path
) -> None:
    result = tools.run("helm-upgrade", tmp_path, **UPGRADE_ENV)
    assert result.returncode == 0, result.stderr
    (kubeconfig,) = tools.calls("aws")
    assert kubeconfig[:4] == ["eks", "update-kubeconfig", "--name", "airbricks-staging"]
    (delete_jobs,) = tools.calls("kubectl")
    assert delete_jobs[:4] == ["--namespace", "airflow", "delete", "job"]
    assert "airbricks-run-airflow-migrations" in delete_jobs
    helm = tools.calls("helm")
    assert helm[0][:2] == ["repo", "add"]
    assert helm[1] == ["dependency", "build", str(REPO_ROOT / "chart")]
    upgrade = helm[2]
    assert upgrade[:4] == ["upgrade", "--install", "airbricks", str(REPO_ROOT / "chart")]
    for flag in ("--atomic", "--wait", "--wait-for-jobs"):
        assert flag in upgrade
    values = [upgrade[i + 1] for i, arg in enumerate(upgrade) if arg == "--values"]
    assert values == [str(REPO_ROOT / "chart/values.yaml"), str(REPO_ROOT / "chart/values-prod.yaml")]
    sets = [upgrade[i + 1] for i, arg in enumerate(upgrade) if arg == "--set-string"]
    assert f"airflow.images.airflow.tag={NEW_SHA}" in sets
    assert "airflow.images.airflow.repository=111122223333.dkr.ecr.eu-west-1.amazonaws.com/airbricks" in sets
    assert "airflow.dags.gitSync.ref=deploy/staging" in sets


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"IMAGE": "registry.example:5000/airbricks"}, "is not of the form <registry>/<repo>:<tag>"),
        ({"HELM_VALUES": "chart/values.yaml chart/values-nope.yaml"}, "values file chart/values-nope.yaml"),
        ({"EKS_CLUSTER": ""}, "EKS_CLUSTER is empty"),
    ],
)
def test_helm_upgrade_stops_on_bad_input_before_touching_a_cluster(
    tools: Tools, tmp_path: Path, override: dict[str, str], message: str
) -> None:
    result = tools.run("helm-upgrade", tmp_path, **{**UPGRADE_ENV, **override})
    assert result.returncode == 1
    assert message in result.stderr
    assert tools.calls("aws") == []
    assert tools.calls("helm") == []


def test_rollback_refuses_when_there_is_nothing_to_roll_back_to(tools: Tools, tmp_path: Path) -> None:
    tools.answer("helm", "history", out='[{"revision": 1, "status": "deployed"}]')
    result = tools.run("rollback", tmp_path, **UPGRADE_ENV)
    assert result.returncode == 1
    assert "no earlier revision" in result.stderr
    assert not [call for call in tools.calls("helm") if call[0] == "rollback"]


def test_rollback_returns_to_the_previous_revision(tools: Tools, tmp_path: Path) -> None:
    tools.answer("helm", "history", out='[{"revision": 1}, {"revision": 2}]')
    result = tools.run("rollback", tmp_path, **UPGRADE_ENV)
    assert result.returncode == 0, result.stderr
    rollback = [call for call in tools.calls("helm") if call[0] == "rollback"]
    assert rollback == [
        ["rollback", "airbricks", "--namespace", "airflow", "--wait", "--wait-for-jobs", "--timeout", "20m"]
    ]
    assert [call for call in tools.calls("kubectl") if "delete" in call], "the finished Job blocks a rollback"


def test_image_ref_names_the_image_after_the_commit_and_reuses_an_existing_one(
    tools: Tools, tmp_path: Path
) -> None:
    env = {"REGISTRY": "111122223333.dkr.ecr.eu-west-1.amazonaws.com", "ECR_REPOSITORY": "airbricks"}
    tools.answer("aws", "describe-images", code=0, out="{}")
    result = tools.run("image-ref", tmp_path, GITHUB_SHA=NEW_SHA, **env)
    assert result.returncode == 0, result.stderr
    assert outputs(tmp_path) == {"image": IMAGE, "exists": "true"}


def test_unknown_command_lists_the_valid_ones(tools: Tools, tmp_path: Path) -> None:
    result = tools.run("deploy-everything", tmp_path)
    assert result.returncode == 1
    assert "unknown command 'deploy-everything'" in result.stderr
    assert "check-order" in result.stderr


def test_smoke_fails_when_a_workload_still_runs_another_image(tools: Tools, tmp_path: Path) -> None:
    registry_repo = IMAGE.rsplit(":", 1)[0]
    workloads = {
        "items": [
            {
                "metadata": {"name": name},
                "spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}},
            }
            for name, image in [
                ("airbricks-api-server", IMAGE),
                ("airbricks-scheduler", f"{registry_repo}:{OLD_SHA}"),
                ("airbricks-statsd", "quay.io/prometheus/statsd-exporter:v0.28.0"),  # not ours: ignored
            ]
        ]
    }
    tools.answer("kubectl", "get deployments,statefulsets", out=json.dumps(workloads))
    result = tools.run("smoke", tmp_path, **UPGRADE_ENV)
    assert result.returncode == 1
    assert f"airbricks-scheduler: {registry_repo}:{OLD_SHA}" in result.stderr
    assert "airbricks-api-server" not in result.stderr
    assert "airbricks-statsd" not in result.stderr
    assert not [
        call for call in tools.calls("kubectl") if call[0] == "--namespace" and "port-forward" in call
    ]
