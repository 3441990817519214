"""``make backfill``: reprocess a date range of one source through ingestion and Databricks processing.

It is one ``POST /api/v2/backfills`` of the source's ingestion DAG ``ingest_<source>`` (Airflow 3's backfill
API: ``reprocess_behavior``, ``max_active_runs``); everything after that is the production path. Each
backfilled ingestion run re-publishes its raw partition and emits a partitioned asset event, and the
scheduler runs the dataset's processing DAG (``PartitionedAssetTimetable``) for that partition key, which
runs the Databricks job on it (docs/PARTITIONS.md). The processing DAGs are not backfilled themselves:
Airflow refuses a backfill of a non-periodic (asset-scheduled) DAG.

This module follows the backfill through the REST API and prints one line per interval when it is done
(ingestion state, manifest, partition key, Databricks run and its state), then a summary (intervals,
manifests, Databricks runs, duplicates, wall time). It exits non-zero when an interval failed.

Where it runs:

* without ``AIRFLOW_API_URL``: on the demo's local stand-ins (moto S3, API replay, the Databricks emulator,
  ``airflow standalone``), started by :class:`airbricks.local.demo.LocalAirflow` like ``make demo`` and
  stopped afterwards;
* with ``AIRFLOW_API_URL`` (e.g. ``http://localhost:8080`` after ``make ui``): against that deployment,
  authenticated by ``AIRFLOW_API_TOKEN`` (a JWT), or ``AIRFLOW_USERNAME`` + ``AIRFLOW_PASSWORD`` (exchanged
  at ``/auth/token``). Neither is ever printed.

Re-running it is idempotent: each interval's partition is replaced whole (same objects, same records), each
partition key gets exactly one new processing run, and partitions outside the range are not touched.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import sys
import time
from pathlib import Path
from typing import Any

from airbricks.local import demo
from airbricks.local.demo import AirflowApi, ApiError, DemoContext, DemoError, heartbeat, say
from airbricks.local.processes import free_port

API_URL_ENV = "AIRFLOW_API_URL"
API_TOKEN_ENV = "AIRFLOW_API_TOKEN"  # noqa: S105  # pragma: allowlist secret (a variable name)
API_USERNAME_ENV = "AIRFLOW_USERNAME"
API_PASSWORD_ENV = "AIRFLOW_PASSWORD"  # noqa: S105  # pragma: allowlist secret (a variable name)
REPROCESS_BEHAVIOURS = ("completed", "failed", "none")
TERMINAL = frozenset({"success", "failed"})
PROCESSING_TASK = "run_medallion_job"  # its XCom return_value is the Databricks run id
OUTPUT_PREFIX = "backfill |"
CREATE_ATTEMPTS = 6


class BackfillInputError(ValueError):
    """A ``make backfill`` argument is wrong; the message names it."""


@dataclasses.dataclass(frozen=True)
class BackfillRequest:
    """A validated backfill of one source: ``first`` .. ``last`` (both included, UTC days).

    :param source: source name of ``dags/sources.yaml``.
    :param first: first day whose intervals are reprocessed.
    :param last: last day (included).
    :param concurrency: ingestion runs at a time (the backfill's ``max_active_runs``).
    :param reprocess: Airflow's ``reprocess_behavior``: ``completed`` reruns existing runs too.
    :param datasets: ``(dataset, processing DAG id or None)`` of the source, in ``sources.yaml`` order.
    """

    source: str
    first: dt.date
    last: dt.date
    concurrency: int = 1
    reprocess: str = "completed"
    datasets: tuple[tuple[str, str | None], ...] = ()

    @property
    def dag_id(self) -> str:
        return f"ingest_{self.source}"

    @property
    def processing_dag_ids(self) -> list[str]:
        return [dag_id for _, dag_id in self.datasets if dag_id]

    @property
    def from_date(self) -> dt.datetime:
        return dt.datetime(self.first.year, self.first.month, self.first.day, tzinfo=dt.UTC)

    @property
    def to_date(self) -> dt.datetime:
        """The last logical date included: the end of ``last`` (hourly sources get all 24 hours)."""
        end = dt.datetime(self.last.year, self.last.month, self.last.day, tzinfo=dt.UTC)
        return end + dt.timedelta(days=1) - dt.timedelta(seconds=1)

    def body(self) -> dict[str, Any]:
        """The JSON of ``POST /api/v2/backfills``."""
        return {
            "dag_id": self.dag_id,
            "from_date": self.from_date.isoformat(),
            "to_date": self.to_date.isoformat(),
            "max_active_runs": self.concurrency,
            "reprocess_behavior": self.reprocess,
            "run_backwards": False,
        }


def _date(name: str, value: str) -> dt.date:
    try:
        if len(value) != 10:
            raise ValueError("expected 10 characters")
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        raise BackfillInputError(f"{name}={value!r} is not a date YYYY-MM-DD (e.g. 2026-11-19)") from None


def parse_request(
    source: str,
    first: str,
    last: str,
    concurrency: int | str = 1,
    reprocess: str = "completed",
    *,
    sources_yaml: Path,
    today: dt.date | None = None,
) -> BackfillRequest:
    """Validate the arguments of ``make backfill``; every error names the argument and its value.

    :param sources_yaml: ``dags/sources.yaml``: the known sources and their processed datasets.
    :param today: the current UTC day (an interval must have ended to be backfilled).
    """
    from airbricks.databricks.processing import processed_datasets
    from airbricks.ingestion.config import declared_source_names, load_source

    known = declared_source_names(sources_yaml)
    if source not in known:
        raise BackfillInputError(
            f"SOURCE={source!r} is not a source of {sources_yaml} (sources: {', '.join(known)})"
        )
    start, end = _date("FROM", first), _date("TO", last)
    if start > end:
        raise BackfillInputError(f"FROM={first} is after TO={last}")
    today = today or dt.datetime.now(dt.UTC).date()
    if end >= today:
        raise BackfillInputError(
            f"TO={last}: the intervals of that day have not ended yet (today is {today} UTC); "
            "a backfill reprocesses past intervals only"
        )
    try:
        workers = int(concurrency)
    except (TypeError, ValueError):
        workers = 0
    if workers < 1:
        raise BackfillInputError(f"CONCURRENCY={concurrency!r} must be a whole number >= 1")
    if reprocess not in REPROCESS_BEHAVIOURS:
        raise BackfillInputError(f"REPROCESS={reprocess!r} must be one of {', '.join(REPROCESS_BEHAVIOURS)}")
    processing = {(p.source, p.dataset): p.dag_id for p in processed_datasets(sources_yaml)}
    config = load_source(sources_yaml, source)
    datasets = tuple((name, processing.get((source, name))) for name in config.datasets)
    return BackfillRequest(source, start, end, workers, reprocess, datasets)


# ---- following a backfill ------------------------------------------------------------------------------
@dataclasses.dataclass
class DatasetOutcome:
    """One dataset of one interval: its manifest and its processing run."""

    dataset: str
    partition_key: str | None = None
    manifest: str | None = None
    records: int | None = None
    events: int = 0
    processing_dag: str | None = None
    processing_runs: list[str] = dataclasses.field(default_factory=list)
    processing_state: str | None = None
    databricks_run: Any = None
    databricks_state: str | None = None

    @property
    def done(self) -> bool:
        return self.processing_dag is None or self.processing_state in TERMINAL


@dataclasses.dataclass
class IntervalOutcome:
    """One backfilled interval (one ingestion run)."""

    logical_date: dt.datetime
    run_id: str | None = None
    state: str = "queued"
    datasets: dict[str, DatasetOutcome] = dataclasses.field(default_factory=dict)
    reported: bool = False

    @property
    def done(self) -> bool:
        if self.state == "failed":
            return True
        return self.state == "success" and bool(self.datasets) and all(d.done for d in self.datasets.values())

    @property
    def ok(self) -> bool:
        return self.state == "success" and all(
            d.processing_dag is None or (d.processing_state == "success" and d.databricks_state == "success")
            for d in self.datasets.values()
        )

    def line(self) -> str:
        parts = [f"{self.logical_date:%Y-%m-%d}: ingestion {self.state}"]
        for outcome in self.datasets.values():
            text = f"{outcome.dataset}: manifest {outcome.manifest or 'none'}"
            if outcome.records is not None:
                text += f" ({outcome.records} records)"
            text += f", partition {outcome.partition_key or '?'}"
            if outcome.processing_dag:
                text += (
                    f", {outcome.processing_dag} {outcome.processing_state or 'not run'}"
                    f", Databricks run {outcome.databricks_run or '-'} {outcome.databricks_state or '-'}"
                )
            parts.append(text)
        return " | ".join(parts)


@dataclasses.dataclass
class BackfillReport:
    """What a backfill did: counted from the REST API (asset events, runs), never assumed."""

    backfill_id: int
    intervals: list[IntervalOutcome]
    seconds: float
    api_errors: int = 0

    @property
    def manifests(self) -> int:
        return sum(1 for i in self.intervals for d in i.datasets.values() if d.manifest)

    @property
    def databricks_runs(self) -> int:
        return sum(1 for i in self.intervals for d in i.datasets.values() if d.databricks_run is not None)

    @property
    def duplicates(self) -> int:
        """Extra asset events or extra processing runs of one partition key (0 when exactly once)."""
        return sum(
            max(d.events - 1, 0) + max(len(d.processing_runs) - 1, 0)
            for i in self.intervals
            for d in i.datasets.values()
        )

    @property
    def failed(self) -> list[IntervalOutcome]:
        return [i for i in self.intervals if not i.ok]

    @property
    def intervals_per_minute(self) -> float:
        return len(self.intervals) / self.seconds * 60 if self.seconds else 0.0

    def summary(self) -> list[str]:
        return [
            f"backfill {self.backfill_id}: {len(self.intervals)} interval(s), "
            f"{len(self.intervals) - len(self.failed)} succeeded, {len(self.failed)} failed",
            f"manifests written: {self.manifests}; Databricks runs: {self.databricks_runs}; "
            f"duplicates: {self.duplicates}",
            f"wall time {self.seconds:.1f}s ({self.intervals_per_minute:.2f} intervals/min)"
            + (f"; {self.api_errors} REST answer(s) 5xx retried" if self.api_errors else ""),
        ]


def _instant(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


class BackfillRunner:
    """Create one backfill through the REST API and follow it to its end.

    :param api: the Airflow REST client.
    :param request: what to backfill.
    :param timeout: seconds for every interval to be done.
    :param poll_seconds: pause between two rounds of REST calls.
    """

    def __init__(
        self, api: AirflowApi, request: BackfillRequest, *, timeout: float = 1800, poll_seconds: float = 1.0
    ) -> None:
        self.api = api
        self.request = request
        self.timeout = timeout
        self.poll_seconds = poll_seconds
        self.progress = ""
        #: 5xx answers of the REST API that a later round got past (said in the summary).
        self.api_errors = 0

    def check_dags(self) -> None:
        """Every DAG the backfill needs exists and is unpaused (paused DAGs run no backfill runs)."""
        paused = []
        for dag_id in [self.request.dag_id, *self.request.processing_dag_ids]:
            try:
                dag = self.api.get(f"/dags/{dag_id}")
            except DemoError as exc:
                raise DemoError(f"DAG {dag_id} is not available on {self.api.base_url}: {exc}") from None
            if dag.get("is_paused"):
                paused.append(dag_id)
        if paused:
            raise DemoError(
                f"DAG(s) {', '.join(paused)} are paused: Airflow runs no backfill run of a paused DAG and "
                "queues no asset-triggered run for one; unpause them first (UI toggle, or PATCH "
                '/api/v2/dags/<dag_id> {"is_paused": false})'
            )

    def create(self) -> dict[str, Any]:
        body = self.request.body()
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:  # creates nothing: safe to repeat after a 5xx (SQLite locked)
                planned = self.api.call("POST", "/backfills/dry_run", json=body, ok=(200, 422))
                break
            except ApiError as exc:
                if exc.status < 500 or attempt == CREATE_ATTEMPTS:
                    raise
                self.api_errors += 1
                time.sleep(2.0 * attempt)
        if "backfills" not in planned:
            raise DemoError(f"Airflow refused the backfill of {self.request.dag_id}: {planned.get('detail')}")
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                created = self.api.call("POST", "/backfills", json=body, ok=(200, 409, 422))
            except ApiError as exc:
                # 5xx: the metadata DB was locked (SQLite beside a busy scheduler; Airflow then removes the
                # partial backfill, or failed on its audit-log row). Retry, unless it was created after all.
                if exc.status < 500 or attempt == CREATE_ATTEMPTS:
                    raise
                self.api_errors += 1
                time.sleep(2.0 * attempt)
                created = self._active_backfill(body) or {}
                if not created:
                    continue
            if "id" not in created and (active := self._active_backfill(body)):
                created = active  # 409: this very backfill is already running: follow it
            break
        return created | {
            "planned": [_instant(b["logical_date"]) for b in planned["backfills"] if b.get("logical_date")]
        }

    def _active_backfill(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The running backfill of the DAG over exactly this range and behaviour, if there is one."""
        listed = self.api.get("/backfills", dag_id=body["dag_id"], limit=100).get("backfills", [])
        for backfill in listed:
            same = (
                backfill.get("completed_at") is None
                and _instant(backfill["from_date"]) == _instant(body["from_date"])
                and _instant(backfill["to_date"]) == _instant(body["to_date"])
                and backfill.get("reprocess_behavior") == body["reprocess_behavior"]
            )
            if same:
                return backfill
        return None

    def run(self) -> BackfillReport:
        started = time.monotonic()
        self.check_dags()
        backfill = self.create()
        if "id" not in backfill:
            detail = backfill.get("detail")
            raise DemoError(f"Airflow refused the backfill of {self.request.dag_id}: {detail}")
        created = _instant(backfill["created_at"])
        intervals = {when: IntervalOutcome(when) for when in backfill["planned"]}
        say(
            f"backfill {backfill['id']} of {self.request.dag_id}: {len(intervals)} interval(s) "
            f"{self.request.first} .. {self.request.last}, max_active_runs {self.request.concurrency}, "
            f"reprocess_behavior {self.request.reprocess}"
        )
        deadline = time.monotonic() + self.timeout
        with heartbeat("backfill: waiting", status=lambda: self.progress):
            while not all(i.reported for i in intervals.values()):
                try:
                    self._poll(created, intervals)
                except ApiError as exc:
                    # Airflow 3.3.2's GET /assets/events answers 500 while a run an event created is still
                    # queued (no start_date; docs/PARTITIONS.md): the next round reads it once it started.
                    if exc.status < 500 or time.monotonic() > deadline:
                        raise
                    self.api_errors += 1
                    self.progress = f"retrying after: {str(exc)[:120]}"
                for interval in sorted(intervals.values(), key=lambda i: i.logical_date):
                    if interval.done and not interval.reported:
                        interval.reported = True
                        say(interval.line())
                done = sum(i.reported for i in intervals.values())
                self.progress = f"{done}/{len(intervals)} interval(s) done"
                if done < len(intervals):
                    if time.monotonic() > deadline:
                        pending = [f"{i.logical_date:%Y-%m-%d} ({i.state})" for i in intervals.values()]
                        raise DemoError(f"backfill not done within {self.timeout:.0f}s: {', '.join(pending)}")
                    time.sleep(self.poll_seconds)
        self._wait_completed(backfill["id"], deadline)
        intervals_done = sorted(intervals.values(), key=lambda i: i.logical_date)
        return BackfillReport(backfill["id"], intervals_done, time.monotonic() - started, self.api_errors)

    def _wait_completed(self, backfill_id: int, deadline: float) -> None:
        """Wait for the scheduler to mark the backfill completed: until then Airflow refuses the next one
        of the same DAG (409), so a re-run right after this one would fail."""
        while not self.api.get(f"/backfills/{backfill_id}").get("completed_at"):
            if time.monotonic() > deadline:
                raise DemoError(
                    f"backfill {backfill_id}: all intervals done, but Airflow never marked it completed"
                )
            self.progress = (
                f"all intervals done; waiting for the scheduler to complete backfill {backfill_id}"
            )
            time.sleep(self.poll_seconds)

    # -- one round of REST calls --
    def _poll(self, created: dt.datetime, intervals: dict[dt.datetime, IntervalOutcome]) -> None:
        request = self.request
        runs = self.api.get(
            f"/dags/{request.dag_id}/dagRuns",
            logical_date_gte=request.from_date.isoformat(),
            logical_date_lte=request.to_date.isoformat(),
            run_type="backfill",
            limit=1000,
        ).get("dag_runs", [])
        for run in runs:
            interval = intervals.get(_instant(run["logical_date"])) if run.get("logical_date") else None
            if interval is None or interval.done:
                continue
            interval.run_id, interval.state = run["dag_run_id"], run["state"]
            if interval.state == "success" and not interval.datasets:
                self._read_events(interval, created)
        by_key: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for dag_id in request.processing_dag_ids:
            if not any(
                d.processing_dag == dag_id and not d.done
                for i in intervals.values()
                for d in i.datasets.values()
            ):
                continue
            processing = self.api.get(
                f"/dags/{dag_id}/dagRuns", run_after_gte=created.isoformat(), limit=1000
            ).get("dag_runs", [])
            for run in processing:
                by_key.setdefault(dag_id, {}).setdefault(run.get("partition_key") or "", []).append(run)
        for interval in intervals.values():
            for outcome in interval.datasets.values():
                if outcome.processing_dag is None or outcome.done:
                    continue
                matching = by_key.get(outcome.processing_dag, {}).get(outcome.partition_key or "", [])
                outcome.processing_runs = [run["dag_run_id"] for run in matching]
                if matching:
                    latest = max(matching, key=lambda run: run["run_after"])
                    outcome.processing_state = latest["state"]
                    if outcome.processing_state in TERMINAL:
                        self._read_databricks_run(outcome, latest["dag_run_id"])

    def _read_events(self, interval: IntervalOutcome, created: dt.datetime) -> None:
        # A reprocessed run keeps its run id: only the events of this backfill count (timestamp filter).
        events = self.api.get(
            "/assets/events",
            source_dag_id=self.request.dag_id,
            source_run_id=interval.run_id,
            timestamp_gte=created.isoformat(),
            limit=100,
        ).get("asset_events", [])
        processing = dict(self.request.datasets)
        for event in events:
            extra = event.get("extra") or {}
            dataset = str(extra.get("dataset") or event.get("uri", "").rsplit("/", 1)[-1])
            outcome = interval.datasets.setdefault(
                dataset, DatasetOutcome(dataset, processing_dag=processing.get(dataset))
            )
            outcome.events += 1
            outcome.partition_key = event.get("partition_key")
            manifest = extra.get("manifest_key")
            bucket = str(extra.get("partition", "")).removeprefix("s3://").split("/", 1)[0]
            outcome.manifest = f"s3://{bucket}/{manifest}" if manifest and bucket else manifest
            outcome.records = extra.get("records")

    def _read_databricks_run(self, outcome: DatasetOutcome, run_id: str) -> None:
        dag_id = outcome.processing_dag
        tis = self.api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", task_id=PROCESSING_TASK).get(
            "task_instances", []
        )
        states = [ti.get("state") for ti in tis if ti.get("task_id") == PROCESSING_TASK]
        outcome.databricks_state = states[0] if len(states) == 1 else ",".join(map(str, states)) or None
        try:
            entry = self.api.get(
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{PROCESSING_TASK}/xcomEntries/return_value",
                map_index=0,
                deserialize="true",
            )
            outcome.databricks_run = entry.get("value")
        except DemoError:
            outcome.databricks_run = None  # the task failed before Databricks returned a run id


# ---- where it runs -------------------------------------------------------------------------------------
def remote_api(environ: dict[str, str]) -> AirflowApi | None:
    """The REST client of ``$AIRFLOW_API_URL`` with the token or credentials of the environment, or None."""
    url = environ.get(API_URL_ENV, "").strip()
    if not url:
        return None
    token = environ.get(API_TOKEN_ENV, "").strip()
    if token:
        return AirflowApi(url, token=token)
    username, password = environ.get(API_USERNAME_ENV, ""), environ.get(API_PASSWORD_ENV, "")
    if not (username and password):
        raise BackfillInputError(
            f"{API_URL_ENV} is set but neither {API_TOKEN_ENV} nor {API_USERNAME_ENV} + "
            f"{API_PASSWORD_ENV} are"
        )
    return AirflowApi(url, username, password)


class LocalServicesWithoutFaults(demo.LocalServicesStage):
    """The demo's moto S3 + API replay stage without its one injected 429 (a backfill shows no retry)."""

    inject_retry = False


def local_stack(
    demo_dir: Path, repo_root: Path, first: dt.date, last: dt.date, *, concurrency: int = 4
) -> demo.LocalAirflow:
    """The demo's stand-ins and Airflow, with the ingestion schedule bounded to ``first`` .. ``last``.

    start_date = ``first``, end_date = ``last`` and catchup off: the scheduler creates no scheduled run of its
    own (the latest interval is after end_date), so every ingestion run is a backfill run.
    """
    import json

    from airbricks.partitions import DEFAULT_RAW_BUCKET

    ctx = DemoContext(
        repo_root=repo_root,
        demo_dir=demo_dir,
        interval_start=dt.datetime(first.year, first.month, first.day, tzinfo=dt.UTC),
        interval_end=dt.datetime(last.year, last.month, last.day, tzinfo=dt.UTC) + dt.timedelta(days=1),
        bucket=DEFAULT_RAW_BUCKET,
        run_timeout=1800,
    )
    ctx.env["AIRBRICKS_INGEST_OVERRIDES"] = json.dumps(
        {"start_date": first.isoformat(), "end_date": last.isoformat(), "catchup": False}
    )
    ctx.env["AIRFLOW__CORE__PARALLELISM"] = str(max(4, concurrency))
    stages = [LocalServicesWithoutFaults(), demo.load_stage(demo.DATABRICKS_STAGE)]
    # Any free port, never 8080: a demo or another Airflow on this machine may hold it (or take it between
    # the check and the bind, and then answer this stack's health and login calls).
    return demo.LocalAirflow(ctx, stages, port=free_port())


def run_backfill(api: AirflowApi, request: BackfillRequest, *, timeout: float = 1800) -> BackfillReport:
    """Backfill ``request`` on the Airflow behind ``api`` and print its lines and summary."""
    report = BackfillRunner(api, request, timeout=timeout).run()
    for line in report.summary():
        say(line)
    return report


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airbricks.local.backfill",
        description="Reprocess FROM..TO (UTC days, both included) of SOURCE through ingestion and Databricks "
        f"processing with Airflow's backfill API; locally unless ${API_URL_ENV} is set.",
    )
    parser.add_argument("source", help="source of dags/sources.yaml (SOURCE=)")
    parser.add_argument("first", metavar="from", help="first day, YYYY-MM-DD (FROM=)")
    parser.add_argument("last", metavar="to", help="last day, YYYY-MM-DD, included (TO=)")
    parser.add_argument("--concurrency", default="1", help="ingestion runs at a time (CONCURRENCY=)")
    parser.add_argument(
        "--reprocess",
        default="completed",
        help=f"Airflow reprocess_behavior: {', '.join(REPROCESS_BEHAVIOURS)}",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds for the whole backfill")
    parser.add_argument(
        "--demo-dir", type=Path, default=Path(".demo/backfill"), help="local working directory"
    )
    return parser


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    environ = dict(os.environ if environ is None else environ)
    demo.set_output_prefix(OUTPUT_PREFIX)
    try:
        return _main(args, environ)
    finally:
        demo.set_output_prefix(demo.DEMO_PREFIX)


def _main(args: argparse.Namespace, environ: dict[str, str]) -> int:
    started = time.monotonic()
    try:
        request = parse_request(
            args.source,
            args.first,
            args.last,
            args.concurrency,
            args.reprocess,
            sources_yaml=_repo_root() / "dags" / "sources.yaml",
        )
        api = remote_api(environ)
    except BackfillInputError as exc:
        say(f"FAILED: {exc}")
        return 2
    demo.interrupt_on_signals()
    try:
        if api is not None:
            say(f"Airflow at {api.base_url} ({API_URL_ENV})")
            report = run_backfill(api, request, timeout=args.timeout)
        else:
            first, last = request.first, request.last
            with local_stack(
                args.demo_dir.resolve(), _repo_root(), first, last, concurrency=request.concurrency
            ) as local:
                api = local.start([request.dag_id, *request.processing_dag_ids])
                report = run_backfill(api, request, timeout=args.timeout)
    except DemoError as exc:
        say(f"FAILED after {time.monotonic() - started:.0f}s: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    failed = report.failed
    for interval in failed:
        say(f"PROBLEM {interval.line()}")
    say(f"{'FAILED' if failed else 'OK'} in {time.monotonic() - started:.0f}s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
