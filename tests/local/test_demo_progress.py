"""The demo's heartbeat: during a long wait it repeats the latest state after each stretch of silence."""

from __future__ import annotations

import re
import time

import pytest

from airbricks.local import demo


def _wait_for_output(capsys: pytest.CaptureFixture[str], needle: str, seen: list[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        seen.append(capsys.readouterr().out)
        if needle in "".join(seen):
            return
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never printed:\n{''.join(seen)}")


def test_heartbeat_repeats_the_latest_status_while_silent(capsys: pytest.CaptureFixture[str]) -> None:
    status = {"text": "bronze=RUNNING"}
    seen: list[str] = []
    with demo.heartbeat("databricks: waiting", status=lambda: status["text"], quiet_seconds=0.3):
        _wait_for_output(capsys, "s): bronze=RUNNING\n", seen)
        status["text"] = "bronze=SUCCESS silver=RUNNING"
        _wait_for_output(capsys, "s): bronze=SUCCESS silver=RUNNING\n", seen)
    seen.append(capsys.readouterr().out)
    time.sleep(0.8)  # the block is over: its thread has stopped
    assert capsys.readouterr().out == ""
    lines = "".join(seen).splitlines()
    assert lines
    assert all(
        re.fullmatch(r"demo \| databricks: waiting \(\d+s\): bronze=\S+( silver=RUNNING)?", x) for x in lines
    )


def test_heartbeat_stays_quiet_while_the_demo_is_talking(capsys: pytest.CaptureFixture[str]) -> None:
    with demo.heartbeat("waiting", quiet_seconds=3):
        for n in range(8):
            demo.say(f"line {n}")
            time.sleep(0.1)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"demo | line {n}" for n in range(8)]


def test_library_logs_go_to_the_process_log_not_to_the_output(tmp_path) -> None:
    """Importing Airflow makes every INFO record print on stdout; the demo sends them to its process log."""
    import subprocess
    import sys

    log = tmp_path / "demo-process.log"
    script = (
        "import logging, sys\n"
        "import airbricks.databricks.processing  # imports Airflow, which logs INFO to stdout\n"
        "from airbricks.local.demo import log_libraries_to, say\n"
        "log_libraries_to(__import__('pathlib').Path(sys.argv[1]))\n"
        "logging.getLogger('airbricks.local.replay').info('API replay server listening on x')\n"
        "logging.getLogger('botocore.credentials').info('Found credentials in environment variables.')\n"
        "say('done')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(log)], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout == "demo | done\n"
    text = log.read_text()
    assert "airbricks.local.replay API replay server listening on x" in text
    assert "botocore.credentials Found credentials" in text
