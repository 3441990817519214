"""The demo's Airflow API client against a real local HTTP server that fails like a locked SQLite DB."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from airbricks.local.demo import AirflowApi, DemoError


class _FlakyApi(BaseHTTPRequestHandler):
    failures_left = 0
    patches = 0

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # /auth/token
        self.rfile.read(int(self.headers["Content-Length"]))
        self._send(201, {"access_token": "t"})

    def do_PATCH(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).patches += 1
        if type(self).failures_left > 0:
            type(self).failures_left -= 1
            self._send(500, {"detail": {"reason": "Database error"}})
        else:
            self._send(200, {"is_paused": False})


@pytest.fixture
def api_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FlakyApi.patches = 0
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_database_error_is_retried(api_server):
    _FlakyApi.failures_left = 2

    result = AirflowApi(api_server, "admin", "pw").call("PATCH", "/dags/d", json={"is_paused": False})

    assert result == {"is_paused": False}
    assert _FlakyApi.patches == 3


def test_a_lasting_error_names_the_call_and_the_answer(api_server):
    _FlakyApi.failures_left = 100

    with pytest.raises(DemoError, match=r"PATCH /dags/d answered 500: .*Database error"):
        AirflowApi(api_server, "admin", "pw").call("PATCH", "/dags/d", json={"is_paused": False})
    assert _FlakyApi.patches == 5  # the first try and 4 retries
