"""``make help``: plain text when its output is not a terminal (a pipe, a file, CI logs), colour on one."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TARGETS = re.compile(r"^\s*[a-zA-Z0-9_-]+:.*## ", re.MULTILINE)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    env.update(extra)
    return env


def test_help_is_plain_when_piped() -> None:
    result = subprocess.run(
        ["make", "-s", "help"], cwd=REPO_ROOT, capture_output=True, text=True, check=True, env=_env()
    )
    assert "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    assert len(lines) == len(TARGETS.findall((REPO_ROOT / "Makefile").read_text()))
    assert any(re.fullmatch(r"  run-dag +Run one ingestion DAG .*", line) for line in lines), lines


def _help_on_a_terminal(**extra: str) -> str:
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            ["make", "-s", "help"], cwd=REPO_ROOT, stdout=follower, stderr=follower, env=_env(**extra)
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed, all output read
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=30) == 0
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


def test_help_is_coloured_on_a_terminal_unless_no_color() -> None:
    coloured = _help_on_a_terminal()
    assert "\x1b[36mrun-dag" in coloured
    assert "\x1b" not in _help_on_a_terminal(NO_COLOR="1")
