#!/usr/bin/env python3
"""Trigger DAGs on a running Airflow 3 through its REST API (v2) and wait until every run succeeds.

Used by ``make kind-smoke`` (scripts/kind.sh forwards the API server to a local port and passes the login
from the Secret airbricks-ui-login through AIRBRICKS_UI_USERNAME / AIRBRICKS_UI_PASSWORD). Standard library
only, so it runs with any python3 and no virtualenv.

Exit codes: 0 every run succeeded, 1 a run failed or timed out, 2 bad arguments or the API is unusable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

TERMINAL_STATES = {"success", "failed"}


class SmokeError(Exception):
    """The API refused or failed a request the smoke check depends on."""


class AirflowApi:
    """The few Airflow REST API v2 calls the smoke check needs, with a JWT from the FAB auth manager.

    :param base_url: the API server, e.g. ``http://127.0.0.1:18080``.
    :param request_timeout: seconds allowed for each HTTP request.
    """

    def __init__(self, base_url: str, request_timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.request_timeout = request_timeout
        self.token: str | None = None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        url = self.base_url + path  # http(s) only: checked in parse_args
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            # The URL is built from --url, checked to be http(s) by parse_args.
            with urllib.request.urlopen(request, timeout=self.request_timeout) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise SmokeError(f"{method} {path}: HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise SmokeError(f"{method} {path}: {exc}") from exc
        return json.loads(payload) if payload else None

    def login(self, username: str, password: str) -> None:
        """Exchange the UI login for an access token (FAB auth manager: POST /auth/token)."""
        answer = self.request("POST", "/auth/token", {"username": username, "password": password})
        self.token = answer["access_token"]

    def trigger(self, dag_id: str) -> str:
        """Unpause ``dag_id`` and start a manual run now; returns the run id."""
        quoted = urllib.parse.quote(dag_id, safe="")
        self.request("PATCH", f"/api/v2/dags/{quoted}", {"is_paused": False})
        run = self.request("POST", f"/api/v2/dags/{quoted}/dagRuns", {"logical_date": None})
        return str(run["dag_run_id"])

    def run_state(self, dag_id: str, run_id: str) -> str:
        quoted_dag = urllib.parse.quote(dag_id, safe="")
        quoted_run = urllib.parse.quote(run_id, safe="")
        return str(self.request("GET", f"/api/v2/dags/{quoted_dag}/dagRuns/{quoted_run}")["state"])


def wait_for_api(api: AirflowApi, deadline: float) -> None:
    """The port-forward and the API server may need a few seconds after ``make kind-up``."""
    while True:
        try:
            api.request("GET", "/api/v2/monitor/health")
            return
        except SmokeError as exc:
            if time.monotonic() > deadline:
                raise SmokeError(f"API server not answering: {exc}") from exc
            time.sleep(2)


def wait_for_run(api: AirflowApi, dag_id: str, run_id: str, deadline: float, poll: float) -> str:
    state = api.run_state(dag_id, run_id)
    while state not in TERMINAL_STATES and time.monotonic() < deadline:
        time.sleep(poll)
        state = api.run_state(dag_id, run_id)
    return state


def run_smoke(api: AirflowApi, dag_ids: Sequence[str], timeout: float, poll: float) -> dict[str, str]:
    """Trigger the DAGs one after the other (a later DAG may read what an earlier one wrote), waiting for
    each run to finish; stops at the first run that does not succeed. Returns the state of each run."""
    deadline = time.monotonic() + timeout
    wait_for_api(api, deadline)
    states: dict[str, str] = {}
    for dag_id in dag_ids:
        run_id = api.trigger(dag_id)
        print(f"triggered {dag_id}: {run_id}", flush=True)
        states[dag_id] = wait_for_run(api, dag_id, run_id, deadline, poll)
        print(f"{dag_id}: {states[dag_id]}", flush=True)
        if states[dag_id] != "success":
            break
    return states


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="API server base URL, e.g. http://127.0.0.1:18080")
    parser.add_argument("--dags", required=True, help="comma-separated DAG ids to trigger")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for all runs (default 900)")
    parser.add_argument("--poll", type=float, default=5.0, help="seconds between state checks (default 5)")
    args = parser.parse_args(argv)
    if urllib.parse.urlsplit(args.url).scheme not in {"http", "https"}:
        parser.error(f"--url must be http(s), got {args.url!r}")
    args.dag_ids = [dag_id.strip() for dag_id in args.dags.split(",") if dag_id.strip()]
    if not args.dag_ids:
        parser.error("--dags names no DAG")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    username = os.environ.get("AIRBRICKS_UI_USERNAME", "")
    password = os.environ.get("AIRBRICKS_UI_PASSWORD", "")
    if not username or not password:
        print(
            "AIRBRICKS_UI_USERNAME and AIRBRICKS_UI_PASSWORD must be set (make kind-smoke does it)",
            file=sys.stderr,
        )
        return 2
    api = AirflowApi(args.url)
    try:
        wait_for_api(api, time.monotonic() + 120)
        api.login(username, password)
        states = run_smoke(api, args.dag_ids, args.timeout, args.poll)
    except SmokeError as exc:
        print(f"smoke: {exc}", file=sys.stderr)
        return 2
    failed = {
        dag_id: states.get(dag_id, "not run") for dag_id in args.dag_ids if states.get(dag_id) != "success"
    }
    if failed:
        print(f"smoke: not successful: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
