"""Layering gate: the import contracts (`[tool.importlinter]`, pyproject.toml) hold; DAGs use no dev code.

The contracts (checked by import-linter's ``lint-imports``): no import cycles between the packages or
modules of any one package of ``airbricks``; the allowed direction ``testing > local > emulator |
reliability > preload > databricks > ingestion > notifications > lineage | metrics | partitions`` (a package
imports only from packages below it, so product code never imports a dev stand-in); the emulator imports no
other airbricks code. DAG files are not a package, so their rule is checked here on their syntax trees.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# Dev code: stand-ins, the demo, pytest plugins, the reliability report. Never imported by DAGs.
DEV_PACKAGES = ("airbricks.local", "airbricks.testing", "airbricks.emulator", "airbricks.reliability")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.exists(), f"lint-imports not found next to {sys.executable}; run `make venv`"
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_import_contracts_hold() -> None:
    result = _lint_imports(REPO_ROOT)
    assert result.returncode == 0, f"an import contract is broken:\n{result.stdout}{result.stderr}"
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "added_import", "broken"),
    [
        pytest.param(
            "airbricks/databricks/hooks.py",
            "import airbricks.local.s3",
            "Dev stand-ins above the product; the product one way BROKEN",
            id="product-imports-a-stand-in",
        ),
        pytest.param(
            "airbricks/notifications/__init__.py",
            "import airbricks.databricks.processing",
            "No import cycles between the packages or modules of any one package BROKEN",
            id="cycle",
        ),
    ],
)
def test_the_gate_fails_on_a_violation(tmp_path: Path, module: str, added_import: str, broken: str) -> None:
    skip_data = shutil.ignore_patterns("fixtures", "__pycache__")
    shutil.copytree(REPO_ROOT / "airbricks", tmp_path / "airbricks", ignore=skip_data)
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{added_import}\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert broken in " ".join(result.stdout.split()), result.stdout


def _imported_modules(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _dev_imports(path: Path) -> list[str]:
    return [m for m in _imported_modules(path) if m.startswith(DEV_PACKAGES)]


def test_dag_files_import_no_dev_code(tmp_path: Path) -> None:
    dag_files = sorted((REPO_ROOT / "dags").glob("*.py"))
    assert dag_files
    offending = {path.name: found for path in dag_files if (found := _dev_imports(path))}
    assert not offending, f"DAG files import dev code (only product code belongs in dags/): {offending}"
    # and the check sees such an import, also one inside a function
    sample = tmp_path / "sample_dag.py"
    sample.write_text("def make():\n    from airbricks.local.s3 import S3Server\n")
    assert _dev_imports(sample) == ["airbricks.local.s3"]
