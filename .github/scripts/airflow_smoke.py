#!/usr/bin/env python3
"""Smoke-check a running Airflow through its REST API (v2), as the release workflow does after an upgrade.

Passes when, within ``--timeout`` seconds:

* ``GET /api/v2/version`` answers with the expected Airflow version (the image really is the new one), and
* ``GET /api/v2/monitor/health`` reports every required component ``healthy``.

Both endpoints need no credentials, so the check needs no secret. Only the standard library is used: it runs
on a bare CI runner (``python3``) without the project's virtualenv.

Exit codes: 0 healthy, 1 not healthy before the deadline (the last problem is printed), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

DEFAULT_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


class SmokeError(Exception):
    """The API answered, or failed to, in a way that means Airflow is not (yet) healthy."""


def get_json(url: str, request_timeout: float) -> Any:
    """GET ``url`` and decode its JSON body; any failure becomes a :class:`SmokeError` naming the URL."""
    try:
        # The scheme is checked to be http(s) in parse_args, so no file:// or custom scheme reaches urlopen.
        with urllib.request.urlopen(url, timeout=request_timeout) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise SmokeError(f"GET {url} -> HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise SmokeError(f"GET {url} -> {exc}") from exc
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise SmokeError(f"GET {url} -> not JSON: {body[:200]!r}") from exc


def check_once(
    base_url: str, expect_version: str | None, components: Sequence[str], request_timeout: float
) -> str:
    """Run every check once; return a one-line summary or raise :class:`SmokeError` with the first problem."""
    version = get_json(f"{base_url}/api/v2/version", request_timeout)
    running = version.get("version") if isinstance(version, dict) else None
    if expect_version and running != expect_version:
        raise SmokeError(f"Airflow version is {running!r}, expected {expect_version!r}")

    health = get_json(f"{base_url}/api/v2/monitor/health", request_timeout)
    if not isinstance(health, dict):
        raise SmokeError(f"health answer is not an object: {health!r}")
    unhealthy = []
    for component in components:
        status = (health.get(component) or {}).get("status")
        if status != "healthy":
            unhealthy.append(f"{component}={status}")
    if unhealthy:
        raise SmokeError("unhealthy components: " + ", ".join(unhealthy))
    return f"Airflow {running} at {base_url}: " + ", ".join(f"{c}=healthy" for c in components)


def wait_until_healthy(
    base_url: str,
    expect_version: str | None,
    components: Sequence[str],
    timeout: float,
    interval: float,
    request_timeout: float = 10.0,
) -> str:
    """Retry :func:`check_once` until it passes or ``timeout`` seconds pass; then raise the last error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check_once(base_url, expect_version, components, request_timeout)
        except SmokeError as exc:
            if time.monotonic() + interval > deadline:
                raise SmokeError(f"not healthy after {timeout:.0f}s: {exc}") from exc
            print(f"airflow-smoke: waiting ({exc})", file=sys.stderr, flush=True)
            time.sleep(interval)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", required=True, help="API server root, e.g. http://127.0.0.1:8080")
    parser.add_argument("--expect-version", help="fail unless /api/v2/version reports exactly this")
    parser.add_argument(
        "--component",
        action="append",
        dest="components",
        help=f"component that must be healthy (repeatable; default: {', '.join(DEFAULT_COMPONENTS)})",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to keep retrying (default 300)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between attempts (default 5)")
    args = parser.parse_args(argv)
    scheme = urllib.parse.urlsplit(args.base_url).scheme
    if scheme not in ("http", "https"):
        parser.error(f"--base-url must be an http(s) URL, got {args.base_url!r}")
    args.base_url = args.base_url.rstrip("/")
    args.components = tuple(args.components or DEFAULT_COMPONENTS)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        summary = wait_until_healthy(
            args.base_url, args.expect_version, args.components, args.timeout, args.interval
        )
    except SmokeError as exc:
        print(f"airflow-smoke: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"airflow-smoke: OK: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
