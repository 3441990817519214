"""Fixtures of the UI tests: the demo's Airflow kept running, and headless system Chromium.

The Airflow is ``make demo DEMO_ARGS=--keep-running`` itself (``python -m airbricks.local.demo
--keep-running``), not a second stack: its run has gone through ingestion, the asset event and the
Databricks job on the emulator by the time it prints the ``--keep-running`` line, so the UI has something
real to show. It is started once for this folder's tests and stopped with Ctrl-C (SIGINT), as a person
would stop it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ui_browser import VIEWPORT, system_chromium

from airbricks.local.demo import ADMIN_USER, AirflowApi
from airbricks.local.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
KEEP_RUNNING_LINE = re.compile(r"--keep-running: UI at (\S+);")
EMULATOR_LINE = re.compile(r"emulator on (http://\S+) with bundle jobs")  # the Databricks stage's line
DEMO_TIMEOUT = 720  # seconds for the demo to print its --keep-running line (~2 min idle, 6 on a busy box)


@dataclasses.dataclass
class DemoAirflow:
    """The running demo: where its UI is, how to log in, and its Databricks emulator."""

    base_url: str
    api_port: int
    username: str
    password: str
    emulator_url: str
    api: AirflowApi
    output: Path


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture(scope="module")
def demo_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoAirflow]:
    demo_dir = tmp_path_factory.mktemp("ui-demo")
    output = demo_dir / "demo.out"
    port = free_port()
    command = [sys.executable, "-m", "airbricks.local.demo", "--keep-running"]
    command += ["--demo-dir", str(demo_dir / "demo"), "--port", str(port)]
    # The demo's own limits (180 s to start, 240 s for the runs) are for a person at an idle machine; with
    # other test sessions on the same 2 cores Airflow alone can take longer to become healthy.
    command += ["--start-timeout", "300", "--run-timeout", "360"]
    started = time.monotonic()
    with output.open("w") as sink:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
    try:
        while not KEEP_RUNNING_LINE.search(text := _read(output)):
            if process.poll() is not None or time.monotonic() - started > DEMO_TIMEOUT:
                log = demo_dir / "demo" / "logs" / "airflow-standalone.log"
                pytest.fail(
                    f"the demo did not reach --keep-running (exit {process.poll()}, "
                    f"{time.monotonic() - started:.0f}s):\n{text}\n--- standalone log tail ---\n"
                    + "\n".join(_read(log).splitlines()[-40:])
                )
            time.sleep(1)
        assert re.search(r"^demo \| OK in \d+s$", text, re.M), f"the demo reported problems:\n{text}"
        print(f"\ndemo reached --keep-running in {time.monotonic() - started:.0f}s")
        password_file = demo_dir / "demo" / "airflow" / "simple_auth_manager_passwords.json.generated"
        password = json.loads(password_file.read_text())[ADMIN_USER]
        base_url = KEEP_RUNNING_LINE.search(text).group(1)
        emulator = EMULATOR_LINE.search(text)
        assert emulator, f"no emulator URL in the demo output:\n{text}"
        yield DemoAirflow(
            base_url=base_url,
            api_port=port,
            username=ADMIN_USER,
            password=password,
            emulator_url=emulator.group(1),
            api=AirflowApi(base_url, ADMIN_USER, password),
            output=output,
        )
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # the demo stops Airflow and its stand-ins, as on Ctrl-C
            try:
                process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=system_chromium(), headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium) -> Iterator[object]:
    """A fresh tab in a fresh context (no cookies: every test logs in itself)."""
    context = chromium.new_context(viewport=VIEWPORT)
    yield context.new_page()
    context.close()
