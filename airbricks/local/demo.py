"""``make demo``: the whole pipeline offline, on real Airflow and local stand-ins, with a summary.

What it does, in order (each step prints one line; everything started is stopped at the end, on Ctrl-C
and on failure):

1. Stages start their services: the moto S3 server and the API replay server (with ONE injected 429 +
   ``Retry-After`` on the first Hacker News page, so the retry path shows in the logs), the raw bucket,
   and the ``AIRFLOW_CONN_*`` variables pointing Airflow at them.
2. A throw-away ``AIRFLOW_HOME`` under ``.demo/airflow`` (SQLite, or with ``--db postgres`` a PostgreSQL
   server of its own started with ``initdb`` + ``pg_ctl`` in a temporary directory, or the existing server
   of ``$AIRBRICKS_POSTGRES_URL``; the repo's ``dags/`` folder, examples off), with generated secrets:
   the admin password, JWT secret, Fernet key and API secret key are created for this run and never fixed
   in code.
3. Real ``airflow standalone`` (scheduler, triggerer, dag-processor, api-server) in its own process group.
4. Through the Airflow REST API (v2, JWT from the generated password): wait for the DAGs to be parsed,
   unpause them; the scheduler runs each ingestion DAG once, for the interval 2026-11-19 -> 2026-11-20
   (the schedule is bounded to it), and the asset events those runs write trigger the processing DAG.
5. Verify and summarise: run states, objects and records written (read back from S3 and the manifests),
   asset events (``/api/v2/assets/events``), retries seen, the UI URL and where the logs are.

The scheduler creates every run, as in production: the ingestion schedule is bounded to the demo
interval (``AIRBRICKS_INGEST_OVERRIDES`` sets start_date = end_date = 2026-11-19, catchup on), so each
ingestion DAG runs exactly once whatever today's date is, and the asset events make the scheduler run the
processing DAG.

The start-up and shutdown (steps 1-4 without the runs, and the cleanup) are :class:`LocalAirflow`, which
``make backfill`` (``airbricks.local.backfill``) uses too.

Extension hook: the demo is a list of :class:`Stage` objects (``STAGE_FACTORIES``). A stage may start
services before Airflow starts, name the DAGs it wants triggered (in stage order, each stage's runs
awaited before the next stage), verify the outcome and add summary lines. Add a stage by appending its
factory to ``STAGE_FACTORIES`` (or, without editing this file, ``--stage package.module:factory``).
See docs/DEMO.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import datetime as dt
import importlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from airbricks.ingestion.manifest_watcher import QUEUE_URL_ENV as MANIFEST_QUEUE_URL_ENV
from airbricks.local.postgres import EXISTING_SERVER_ENV, PostgresServer, PostgresUnavailable, create_database
from airbricks.local.processes import ProcessGroup, free_port, http_ok, wait_until
from airbricks.local.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_SECRET_ACCESS_KEY
from airbricks.partitions import DEFAULT_RAW_BUCKET

DEFAULT_INTERVAL_START = dt.datetime(2026, 11, 19, tzinfo=dt.UTC)
DEFAULT_INTERVAL_END = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
ADMIN_USER = "admin"
TERMINAL_STATES = {"success", "failed"}
# Variables from the caller's shell that would leak into the demo's Airflow; it must be hermetic.
_INHERITED_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "AWS_")
_INHERITED_NAMES = ("AIRFLOW_HOME", "AIRFLOW_CONFIG", "AIRBRICKS_RAW_BUCKET", "AIRBRICKS_MANIFEST_QUEUE_URL")


class DemoError(RuntimeError):
    """A demo step failed; the message says which and where to look."""


class ApiError(DemoError):
    """The Airflow REST API answered an unexpected status (:attr:`status`)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


#: Every line the demo and its stages print starts with this (stages call :func:`say`, never ``print``).
DEMO_PREFIX = "demo |"
PREFIX = DEMO_PREFIX
#: A wait prints a heartbeat when the demo has been silent this long (a long stage never looks hung).
HEARTBEAT_SECONDS = 8.0
_last_said = time.monotonic()
_say_lock = threading.Lock()


def set_output_prefix(prefix: str) -> None:
    """Start every line with ``prefix`` instead of ``demo |`` (``make backfill`` prints ``backfill |``)."""
    global PREFIX
    PREFIX = prefix


def say(message: str = "") -> None:
    global _last_said
    with _say_lock:
        print(f"{PREFIX} {message}" if message else PREFIX, flush=True)
        _last_said = time.monotonic()


@contextlib.contextmanager
def heartbeat(
    what: str, status: Callable[[], str] | None = None, quiet_seconds: float = HEARTBEAT_SECONDS
) -> Iterator[None]:
    """While the block runs, say ``"<what> (<N>s): <status>"`` after every ``quiet_seconds`` of silence.

    A background thread does it, so a slow API call inside the block cannot silence the demo.

    :param what: what is being waited for, e.g. ``"databricks: waiting"``.
    :param status: the latest known state, set by the waiting loop (the thread never calls the API).
    :param quiet_seconds: silence that triggers a line.
    """
    started = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(0.5):
            if time.monotonic() - _last_said >= quiet_seconds:
                text = status() if status is not None else ""
                say(f"{what} ({time.monotonic() - started:.0f}s)" + (f": {text}" if text else ""))

    thread = threading.Thread(target=beat, name="demo-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)


def log_libraries_to(path: Path) -> None:
    """Send this process's log records (stand-ins, emulator requests, boto) to ``path``, not to the output.

    The demo's output is its own ``say`` lines only; importing Airflow (the stages do) would otherwise print
    every INFO record of every library on stdout.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)


# ---- Airflow REST API client ---------------------------------------------------------------------------
class AirflowApi:
    """Minimal Airflow 3 REST API (v2) client authenticating with a JWT from the simple auth manager.

    :param base_url: the api-server URL, e.g. ``http://127.0.0.1:8080``.
    :param username: user to log in as (``POST /auth/token``).
    :param password: its password.
    :param token: a ready access token instead (a deployment's JWT); it is sent as is and never logged.
    """

    def __init__(
        self, base_url: str, username: str = "", password: str = "", token: str | None = None
    ) -> None:
        import requests  # imported late: keeps ``--help`` fast
        from urllib3.util.retry import Retry

        self.base_url = base_url.rstrip("/")
        self._username = username
        self._password = password
        self._session = requests.Session()
        # The demo's metadata DB is SQLite: while the scheduler or the DAG processor holds its write lock, the
        # API server can answer 500 "Database error". Every call the demo makes is idempotent (GET, unpause),
        # so it is retried (0.5, 1, 2, 4 s) before the demo gives up.
        retry = Retry(
            total=4,
            backoff_factor=0.5,
            status_forcelist=(500, 502, 503, 504),
            allowed_methods=frozenset({"GET", "PATCH"}),
            raise_on_status=False,
        )
        self._session.mount("http://", requests.adapters.HTTPAdapter(max_retries=retry))
        self._token: str | None = token
        self._fixed_token = token is not None

    def clone(self) -> AirflowApi:
        """A client of its own for another thread (a ``requests.Session`` is not thread-safe)."""
        return AirflowApi(self.base_url, self._username, self._password)

    def login(self) -> None:
        if self._fixed_token:
            raise DemoError(f"{self.base_url} refused the access token given (HTTP 401); it may have expired")
        response = self._session.post(
            f"{self.base_url}/auth/token",
            json={"username": self._username, "password": self._password},
            timeout=30,
        )
        if response.status_code not in (200, 201):
            raise DemoError(
                f"login to {self.base_url}/auth/token failed: {response.status_code} {response.text}"
            )
        self._token = response.json()["access_token"]

    def call(self, method: str, path: str, *, ok: Iterable[int] = (200,), **kwargs: Any) -> Any:
        """``method /api/v2<path>``; returns the decoded JSON; raises DemoError on a status not in ``ok``."""
        if self._token is None:
            self.login()
        for attempt in (1, 2):
            response = self._session.request(
                method,
                f"{self.base_url}/api/v2{path}",
                headers={"Authorization": f"Bearer {self._token}", "Accept": "application/json"},
                timeout=30,
                **kwargs,
            )
            if response.status_code == 401 and attempt == 1:
                self.login()  # token expired: log in again once
                continue
            break
        if response.status_code not in set(ok):
            raise ApiError(
                f"Airflow API {method} {path} answered {response.status_code}: {response.text[:500]}",
                response.status_code,
            )
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params or None)


# ---- context and stages --------------------------------------------------------------------------------
@dataclasses.dataclass
class DagRunResult:
    dag_id: str
    run_id: str
    state: str = "queued"
    started: float = dataclasses.field(default_factory=time.monotonic)
    seconds: float = 0.0
    tasks: list[dict[str, Any]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class DemoContext:
    """Everything stages share. Stages add to ``env`` in ``start`` and read ``api``/``runs`` later.

    :param repo_root: the checkout (holds ``dags/``).
    :param demo_dir: ``.demo/``; Airflow's home and logs are below it.
    :param interval_start: data interval start of the triggered runs (UTC).
    :param interval_end: data interval end (exclusive).
    :param bucket: the raw-zone bucket.
    :param run_timeout: seconds :meth:`trigger_and_wait` waits for the runs it triggered.
    :param env: extra environment for Airflow (connections, bucket name, stage settings).
    :param services: started services by name (``"s3"``, ``"replay"``, ...), for later stages.
    :param api: the Airflow REST client, set once Airflow is up.
    :param runs: triggered runs by DAG id.
    :param progress: the latest state a waiting stage knows (the heartbeat repeats it during long waits).
    """

    repo_root: Path
    demo_dir: Path
    interval_start: dt.datetime
    interval_end: dt.datetime
    bucket: str
    run_timeout: float
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    services: dict[str, Any] = dataclasses.field(default_factory=dict)
    api: AirflowApi | None = None
    runs: dict[str, DagRunResult] = dataclasses.field(default_factory=dict)
    progress: str = ""

    @property
    def airflow_home(self) -> Path:
        return self.demo_dir / "airflow"

    @property
    def dags_folder(self) -> Path:
        return self.repo_root / "dags"

    def require_api(self) -> AirflowApi:
        if self.api is None:
            raise DemoError("Airflow is not running yet")
        return self.api

    def trigger_and_wait(self, dag_ids: list[str]) -> list[DagRunResult]:
        """Wait for the scheduler's run of each (unpaused) DAG for the demo interval, then for its end.

        The runs are created by the scheduler, not by the demo: the ingestion schedule is bounded to the demo
        interval (``AIRBRICKS_INGEST_OVERRIDES``), so unpausing a DAG makes exactly that one run due.
        """
        api = self.require_api()
        results = []
        wanted_start = self.interval_start
        deadline = time.monotonic() + self.run_timeout
        for dag_id in dag_ids:
            api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
            while True:
                runs = api.get(f"/dags/{dag_id}/dagRuns", limit=10).get("dag_runs", [])
                scheduled = [
                    run
                    for run in runs
                    if run.get("run_type") == "scheduled"
                    and run.get("data_interval_start")
                    and dt.datetime.fromisoformat(run["data_interval_start"].replace("Z", "+00:00"))
                    == wanted_start
                ]
                if scheduled:
                    break
                if time.monotonic() > deadline:
                    raise DemoError(f"the scheduler created no run of {dag_id} for {wanted_start:%Y-%m-%d}")
                time.sleep(1)
            run_id = scheduled[0]["dag_run_id"]
            result = DagRunResult(dag_id, run_id)
            self.runs[dag_id] = result
            results.append(result)
            say(
                f"scheduler started {dag_id} run {run_id} "
                f"(interval {self.interval_start:%Y-%m-%d} -> {self.interval_end:%Y-%m-%d})"
            )
        deadline = time.monotonic() + self.run_timeout
        pending = list(results)
        while pending:
            for result in list(pending):
                run = api.get(f"/dags/{result.dag_id}/dagRuns/{result.run_id}")
                if run["state"] != result.state:
                    result.state = run["state"]
                    if result.state in TERMINAL_STATES:
                        result.seconds = time.monotonic() - result.started
                        say(f"{result.dag_id}: run {result.state} after {result.seconds:.0f}s")
                    else:
                        say(f"{result.dag_id}: run {result.state}")
                self.progress = ", ".join(f"{r.dag_id} {r.state}" for r in results)
                if result.state in TERMINAL_STATES:
                    tis = api.get(f"/dags/{result.dag_id}/dagRuns/{result.run_id}/taskInstances")
                    result.tasks = tis.get("task_instances", [])
                    pending.remove(result)
            if pending and time.monotonic() > deadline:
                names = ", ".join(f"{r.dag_id} ({r.state})" for r in pending)
                raise DemoError(f"runs did not finish within {self.run_timeout:.0f}s: {names}")
            if pending:
                time.sleep(0.5)  # a few cheap API calls; a longer sleep only delays "OK in"
        return results

    def task_log_lines(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> list[str]:
        """The task's log lines (the ``event`` of each structured log record) via the REST API."""
        api = self.require_api()
        payload = api.call(
            "GET",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": "true"},
        )
        lines = []
        for item in payload.get("content", []):
            lines.append(item.get("event", "") if isinstance(item, dict) else str(item))
        return lines


class Stage:
    """One part of the demo. Override what you need; every method has a do-nothing default.

    Order of calls: ``start`` for all stages (before Airflow starts; add env vars here), then, once
    Airflow is up, for each stage in order ``run`` (default: trigger ``dags()`` and wait), then
    ``verify`` and ``summary`` for all stages, then ``stop`` in reverse order (always, even after errors).
    """

    name = "stage"

    def start(self, ctx: DemoContext) -> None:
        """Start services and put what Airflow needs into ``ctx.env`` / ``ctx.services``."""

    def dags(self, ctx: DemoContext) -> list[str]:
        """DAG ids this stage wants unpaused, triggered for the demo interval, and awaited."""
        return []

    def run(self, ctx: DemoContext) -> None:
        """Trigger and await ``dags()``; a long ``run`` sets ``ctx.progress`` for the heartbeat to repeat."""
        dag_ids = self.dags(ctx)
        if dag_ids:
            ctx.trigger_and_wait(dag_ids)

    def verify(self, ctx: DemoContext) -> list[str]:
        """Problems found (empty list = all good). Any problem makes the demo exit non-zero."""
        return []

    def summary(self, ctx: DemoContext) -> list[str]:
        """Lines for the final summary."""
        return []

    def stop(self, ctx: DemoContext) -> None:
        """Stop what ``start`` started. Must not raise if ``start`` failed half-way."""


class LocalServicesStage(Stage):
    """moto S3 server + API replay server, the raw bucket, connections; one 429 on the first HN page."""

    name = "local services"
    HN_PATH = "/api/v1/search_by_date"
    #: Inject the one 429 (the demo shows the retry; ``make backfill`` turns it off).
    inject_retry = True

    def start(self, ctx: DemoContext) -> None:
        from airbricks.local.connections import airflow_conn_env
        from airbricks.local.replay import ReplayServer
        from airbricks.local.s3 import S3Server

        s3 = S3Server().start()
        ctx.services["s3"] = s3
        s3.create_bucket(ctx.bucket, empty=True)  # a fresh demo, even in a test session
        say(f"S3 server (moto) on {s3.endpoint_url}, bucket s3://{ctx.bucket}")
        # The GitHub stand-in demands a bearer token, like the real API; generated per run, never printed.
        replay = ReplayServer(tokens={"github": secrets.token_urlsafe(24)}).start()
        ctx.services["replay"] = replay
        injected = "none"
        if self.inject_retry:
            replay.inject(self.HN_PATH, status=429, retry_after=2, times=1)
            injected = f"one 429 + Retry-After: 2 on the first {self.HN_PATH} request"
        say(
            f"API replay server on {replay.url} (sources: {', '.join(sorted(replay.sources))}); "
            f"injected: {injected}"
        )
        ctx.env.update(airflow_conn_env(s3, replay))
        ctx.env["AIRBRICKS_RAW_BUCKET"] = ctx.bucket
        # Manifest notifications to SQS, as in production: any producer's partition reaches the watcher.
        queue_url = s3.notify_manifests(ctx.bucket)
        ctx.services["manifest_queue"] = queue_url
        ctx.env[MANIFEST_QUEUE_URL_ENV] = queue_url
        say(f"S3 notifications of s3://{ctx.bucket}/raw/**/_manifest.json -> SQS {queue_url}")

    def verify(self, ctx: DemoContext) -> list[str]:
        replay = ctx.services.get("replay")
        if replay is None:
            return ["the replay server never started"]
        problems = []
        if replay.faults:
            problems.append("the injected 429 was never served: the hackernews DAG did not call the API")
        hn = [r for r in replay.requests if r.path == self.HN_PATH and r.query.get("page", "0") == "0"]
        if len(hn) < 2:
            problems.append(
                f"expected the first hackernews page to be retried after the 429, saw {len(hn)} request(s)"
            )
        return problems

    def summary(self, ctx: DemoContext) -> list[str]:
        replay = ctx.services.get("replay")
        if replay is None:
            return []
        by_path: dict[str, int] = {}
        for request in replay.requests:
            by_path[request.path] = by_path.get(request.path, 0) + 1
        lines = [
            f"API replay served {len(replay.requests)} request(s): "
            + ", ".join(f"{path} x{n}" for path, n in sorted(by_path.items()))
        ]
        hn = [r for r in replay.requests if r.path == self.HN_PATH and r.query.get("page", "0") == "0"]
        if len(hn) >= 2:
            lines.append(
                f"retry seen: first hackernews page answered 429, retried after "
                f"{hn[1].time - hn[0].time:.1f}s (Retry-After: 2)"
            )
        return lines

    def stop(self, ctx: DemoContext) -> None:
        for name in ("replay", "s3"):
            service = ctx.services.pop(name, None)
            if service is not None:
                service.stop()


class IngestionStage(Stage):
    """The ingestion DAGs of ``dags/sources.yaml`` (``ingest_<source>``): trigger, verify the raw zone."""

    name = "ingestion"

    def dags(self, ctx: DemoContext) -> list[str]:
        import yaml

        config = yaml.safe_load((ctx.dags_folder / "sources.yaml").read_text())
        return [f"ingest_{source}" for source in config.get("sources", {})]

    def _manifests(self, ctx: DemoContext) -> dict[str, dict[str, Any]]:
        s3 = ctx.services["s3"]
        client = s3.client()
        manifests = {}
        for key in s3.list_keys(ctx.bucket, "raw/"):
            if key.endswith("/_manifest.json"):
                manifests[key] = json.loads(client.get_object(Bucket=ctx.bucket, Key=key)["Body"].read())
        return manifests

    def verify(self, ctx: DemoContext) -> list[str]:
        problems = []
        for dag_id in self.dags(ctx):
            run = ctx.runs.get(dag_id)
            if run is None or run.state != "success":
                problems.append(f"{dag_id}: run {'missing' if run is None else run.state}")
        if "s3" not in ctx.services:
            return [*problems, "the S3 server never started"]
        manifests = self._manifests(ctx)
        day = f"dt={ctx.interval_start:%Y-%m-%d}/"
        for dag_id in self.dags(ctx):
            source = dag_id.removeprefix("ingest_")
            mine = {k: m for k, m in manifests.items() if k.startswith(f"raw/{source}/") and day in k}
            if not mine:
                problems.append(f"{dag_id}: no manifest under s3://{ctx.bucket}/raw/{source}/*/{day}")
            elif not all(m.get("records", 0) > 0 for m in mine.values()):
                problems.append(f"{dag_id}: a manifest reports 0 records: {sorted(mine)}")
        events = self._asset_events(ctx)
        for dag_id in self.dags(ctx):
            if not any(e.get("source_dag_id") == dag_id for e in events):
                problems.append(f"{dag_id}: no asset event recorded")
        return problems

    def _asset_events(self, ctx: DemoContext) -> list[dict[str, Any]]:
        if ctx.api is None:
            return []
        return ctx.api.get("/assets/events", limit=100, order_by="timestamp").get("asset_events", [])

    def summary(self, ctx: DemoContext) -> list[str]:
        lines = []
        for dag_id in self.dags(ctx):
            run = ctx.runs.get(dag_id)
            if run is None:
                lines.append(f"{dag_id}: not triggered")
                continue
            tries = {t["task_id"]: t.get("try_number", 1) for t in run.tasks}
            task_text = ", ".join(
                f"{t['task_id']}={t.get('state')}"
                + (f" (try {tries[t['task_id']]})" if tries[t["task_id"]] > 1 else "")
                for t in run.tasks
            )
            lines.append(f"{dag_id}: {run.state} in {run.seconds:.0f}s [{task_text}]")
        if "s3" in ctx.services:
            s3 = ctx.services["s3"]
            keys = s3.list_keys(ctx.bucket, "raw/")
            manifests = self._manifests(ctx)
            lines.append(f"raw zone: {len(keys)} object(s) in s3://{ctx.bucket}/raw/")
            for key, manifest in sorted(manifests.items()):
                lines.append(
                    f"  {manifest.get('partition', key)}: {manifest.get('records')} records, "
                    f"{manifest.get('pages')} page(s), {manifest.get('bytes')} bytes"
                )
        for event in self._asset_events(ctx):
            if not str(event.get("source_dag_id") or "").startswith("ingest_"):
                continue  # the watcher's and its router's events: the other-producer stage says them
            extra = event.get("extra") or {}
            lines.append(
                f"asset event {event.get('uri')} from {event.get('source_dag_id')}: "
                f"records={extra.get('records')} partition key {event.get('partition_key')} "
                f"({extra.get('partition')})"
            )
        lines.extend(self._retry_log_lines(ctx))
        return lines

    def _retry_log_lines(self, ctx: DemoContext) -> list[str]:
        """Retry messages from the task logs (the ingestion client logs each retry it makes)."""
        found = []
        for run in ctx.runs.values():
            if not run.dag_id.startswith("ingest_"):
                continue
            for task in run.tasks:
                for try_number in range(1, int(task.get("try_number") or 1) + 1):
                    try:
                        lines = ctx.task_log_lines(run.dag_id, run.run_id, task["task_id"], try_number)
                    except DemoError as exc:
                        found.append(f"  (could not read log of {run.dag_id}.{task['task_id']}: {exc})")
                        continue
                    for line in lines:
                        if "retrying" in line.lower():
                            found.append(f"  {run.dag_id}.{task['task_id']}: {_shorten_urls(line.strip())}")
        return ["retries in task logs:", *found] if found else ["retries in task logs: none"]


def _shorten_urls(line: str) -> str:
    """Drop query strings from URLs in a log line, which are long and say nothing to a demo reader."""
    return re.sub(r"(https?://[^\s?]+)\?\S*", r"\1?…", line)


#: The stage of the Databricks emulator + processing DAG. Loaded by name, like ``--stage``: it builds on
#: this module (``Stage``, ``DemoContext``), so importing it here would be an import cycle; and it brings
#: the emulator, which ``--help`` should not pay for.
DATABRICKS_STAGE = "airbricks.local.databricks_stage:DatabricksStage"


def _databricks_stage() -> Stage:
    return load_stage(DATABRICKS_STAGE)


#: The lineage stage: OpenLineage to a file, printed back as one chain (docs/LINEAGE.md). Loaded by name
#: like the Databricks stage.
LINEAGE_STAGE = "airbricks.local.lineage_demo:LineageStage"


def _lineage_stage() -> Stage:
    return load_stage(LINEAGE_STAGE)


#: The "another producer" stage: a partition written with plain boto3, processed through the watcher.
PRODUCER_STAGE = "airbricks.local.producer_stage:OtherProducerStage"


def _producer_stage() -> Stage:
    return load_stage(PRODUCER_STAGE)


#: The demo, in order. Append a factory (a class or a function returning a Stage) to extend it.
STAGE_FACTORIES: list[Callable[[], Stage]] = [
    LocalServicesStage,
    # Before ingestion: it only publishes in `run`, so its processing overlaps the main pipeline's.
    _producer_stage,
    IngestionStage,
    _databricks_stage,
    _lineage_stage,
]


def load_stage(spec: str) -> Stage:
    """``package.module:factory`` -> Stage instance (for ``--stage``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep:
        raise DemoError(f"--stage {spec!r}: expected package.module:factory")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise DemoError(f"--stage {spec!r}: {exc}") from exc
    return factory()


# ---- Airflow -------------------------------------------------------------------------------------------
def _generated_secrets(password_file: Path) -> tuple[str, dict[str, str]]:
    """Admin password (written where the simple auth manager reads it) and per-run secret settings."""
    password = secrets.token_urlsafe(12)
    password_file.write_text(json.dumps({ADMIN_USER: password}) + "\n")
    password_file.chmod(0o600)
    env = {
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
    }
    return password, env


def airflow_env(
    ctx: DemoContext, port: int, secret_env: dict[str, str], password_file: Path, database_url: str
) -> dict[str, str]:
    """Environment of ``airflow standalone``: the caller's, minus any Airflow/AWS settings, plus ours."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_INHERITED_PREFIXES) and k not in _INHERITED_NAMES
    }
    home = ctx.airflow_home
    base_url = f"http://127.0.0.1:{port}"
    env.update(
        {
            # `airflow standalone` starts its components as `airflow ...` from PATH: use this venv's.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ctx.dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__API__WORKERS": "1",
            # The scheduler creates every run, as in production: each ingestion DAG gets exactly one scheduled
            # run, for the demo interval (start_date == end_date bounds the schedule to it, whatever today's
            # date is), and its asset events make the scheduler run the processing DAGs.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "True",
            "AIRBRICKS_INGEST_OVERRIDES": json.dumps(
                {
                    "start_date": ctx.interval_start.date().isoformat(),
                    "end_date": ctx.interval_start.date().isoformat(),
                    "catchup": True,
                }
            ),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            # The scheduler's and triggerer's log servers have fixed default ports (8793/8794): pick
            # free ones so a demo can run next to a test session or another Airflow.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # moto accepts any credentials; set so boto3 never looks for real ones on this machine.
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "NO_COLOR": "1",
            **secret_env,
            **ctx.env,
        }
    )
    return env


def metadata_database(kind: str, ctx: DemoContext) -> tuple[str, str, PostgresServer | None]:
    """(SQLAlchemy URL, label for the log, the PostgreSQL server started for the demo or None)."""
    if kind == "sqlite":
        return f"sqlite:///{ctx.airflow_home}/airflow.db", "SQLite", None
    existing = os.environ.get(EXISTING_SERVER_ENV)
    if existing:
        url = create_database(existing, "airbricks_demo")
        return url.render_as_string(hide_password=False), f"PostgreSQL {url.host}:{url.port} (existing)", None
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        raise DemoError(str(exc)) from exc
    url = server.create_database("airflow")
    return (
        url.render_as_string(hide_password=False),
        f"PostgreSQL on port {server.port}, {server.base_dir}",
        server,
    )


def _pick_port(requested: int) -> int:
    if requested:
        return requested
    try:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 8080))
        return 8080
    except OSError:
        return free_port()


def wait_for_dags(ctx: DemoContext, dag_ids: list[str], timeout: float, alive: Callable[[], bool]) -> None:
    """Wait until the DAG processor has serialised every DAG; fail fast on import errors."""
    api = ctx.require_api()

    def parsed() -> bool:
        errors = api.get("/importErrors").get("import_errors", [])
        if errors:
            details = "\n".join(f"{e.get('filename')}: {e.get('stack_trace', '')[-800:]}" for e in errors)
            raise DemoError(f"the DAG processor reported import errors:\n{details}")
        known = {d["dag_id"] for d in api.get("/dags", limit=1000).get("dags", [])}
        return set(dag_ids) <= known

    deadline = time.monotonic() + timeout
    while not parsed():
        if not alive():
            raise DemoError("airflow standalone exited while waiting for the DAGs to be parsed")
        if time.monotonic() > deadline:
            raise DemoError(f"DAGs {dag_ids} not parsed within {timeout:.0f}s (see the dag-processor log)")
        time.sleep(0.5)


def components_healthy(base_url: str) -> bool:
    import requests

    health = requests.get(f"{base_url}/api/v2/monitor/health", timeout=5).json()
    wanted = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all((health.get(name) or {}).get("status") == "healthy" for name in wanted)


# ---- main ----------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airbricks.local.demo",
        description="Run the pipeline offline (local S3, API replay, real Airflow); print a summary.",
    )
    parser.add_argument(
        "--keep-running", action="store_true", help="leave Airflow and the stand-ins up (Ctrl-C stops)"
    )
    parser.add_argument(
        "--demo-dir", type=Path, default=Path(".demo"), help="working directory (default: .demo)"
    )
    parser.add_argument(
        "--repo-root", type=Path, default=None, help="checkout holding dags/ (default: found)"
    )
    parser.add_argument(
        "--port", type=int, default=0, help="api-server port (default: 8080 if free, else any)"
    )
    parser.add_argument(
        "--start-timeout", type=float, default=180, help="seconds for Airflow to become healthy"
    )
    parser.add_argument(
        "--run-timeout", type=float, default=240, help="seconds for the triggered runs to finish"
    )
    parser.add_argument(
        "--db", choices=("sqlite", "postgres"), default="sqlite", help="metadata database (default: sqlite)"
    )
    parser.add_argument("--stage", action="append", default=[], metavar="MODULE:FACTORY", help="add a stage")
    return parser


def _find_repo_root(explicit: Path | None) -> Path:
    candidates = [explicit] if explicit else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for candidate in candidates:
        if candidate is not None and (candidate / "dags" / "sources.yaml").is_file():
            return candidate.resolve()
    raise DemoError(f"no dags/sources.yaml under {', '.join(str(c) for c in candidates)}; use --repo-root")


def interrupt_on_signals() -> None:
    """SIGTERM and SIGINT both raise KeyboardInterrupt, so the cleanup in ``run`` always happens.

    SIGINT is set explicitly because a shell starting the demo in the background hands it over
    *ignored*; Airflow would inherit that and ignore the SIGINT the demo sends it to shut down.
    """

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


class LocalAirflow:
    """The local stand-ins (the stages' ``start``) and ``airflow standalone`` on them, up and logged in.

    ``make demo`` and ``make backfill`` (``airbricks.local.backfill``) both start Airflow through this class,
    so the two share one start-up: a fresh ``AIRFLOW_HOME`` under ``ctx.demo_dir``, generated secrets, the
    metadata DB, the health wait, the REST login (``ctx.api``) and the DAG-parse wait. :meth:`stop` undoes
    what :meth:`start` did, also after a failure half-way; as a context manager it does both.

    :param ctx: the context the stages share; ``ctx.env`` overrides any Airflow setting.
    :param stages: stages whose ``start`` runs before Airflow starts and ``stop`` after it stopped.
    :param port: api-server port (0: 8080 if free, else any free port).
    :param db: metadata database, ``"sqlite"`` or ``"postgres"``.
    :param start_timeout: seconds for Airflow to become healthy.
    """

    def __init__(
        self,
        ctx: DemoContext,
        stages: list[Stage],
        *,
        port: int = 0,
        db: str = "sqlite",
        start_timeout: float = 180.0,
    ) -> None:
        self.ctx = ctx
        self.stages = stages
        self.port = port
        self.db = db
        self.start_timeout = start_timeout
        self.started = time.monotonic()
        self.started_stages: list[Stage] = []
        self.airflow: ProcessGroup | None = None
        self.postgres: PostgresServer | None = None
        self.base_url = ""
        self.password = ""
        self.log_path = ctx.demo_dir / "logs" / "airflow-standalone.log"
        self.process_log = ctx.demo_dir / "logs" / "demo-process.log"

    @property
    def password_file(self) -> Path:
        return self.ctx.airflow_home / "simple_auth_manager_passwords.json.generated"

    def start(self, dag_ids: list[str]) -> AirflowApi:
        """Start everything, wait until ``dag_ids`` are parsed and unpause them; returns ``ctx.api``.

        Unpausing comes before any run: Airflow queues asset-triggered runs only for consumers that are
        unpaused when the asset event is written.
        """
        ctx = self.ctx
        # A fresh home per run: the previous run's database and logs would confuse the summary.
        shutil.rmtree(ctx.airflow_home, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)
        ctx.airflow_home.mkdir(parents=True)
        log_libraries_to(self.process_log)
        say(f"stages: {', '.join(s.name for s in self.stages)}")
        for stage in self.stages:
            self.started_stages.append(stage)
            stage.start(ctx)

        port = _pick_port(self.port)
        password, secret_env = _generated_secrets(self.password_file)
        self.password = password
        database_url, database_label, self.postgres = metadata_database(self.db, ctx)
        env = airflow_env(ctx, port, secret_env, self.password_file, database_url)
        base_url = self.base_url = env["AIRFLOW__API__BASE_URL"]
        say(f"AIRFLOW_HOME={ctx.airflow_home} ({database_label}), dags folder {ctx.dags_folder}")
        airflow = self.airflow = ProcessGroup(
            [sys.executable, "-m", "airflow", "standalone"], env=env, log_path=self.log_path, cwd=ctx.demo_dir
        ).start()
        say(
            "started airflow standalone (scheduler, triggerer, dag-processor, api-server), "
            f"process group {airflow.pid}; log: {self.log_path}"
        )
        try:
            with heartbeat("waiting for Airflow to become healthy"):
                wait_until(
                    lambda: http_ok(f"{base_url}/api/v2/monitor/health") and components_healthy(base_url),
                    timeout=self.start_timeout,
                    interval=1,
                    what="Airflow to become healthy",
                    alive=airflow.alive,
                )
        except (TimeoutError, RuntimeError) as exc:
            raise DemoError(f"{exc}\n--- last lines of {self.log_path} ---\n{airflow.tail()}") from exc
        say(
            f"Airflow is up after {time.monotonic() - self.started:.0f}s: UI {base_url} "
            f"login: {ADMIN_USER} / {password} (generated for this run)"
        )
        ctx.api = AirflowApi(base_url, ADMIN_USER, password)
        with heartbeat("waiting for the DAG processor to parse the DAGs"):
            wait_for_dags(ctx, dag_ids, timeout=120, alive=airflow.alive)
        say(f"DAGs parsed: {', '.join(dag_ids)}")
        for dag_id in dag_ids:
            ctx.api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        return ctx.api

    def stop(self) -> None:
        """Stop Airflow, its PostgreSQL and the started stages (reverse order); safe after a half start."""
        # A second Ctrl-C must not abort the cleanup half-way and leave orphans behind; the handlers come
        # back afterwards (a test session goes on after it).
        handlers = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._stop()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)

    def _stop(self) -> None:
        if self.airflow is not None:
            say("stopping Airflow (process group)")
            stop_started = time.monotonic()
            # SIGINT first: standalone then stops its components in order, as on Ctrl-C in a terminal.
            self.airflow.stop(leader_signal=signal.SIGINT, leader_grace_seconds=30, grace_seconds=10)
            self.airflow = None
            say(f"Airflow stopped in {time.monotonic() - stop_started:.0f}s")
        if self.postgres is not None:
            self.postgres.stop(remove=True)
            self.postgres = None
            say("stopped PostgreSQL")
        for stage in reversed(self.started_stages):
            try:
                stage.stop(self.ctx)
            except Exception as exc:  # stopping must go on for the remaining stages
                say(f"stopping stage {stage.name} failed: {exc!r}")
        self.started_stages = []

    def __enter__(self) -> LocalAirflow:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    ctx = DemoContext(
        repo_root=_find_repo_root(args.repo_root),
        demo_dir=args.demo_dir.resolve(),
        interval_start=DEFAULT_INTERVAL_START,
        interval_end=DEFAULT_INTERVAL_END,
        bucket=DEFAULT_RAW_BUCKET,
        run_timeout=args.run_timeout,
    )
    stages = [factory() for factory in STAGE_FACTORIES] + [load_stage(spec) for spec in args.stage]
    local = LocalAirflow(ctx, stages, port=args.port, db=args.db, start_timeout=args.start_timeout)
    problems: list[str] = []
    try:
        wanted = [dag for stage in stages for dag in stage.dags(ctx)]
        local.start(wanted)
        for stage in stages:
            ctx.progress = ""
            with heartbeat(f"{stage.name}: waiting", status=lambda: ctx.progress):
                stage.run(ctx)
        for stage in stages:
            problems += [f"[{stage.name}] {p}" for p in stage.verify(ctx)]
        say()
        say("==== summary " + "=" * 60)
        for stage in stages:
            for line in stage.summary(ctx):
                say(line)
        say(f"UI: {local.base_url} (user {ADMIN_USER}, password in {local.password_file})")
        say(
            f"logs: Airflow {local.log_path}; task logs {ctx.airflow_home / 'logs'}; "
            f"this process {local.process_log}"
        )
        for problem in problems:
            say(f"PROBLEM {problem}")
        say(f"{'FAILED' if problems else 'OK'} in {time.monotonic() - started:.0f}s")
        if args.keep_running and local.airflow is not None:
            say(f"--keep-running: UI at {local.base_url}; press Ctrl-C to stop everything")
            try:
                while local.airflow.alive():
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 1 if problems else 0
    except DemoError as exc:
        say(f"FAILED after {time.monotonic() - started:.0f}s: {exc}")
        if ctx.api is not None:
            say(f"logs: Airflow {local.log_path}; task logs {ctx.airflow_home / 'logs'}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except Exception as exc:  # anything unforeseen: still a clear one-line verdict, then clean up
        say(f"FAILED after {time.monotonic() - started:.0f}s: {exc!r}; Airflow log: {local.log_path}")
        raise
    finally:
        local.stop()
        say(f"elapsed {time.monotonic() - started:.0f}s")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    interrupt_on_signals()
    try:
        return run(args)
    except DemoError as exc:  # raised before anything was started (bad --repo-root or --stage)
        say(f"FAILED: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
