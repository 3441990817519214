"""``airbricks-emulator`` logs one line per request (method, path, status, ms) and never the token."""

from __future__ import annotations

import base64
import os
import re
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from airbricks.local.processes import free_port, http_ok, wait_until

pytestmark = pytest.mark.integration

ACCESS_LINE = re.compile(
    r"airbricks\.emulator\.access (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) \d+ms$"
)


def test_one_line_per_request_and_never_the_token(tmp_path: Path) -> None:
    port = free_port()
    token = secrets.token_urlsafe(24)
    wrong = secrets.token_urlsafe(24)
    in_query = secrets.token_urlsafe(12)
    env = {**os.environ, "AIRBRICKS_EMULATOR_TOKEN": token}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airbricks.local.emulator_cli",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: http_ok(f"{base}/_emulator/health"),
            timeout=60,
            what="the emulator",
            alive=lambda: proc.poll() is None,
        )
        good = {"Authorization": f"Bearer {token}"}
        basic = base64.b64encode(f"token:{token}".encode()).decode()
        answers = [
            (
                "GET",
                "/api/2.2/jobs/list",
                requests.get(f"{base}/api/2.2/jobs/list", headers=good, timeout=10),
            ),
            (
                "GET",
                "/api/2.2/jobs/list",
                requests.get(
                    f"{base}/api/2.2/jobs/list", headers={"Authorization": f"Bearer {wrong}"}, timeout=10
                ),
            ),
            (
                "GET",
                "/api/2.1/clusters/get",
                requests.get(f"{base}/api/2.1/clusters/get?cluster_id={in_query}", headers=good, timeout=10),
            ),
            (
                "POST",
                "/api/2.2/jobs/run-now",
                requests.post(f"{base}/api/2.2/jobs/run-now", headers=good, json={"job_id": 1}, timeout=10),
            ),
            (
                "GET",
                "/api/2.2/jobs/list",
                requests.get(
                    f"{base}/api/2.2/jobs/list", headers={"Authorization": f"Basic {basic}"}, timeout=10
                ),
            ),
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert [status for *_, status in ((m, p, r.status_code) for m, p, r in answers)] == [
        200,
        403,
        404,
        404,
        401,
    ]

    logged = [match.groupdict() for line in output.splitlines() if (match := ACCESS_LINE.search(line))]
    api_lines = [line for line in logged if line["path"].startswith("/api/")]
    assert [(line["method"], line["path"], int(line["status"])) for line in api_lines] == [
        (method, path, response.status_code) for method, path, response in answers
    ], output
    assert any(line["path"] == "/_emulator/health" and line["status"] == "200" for line in logged)
    # Neither the token (accepted, refused, or inside basic credentials) nor the query string is logged.
    for secret in (token, wrong, basic, in_query):
        assert secret not in output
