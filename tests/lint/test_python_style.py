"""Python lint gate: ``ruff check`` and ``ruff format --check`` over the whole repo must be clean."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
RUFF = Path(sys.executable).with_name("ruff")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["check", "--no-fix", "."], id="ruff-check"),
        pytest.param(["format", "--check", "."], id="ruff-format"),
    ],
)
def test_ruff_clean(args: list[str]) -> None:
    assert RUFF.exists(), f"ruff not found next to {sys.executable}; run `make venv`"
    result = subprocess.run([str(RUFF), *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"ruff {' '.join(args)} found problems:\n{result.stdout}{result.stderr}"
