"""The .dockerignore keeps the build context small, and what it keeps is enough to build the package."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from docker.utils.build import exclude_paths  # docker's own .dockerignore matcher (docker==7.x, in the lock)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "cicd" / "Dockerfile"


def _context() -> set[str]:
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return set(exclude_paths(str(REPO_ROOT), patterns, dockerfile="cicd/Dockerfile"))


@pytest.fixture(scope="module")
def context() -> set[str]:
    return _context()


@pytest.mark.parametrize(
    "excluded",
    [".venv", ".git", "tests", ".demo", "docs", "chart", "k8s", "scripts", "bench", ".github", "dags"],
)
def test_heavy_or_irrelevant_paths_are_excluded(context: set[str], excluded: str) -> None:
    assert not [path for path in context if path == excluded or path.startswith(f"{excluded}/")]


def test_no_bytecode_or_local_state(context: set[str]) -> None:
    assert not [path for path in context if "__pycache__" in path or path.endswith(".pyc")]
    assert not [path for path in context if pathlib.PurePath(path).name in {".env", "kubeconfig"}]


def test_everything_the_dockerfile_copies_is_in_the_context(context: set[str]) -> None:
    text = DOCKERFILE.read_text()
    sources = re.findall(r"^COPY (?:--chown=\S+ )?(?!--from)(.+) \S+$", text, re.M)
    sources += re.findall(r"--mount=type=bind,source=([^,\s]+),target", text)
    wanted = {source.rstrip("/") for group in sources for source in group.split()}
    for source in wanted:
        assert any(path == source or path.startswith(f"{source}/") for path in context), source


def test_context_is_small(context: set[str]) -> None:
    size = sum((REPO_ROOT / path).stat().st_size for path in context if (REPO_ROOT / path).is_file())
    assert size < 20 * 1024 * 1024, f"build context is {size / 1e6:.1f} MB"


def test_context_builds_the_airbricks_wheel(context: set[str], tmp_path: pathlib.Path) -> None:
    """What stage 1 of the Dockerfile does, from exactly the files the context contains."""
    source = tmp_path / "context"
    for path in context:
        if (REPO_ROOT / path).is_file():
            (source / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / path, source / path)
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-cache-dir",
            "--wheel-dir",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    wheel = wheels / "airbricks-0.1.0-py3-none-any.whl"
    assert wheel.is_file(), sorted(wheels.iterdir())
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read("airbricks-0.1.0.dist-info/entry_points.txt").decode()
    assert "airbricks/emulator/__init__.py" in names
    assert not [name for name in names if name.startswith(("tests/", "dags/"))]
    assert "airbricks-emulator = airbricks.local.emulator_cli:main" in entry_points
