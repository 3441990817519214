"""The rules .github/workflows/ must keep, checked on the parsed YAML (and the release script it runs).

actionlint and zizmor (tests/lint/test_workflows.py) catch generic mistakes; these tests pin down this
project's own promises: CI runs the same Makefile targets as a developer, AWS is reached only through OIDC
role assumption, every action is pinned to a commit, deploys never overlap, production sits behind an
environment, Helm upgrades roll back on failure, and DAGs (the GitSync deploy branch) move only after the
deployed image passed its smoke check.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
DEPLOY_SCRIPT = REPO_ROOT / ".github" / "scripts" / "deploy.sh"
MAKEFILE = REPO_ROOT / "Makefile"
CI = "ci.yml"
RELEASE = "release.yml"
CONFIGURE_AWS = "aws-actions/configure-aws-credentials"
DEPLOY_JOBS = ("deploy-staging", "deploy-production")
# Commands that belong behind a Makefile target: a workflow running them directly is a second copy of the
# developer's command line that will drift from it.
TOOLS_BEHIND_MAKE = (
    "pytest",
    "ruff",
    "shellcheck",
    "hadolint",
    "actionlint",
    "zizmor",
    "pip",
    "uv",
    "bandit",
)
PINNED_USES = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+(\.\d+){1,2}\b")


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS_DIR / name).read_text())


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 reads the bare key `on` as the boolean True.
    value = workflow.get("on", workflow.get(True))
    return (
        value
        if isinstance(value, dict)
        else {name: None for name in ([value] if isinstance(value, str) else value)}
    )


def workflow_names() -> list[str]:
    return sorted(path.name for path in WORKFLOWS_DIR.glob("*.y*ml"))


def steps_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    return job.get("steps", [])


def all_jobs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name in workflow_names():
        for job_id, job in load(name)["jobs"].items():
            yield name, job_id, job


def run_commands(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in steps_of(job) if "run" in step]


def step_index(job: dict[str, Any], predicate) -> int:
    matches = [index for index, step in enumerate(steps_of(job)) if predicate(step)]
    assert len(matches) == 1, f"expected exactly one matching step, found {len(matches)}"
    return matches[0]


def runs(fragment: str):
    return lambda step: fragment in step.get("run", "")


def uses(action: str):
    return lambda step: step.get("uses", "").split("@")[0] == action


def deploy_function(name: str) -> str:
    """The body of one ``cmd_<name>`` function of the release script."""
    match = re.search(rf"^cmd_{name}\(\) \{{\n(.*?)^\}}", DEPLOY_SCRIPT.read_text(), re.MULTILINE | re.DOTALL)
    assert match, f"{DEPLOY_SCRIPT.name} has no cmd_{name}()"
    return match.group(1)


# ---- Same commands as local development ---------------------------------------------------------------


def test_ci_runs_make_lint_and_make_test() -> None:
    commands = [command.strip() for _, job in load(CI)["jobs"].items() for command in run_commands(job)]
    assert "make lint" in commands
    assert "make test" in commands


@pytest.mark.parametrize("workflow", workflow_names())
def test_no_workflow_duplicates_a_makefile_command(workflow: str) -> None:
    for job_id, job in load(workflow)["jobs"].items():
        for command in run_commands(job):
            words = set(re.findall(r"[\w.-]+", command))
            duplicated = words & set(TOOLS_BEHIND_MAKE)
            assert not duplicated, f"{workflow}:{job_id} runs {duplicated} directly; call its make target"


def test_every_make_target_a_workflow_calls_exists() -> None:
    defined = set(re.findall(r"^([a-zA-Z0-9_-]+):", MAKEFILE.read_text(), re.MULTILINE))
    called = {
        word
        for _, _, job in all_jobs()
        for command in run_commands(job)
        for line in command.splitlines()
        if line.strip().startswith("make ")
        for word in shlex.split(line)[1:]
        if not word.startswith("-") and "=" not in word
    }
    assert called, "no workflow calls make"
    assert called <= defined, f"workflows call make targets the Makefile lacks: {sorted(called - defined)}"


# ---- Permissions, OIDC, no static credentials -------------------------------------------------------------


@pytest.mark.parametrize("workflow", workflow_names())
def test_top_level_permissions_grant_nothing(workflow: str) -> None:
    assert load(workflow).get("permissions") in ({}, "read-all", {"contents": "read"}), (
        f"{workflow}: top-level permissions must be {{}} (each job asks for its own)"
    )


def test_every_job_declares_its_permissions() -> None:
    missing = [f"{name}:{job_id}" for name, job_id, job in all_jobs() if "permissions" not in job]
    assert not missing, f"jobs without an explicit permissions block: {missing}"


def _assumes_role(job: dict[str, Any]) -> bool:
    return any(uses(CONFIGURE_AWS)(step) for step in steps_of(job))


def _calls_release(job: dict[str, Any]) -> bool:
    return job.get("uses", "").endswith(f".github/workflows/{RELEASE}")


def test_id_token_write_only_where_a_role_is_assumed() -> None:
    for name, job_id, job in all_jobs():
        has_id_token = (job.get("permissions") or {}).get("id-token") == "write"
        # The job calling release.yml must hold the grant its called jobs narrow down from.
        needs_id_token = _assumes_role(job) or _calls_release(job)
        assert has_id_token == needs_id_token, f"{name}:{job_id}: id-token: write iff it assumes an AWS role"


def test_aws_is_reached_only_by_oidc_role_assumption() -> None:
    assuming = 0
    for name, job_id, job in all_jobs():
        for step in filter(uses(CONFIGURE_AWS), steps_of(job)):
            with_ = step.get("with", {})
            assert str(with_.get("role-to-assume", "")).startswith("${{ vars."), (
                f"{name}:{job_id}: role-to-assume must come from a repository/environment variable"
            )
            assert not {"aws-access-key-id", "aws-secret-access-key", "aws-session-token"} & set(with_)
            assuming += 1
    assert assuming >= 3, "expected role assumption in the ECR push job and both deploy jobs"


def test_no_static_aws_credentials_anywhere_in_github_dir() -> None:
    forbidden = re.compile(
        r"aws-access-key-id|aws-secret-access-key|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY", re.I
    )
    for path in (REPO_ROOT / ".github").rglob("*"):
        if path.is_file():
            assert not forbidden.search(path.read_text()), f"{path} mentions static AWS keys"


# ---- Supply chain and injection -------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", workflow_names())
def test_every_action_is_pinned_to_a_commit_with_its_version(workflow: str) -> None:
    for number, line in enumerate((WORKFLOWS_DIR / workflow).read_text().splitlines(), start=1):
        match = re.match(r"^\s*(?:-\s+)?uses:\s*(\S+)(.*)$", line)
        if not match or match.group(1).startswith("./"):
            continue
        reference, rest = match.groups()
        assert PINNED_USES.match(reference), f"{workflow}:{number}: {reference} is not pinned to a 40-hex SHA"
        assert VERSION_COMMENT.search(rest), f"{workflow}:{number}: add the version as a comment (# vX.Y.Z)"


def test_checkout_never_persists_credentials() -> None:
    for name, job_id, job in all_jobs():
        for step in filter(uses("actions/checkout"), steps_of(job)):
            assert step.get("with", {}).get("persist-credentials") is False, f"{name}:{job_id}"


def test_no_expression_is_spliced_into_a_shell_script() -> None:
    """Values reach run: steps through env: only, so no event text can become shell code."""
    for name, job_id, job in all_jobs():
        for command in run_commands(job):
            assert "${{" not in command, f"{name}:{job_id}: move the expression into env: ({command!r})"


def test_no_privileged_triggers() -> None:
    for name in workflow_names():
        dangerous = {"pull_request_target", "workflow_run"} & set(triggers(load(name)))
        assert not dangerous, f"{name} uses {dangerous}; release runs as a needs:-gated call from ci.yml"


# ---- Release flow ----------------------------------------------------------------------------------------


def test_release_is_called_only_for_main_pushes_after_every_check() -> None:
    ci = load(CI)
    callers = [(job_id, job) for job_id, job in ci["jobs"].items() if _calls_release(job)]
    assert len(callers) == 1, "ci.yml must call release.yml from exactly one job"
    job_id, job = callers[0]
    assert set(job["needs"]) == set(ci["jobs"]) - {job_id}, "the release must wait for every CI job"
    condition = job["if"].replace('"', "'")
    assert "github.event_name == 'push'" in condition
    assert "github.ref == 'refs/heads/main'" in condition
    assert set(triggers(load(RELEASE))) == {"workflow_call"}, "release.yml must not be triggerable on its own"


def test_ci_image_job_builds_with_layer_cache_and_blocks_critical_vulnerabilities() -> None:
    job = load(CI)["jobs"]["image"]
    build = steps_of(job)[step_index(job, uses("docker/build-push-action"))]["with"]
    assert build["push"] is False
    assert build["cache-from"] == "type=gha"
    assert build["cache-to"].startswith("type=gha")
    trivy = steps_of(job)[step_index(job, uses("aquasecurity/trivy-action"))]["with"]
    assert trivy["severity"] == "CRITICAL"
    assert str(trivy["exit-code"]) == "1"


def test_release_pushes_only_a_scanned_image_tagged_with_the_commit() -> None:
    job = load(RELEASE)["jobs"]["image"]
    build = step_index(job, uses("docker/build-push-action"))
    scan = step_index(job, uses("aquasecurity/trivy-action"))
    push = step_index(job, runs("docker push"))
    assert build < scan < push, "build, then scan, then push"
    assert steps_of(job)[build]["with"]["push"] is False
    assert "cache-to" not in steps_of(job)[build]["with"], "a publishing workflow must not write caches"
    assert str(steps_of(job)[scan]["with"]["exit-code"]) == "1"
    assert '"$REGISTRY/$ECR_REPOSITORY:$GITHUB_SHA"' in deploy_function("image_ref")


@pytest.mark.parametrize("job_id", DEPLOY_JOBS)
def test_deploy_jobs_never_overlap_or_cancel(job_id: str) -> None:
    job = load(RELEASE)["jobs"][job_id]
    concurrency = job.get("concurrency")
    assert isinstance(concurrency, dict), f"{job_id} needs a concurrency group"
    assert concurrency["cancel-in-progress"] is False, "a deploy must never be cancelled half-way"
    assert concurrency["group"] == f"deploy-{job['environment']['name']}"


def test_production_is_behind_its_environment_and_after_staging() -> None:
    jobs = load(RELEASE)["jobs"]
    assert jobs["deploy-staging"]["environment"]["name"] == "staging"
    assert jobs["deploy-production"]["environment"]["name"] == "production"
    assert "deploy-staging" in jobs["deploy-production"]["needs"]
    assert jobs["deploy-production"]["if"] == "needs.deploy-staging.outputs.proceed == 'true'"


def test_helm_upgrade_installs_atomically_and_waits_with_the_sha_tag() -> None:
    body = deploy_function("helm_upgrade")
    command = body[body.index("helm upgrade") :].split("\n\n")[0]
    for flag in ("--install", "--atomic", "--wait", "--wait-for-jobs", "--timeout"):
        assert flag in command, f"helm upgrade lacks {flag}"
    assert "airflow.images.airflow.tag=$tag" in command
    assert 'tag="${IMAGE##*:}"' in body
    assert "airflow.dags.gitSync.ref=$(deploy_branch)" in command


@pytest.mark.parametrize("job_id", DEPLOY_JOBS)
def test_dags_move_only_after_the_new_image_passed_its_smoke_check(job_id: str) -> None:
    job = load(RELEASE)["jobs"][job_id]
    upgrade = step_index(job, runs("deploy.sh helm-upgrade"))
    smoke = step_index(job, runs("deploy.sh smoke"))
    advance = step_index(job, runs("deploy.sh advance-ref"))
    assert upgrade < smoke < advance
    for index in (upgrade, smoke, advance):
        step = steps_of(job)[index]
        assert not step.get("continue-on-error"), f"{job_id}: a failure here must stop the job"
        assert "always()" not in step.get("if", "")
        assert "failure()" not in step.get("if", "")
    # The script moves the branch only forwards (the API refuses a non-fast-forward with force=false).
    assert "force=false" in deploy_function("advance_ref")


@pytest.mark.parametrize("job_id", DEPLOY_JOBS)
def test_failed_smoke_check_rolls_back(job_id: str) -> None:
    job = load(RELEASE)["jobs"][job_id]
    rollback = steps_of(job)[step_index(job, runs("deploy.sh rollback"))]
    assert rollback["if"] == "failure() && steps.smoke.outcome == 'failure'"
    assert "helm rollback" in deploy_function("rollback")


def test_every_release_subcommand_exists_in_the_script() -> None:
    script = DEPLOY_SCRIPT.read_text()
    for _, _, job in all_jobs():
        for command in run_commands(job):
            for sub in re.findall(r"deploy\.sh ([a-z-]+)", command):
                assert f"    {sub}) cmd_{sub.replace('-', '_')} ;;" in script, f"deploy.sh has no '{sub}'"
