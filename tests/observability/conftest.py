"""Fixtures of the observability tests: a real webhook receiver, a StatsD UDP socket, promtool, the chart.

- ``webhook_server``: stdlib ``http.server`` on 127.0.0.1 recording every request (method, path, headers,
  JSON body); ``.status`` sets the answer code so failures of the receiver can be tested.
- ``statsd_socket``: a UDP socket on 127.0.0.1 with Airflow's ``[metrics]`` pointed at it and the Task SDK
  metrics client re-initialised, as the chart configures it (InfluxDB tags on, legacy names off).
- ``promtool``: the real ``promtool``. From PATH, else from a cache, else extracted from Debian's
  ``prometheus`` package (``apt-get download`` + ``dpkg-deb -x``, no root needed). Skips with the reason
  when none of that is possible (not a Debian-like machine, no network).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from obs_paths import CHART_DIR, RULES_FILE

PROMTOOL_CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache")) / "airbricks"


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookServer:
    """A recording HTTP receiver; ``url`` is its base URL."""

    url: str = ""
    status: int = 200
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
        self.status = 200


@pytest.fixture(scope="session")
def _webhook_server_session() -> Iterator[WebhookServer]:
    state = WebhookServer()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with state.lock:
                state.requests.append(RecordedRequest("POST", self.path, dict(self.headers.items()), body))
            # Slack's webhook answers text "ok"; chat.postMessage answers JSON {"ok": true}.
            answer = b'{"ok": true}' if "chat.postMessage" in self.path else b"ok"
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json" if answer.startswith(b"{") else "text/plain")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook_server(_webhook_server_session: WebhookServer) -> Iterator[WebhookServer]:
    _webhook_server_session.reset()
    yield _webhook_server_session
    _webhook_server_session.reset()


class StatsdSocket:
    """UDP receiver of StatsD packets."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]

    def drain(self, timeout: float = 2.0) -> list[str]:
        """Every line received until nothing arrives for 0.2 s (or ``timeout`` passes)."""
        import time

        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                break
            lines.extend(line for line in data.decode().splitlines() if line)
        return lines


@pytest.fixture
def statsd_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatsdSocket]:
    """Airflow's metrics client pointed at a local UDP socket, configured as the chart configures it."""
    receiver = StatsdSocket()
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(receiver.port))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__LEGACY_NAMES_ON", "False")
    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics.stats_utils import get_stats_factory

    stats.initialize(factory=get_stats_factory(), export_legacy_names=False)
    receiver.drain(timeout=0.3)
    yield receiver
    receiver.sock.close()
    # Back to "not initialised": the next user re-reads [metrics] (the env vars are gone by then).
    from airflow.sdk._shared.observability.metrics import stats as shared_stats
    from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger

    stats.initialize(factory=NoStatsLogger, export_legacy_names=False)
    shared_stats._factory = None


def _promtool_from_debian(target_dir: pathlib.Path) -> pathlib.Path:
    """Extract promtool from Debian's ``prometheus`` package into ``target_dir`` (no root, no install)."""
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(["apt-get", "download", "prometheus"], cwd=work, check=True, capture_output=True)
        (deb,) = pathlib.Path(work).glob("prometheus_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(pathlib.Path(work) / "x")], check=True)
        target_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pathlib.Path(work) / "x" / "usr" / "bin" / "promtool", target_dir / "promtool")
    return target_dir / "promtool"


@pytest.fixture(scope="session")
def promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    cached = PROMTOOL_CACHE / "promtool"
    if cached.is_file() and os.access(cached, os.X_OK):
        return str(cached)
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        pytest.skip("promtool not on PATH and no apt-get/dpkg-deb to fetch Debian's prometheus package")
    try:
        return str(_promtool_from_debian(PROMTOOL_CACHE))
    except (subprocess.CalledProcessError, ValueError, OSError) as error:
        detail = getattr(error, "stderr", b"") or b""
        pytest.skip(
            f"promtool unavailable: fetching Debian package prometheus failed: {error} {detail[-300:]!r}"
        )


@pytest.fixture(scope="session")
def chart_values() -> dict[str, Any]:
    with (CHART_DIR / "values.yaml").open() as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="session")
def statsd_mappings(chart_values: dict[str, Any]) -> list[dict[str, Any]]:
    return chart_values["airflow"]["statsd"]["overrideMappings"]


@pytest.fixture(scope="session")
def alert_rules() -> dict[str, Any]:
    with RULES_FILE.open() as handle:
        return yaml.safe_load(handle)
