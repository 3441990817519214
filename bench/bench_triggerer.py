"""Triggerer at scale: a real ``airflow triggerer`` holding N deferred Databricks runs against the emulator.

    python -m bench.bench_triggerer [--counts 1 100 1000] [--poll-seconds 5] [--window-seconds 30]

For each N: a fresh SQLite metadata database (``airflow db migrate`` once, copied per N) gets N deferred task
instances seeded through Airflow's ORM, each with the trigger :class:`AirbricksDatabricksExecutionTrigger`
(what the processing DAGs' ``MedallionRunNowOperator`` defers to) on its own emulator run. The emulator
keeps every run ``PENDING`` (an armed ``slow_cluster_start`` of an hour): each trigger polls ``runs/get``.
``airflow triggerer`` then runs until all N triggers have polled, and over a measured window:

* resident memory of the triggerer's process tree (supervisor + trigger runner), and its growth per
  deferred run: ``(RSS(N) - RSS(1)) / (N - 1)``;
* triggerer CPU (user + system of the tree) per poll: the slope of CPU seconds per second over polls per
  second across the N (what one more deferred run costs per poll; the triggerer's own idle loop, heartbeat
  and log server are the intercept), and the plain ratio CPU / ``runs/get`` requests the emulator answered
  in the window at the largest N (one request is one poll of one run);
* the emulator's requests per second.

Targets: ≤ 1 MB and ≤ 1 ms CPU per deferred run per poll. The trigger's per-poll INFO line is what the
triggerer forwards to its supervisor and writes to each trigger's log; ``--trigger-log-level`` (default: the
triggerer's ``[logging] logging_level`` as configured, INFO) shows what that costs.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.common import airflow_env, finish

TARGET_RSS_MB_PER_RUN = 1.0
TARGET_CPU_MS_PER_POLL = 1.0
DAG_ID = "bench_deferred"
TASK_ID = "wait"
JOB_NAME = "bench_pending"
SEED_MARK = "BENCH-SEEDED "

DAG_FILE = f'''\
"""One task that the triggerer benchmark seeds as deferred (it is never run by a worker)."""
import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
    EmptyOperator(task_id="{TASK_ID}")
'''

BUNDLE_YML = """\
bundle:
  name: airbricks_bench_triggerer
include:
  - resources/*.yml
"""

JOB_YML = f"""\
resources:
  jobs:
    {JOB_NAME}:
      name: {JOB_NAME}
      max_concurrent_runs: 1000
      job_clusters:
        - job_cluster_key: main
          new_cluster:
            spark_version: 17.3.x-scala2.13
            node_type_id: m6gd.large
            num_workers: 1
      tasks:
        - task_key: never
          job_cluster_key: main
          spark_python_task:
            python_file: ../src/never.py
"""


# -- pure helpers (unit-tested in tests/perf) ---------------------------------------------------------
def slope(ys_by_x: dict[float, float]) -> float | None:
    """Least-squares slope of y over x (e.g. MB of RSS per deferred run); None with < 2 distinct x."""
    points = sorted(ys_by_x.items())
    if len(points) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def cpu_ms_per_poll(cpu_seconds: float, polls: int) -> float | None:
    """Triggerer CPU milliseconds per answered poll; None when nothing was polled."""
    return None if polls <= 0 else 1000.0 * cpu_seconds / polls


def linearity(values_by_count: dict[int, float]) -> float | None:
    """Largest relative deviation of the points from the line through the smallest and largest count.

    0 is perfectly linear; 0.2 means some middle point is 20 % of the largest value off that line.
    """
    points = sorted(values_by_count.items())
    if len(points) < 3:
        return None
    (x0, y0), (x1, y1) = points[0], points[-1]
    if x1 == x0 or y1 == 0:
        return None
    slope = (y1 - y0) / (x1 - x0)
    return max(abs(y - (y0 + slope * (x - x0))) / abs(y1) for x, y in points[1:-1])


# -- processes ----------------------------------------------------------------------------------------
def _tree(pid: int) -> list[Any]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_usage(pid: int) -> tuple[float, float]:
    """(RSS in MB, user+system CPU seconds) of a process and all its descendants."""
    import psutil

    rss = cpu = 0.0
    for proc in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            cpu += times.user + times.system + times.children_user + times.children_system
            rss += proc.memory_info().rss / 2**20
    return rss, cpu


class RequestCounter:
    """ASGI middleware counting the emulator's answered requests by path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
        if scope.get("type") == "http":
            with self._lock:
                self.counts[scope["path"]] = self.counts.get(scope["path"], 0) + 1

    def count(self, suffix: str = "") -> int:
        with self._lock:
            return sum(n for path, n in self.counts.items() if path.endswith(suffix))


@contextlib.contextmanager
def counted_emulator(workdir: pathlib.Path) -> Iterator[tuple[Any, RequestCounter]]:
    """An emulator with the bench bundle, every cluster start delayed an hour, requests counted."""
    from airbricks.emulator import app as emulator_app
    from airbricks.emulator.server import EmulatorServer

    bundle = workdir / "bundle"
    (bundle / "resources").mkdir(parents=True)
    (bundle / "src").mkdir()
    (bundle / "databricks.yml").write_text(BUNDLE_YML)
    (bundle / "resources" / "pending.yml").write_text(JOB_YML)
    (bundle / "src" / "never.py").write_text("raise SystemExit('never runs')\n")
    counters: list[RequestCounter] = []
    build_app = emulator_app.build_app

    def counting_app(workspace: Any) -> Any:
        counters.append(RequestCounter(build_app(workspace)))
        return counters[-1]

    emulator_app.build_app = counting_app  # EmulatorServer.start imports it from the module at start
    try:
        server = EmulatorServer(state_dir=workdir / "emulator", bundle_dir=bundle).start()
    finally:
        emulator_app.build_app = build_app
    server.workspace.faults.slow_cluster_start(3600)  # runs stay PENDING: their cluster never starts
    try:
        yield server, counters[0]
    finally:
        server.workspace.faults.clear()
        server.stop()


def _seed(count_file: pathlib.Path, conn_id: str, poll_seconds: float) -> None:
    """Child process: the DAG into the DB, then one deferred task instance + trigger per emulator run."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    from airbricks.databricks.triggers import AirbricksDatabricksExecutionTrigger

    run_ids = json.loads(count_file.read_text())
    manager = DagBundlesManager()
    manager.sync_bundles_to_db()
    for bundle in manager.get_all_dag_bundles():
        if not bundle.is_initialized:
            bundle.initialize()
        bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
        sync_bag_to_db(bag, bundle.name, bundle.version)
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    now = datetime.datetime.now(datetime.UTC)
    with create_session() as session:
        dag = SerializedDagModel.get_dag(DAG_ID, session=session)
        if dag is None:
            raise RuntimeError(f"{DAG_ID} was not serialized into the metadata database")
        for i, run_id in enumerate(run_ids):
            logical = base + datetime.timedelta(minutes=i)
            dag_run = dag.create_dagrun(
                run_id=f"bench_{i}",
                logical_date=logical,
                data_interval=(logical, logical),
                run_after=logical,
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.TEST,
                state=DagRunState.RUNNING,
                session=session,
            )
            ti = dag_run.get_task_instance(TASK_ID, session=session)
            trigger = Trigger.from_object(
                AirbricksDatabricksExecutionTrigger(
                    run_id=run_id, databricks_conn_id=conn_id, polling_period_seconds=poll_seconds
                )
            )
            session.add(trigger)
            session.flush()
            ti.state = TaskInstanceState.DEFERRED
            ti.trigger_id = trigger.id
            ti.next_method = "execute_complete"
            ti.next_kwargs = {}
            ti.start_date = now
            if i % 200 == 199:
                session.flush()
    print(SEED_MARK + str(len(run_ids)), flush=True)


def _wait(predicate: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if not alive():
            raise RuntimeError(f"the triggerer exited while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def measure(
    count: int,
    *,
    template_db: pathlib.Path,
    workdir: pathlib.Path,
    base_env: dict[str, str],
    server: Any,
    counter: RequestCounter,
    poll_seconds: float,
    window_seconds: float,
) -> dict[str, Any]:
    """One N: seed, run ``airflow triggerer``, measure over the window."""
    from airbricks.local.processes import free_port

    home = workdir / f"home-{count}"
    home.mkdir()
    shutil.copy(template_db, home / "airflow.db")
    env = {
        **base_env,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__TRIGGERER__CAPACITY": str(max(1000, count)),
    }
    job_id = server.workspace.bundle_job_ids["bench_pending"]
    run_ids = [server.workspace.jobs.run_now({"job_id": job_id})["run_id"] for _ in range(count)]
    runs_file = home / "run_ids.json"
    runs_file.write_text(json.dumps(run_ids))
    seeded = subprocess.run(
        [sys.executable, "-m", "bench.bench_triggerer", "--seed", str(runs_file), str(poll_seconds)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if SEED_MARK + str(count) not in seeded.stdout:
        raise RuntimeError(f"seeding {count} deferred runs failed:\n{seeded.stderr[-3000:]}")
    polls_before = counter.count("/runs/get")
    log_file = (home / "triggerer.log").open("wb")
    triggerer = subprocess.Popen(
        [sys.executable, "-m", "airflow", "triggerer"],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    try:

        def alive() -> bool:
            return triggerer.poll() is None

        # every trigger has polled at least once (a first poll happens as each trigger starts)
        _wait(
            lambda: counter.count("/runs/get") - polls_before >= count,
            timeout=120 + count * 0.2,
            what=f"{count} triggers to poll",
            alive=alive,
        )
        ramp_up = time.monotonic() - started
        time.sleep(poll_seconds)  # let the start-up burst settle: one full polling period
        rss_start, cpu_start = tree_usage(triggerer.pid)
        polls_start, t_start = counter.count("/runs/get"), time.monotonic()
        time.sleep(window_seconds)
        rss_end, cpu_end = tree_usage(triggerer.pid)
        polls_end, t_end = counter.count("/runs/get"), time.monotonic()
        if not alive():
            raise RuntimeError("the triggerer exited during the measurement")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(triggerer.pid, 15)
        try:
            triggerer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(triggerer.pid, 9)
            triggerer.wait()
        log_file.close()
        for run_id in run_ids:
            with contextlib.suppress(Exception):
                server.workspace.jobs.cancel(run_id)
    polls = polls_end - polls_start
    elapsed = t_end - t_start
    cpu = cpu_end - cpu_start
    return {
        "deferred_runs": count,
        "ramp_up_seconds": round(ramp_up, 1),
        "rss_mb": round(rss_end, 1),
        "rss_mb_at_window_start": round(rss_start, 1),
        "cpu_seconds": round(cpu, 2),
        "window_seconds": round(elapsed, 1),
        "polls": polls,
        "expected_polls": round(count * elapsed / poll_seconds),
        "cpu_ms_per_poll": _round(cpu_ms_per_poll(cpu, polls), 3),
        "cpu_fraction_of_one_core": round(cpu / elapsed, 3),
        "emulator_requests_per_second": round(polls / elapsed, 1),
    }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def run(
    counts: tuple[int, ...] = (1, 100, 1000), poll_seconds: float = 5.0, window_seconds: float = 30.0
) -> dict[str, Any]:
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="airbricks-bench-triggerer-"))
    try:
        dags = workdir / "dags"
        dags.mkdir()
        (dags / "bench_deferred.py").write_text(DAG_FILE)
        template_home = workdir / "template"
        env = airflow_env(str(template_home))
        env["AIRFLOW__CORE__DAGS_FOLDER"] = str(dags)
        env.setdefault("AIRFLOW__CORE__FERNET_KEY", _fernet_key())
        migrate = subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True, env=env
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
        rows = []
        with counted_emulator(workdir) as (server, counter):
            conn = {
                "conn_type": "databricks",
                "host": server.host,
                "schema": "http",
                "port": server.port,
                "password": server.token,
            }
            env["AIRFLOW_CONN_DATABRICKS_DEFAULT"] = json.dumps(conn)
            for count in counts:
                print(f"bench | triggerer: {count} deferred run(s)", flush=True)
                rows.append(
                    measure(
                        count,
                        template_db=template_home / "airflow.db",
                        workdir=workdir,
                        base_env=env,
                        server=server,
                        counter=counter,
                        poll_seconds=poll_seconds,
                        window_seconds=window_seconds,
                    )
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rss = {r["deferred_runs"]: r["rss_mb"] for r in rows}
    cpu_total = {r["deferred_runs"]: r["cpu_seconds"] / r["window_seconds"] for r in rows}
    growth = slope(rss)
    at_largest = max(rows, key=lambda r: r["deferred_runs"])
    marginal = slope({r["polls"] / r["window_seconds"]: r["cpu_seconds"] / r["window_seconds"] for r in rows})
    cpu_per_poll = None if marginal is None else round(1000 * marginal, 3)
    met = (
        growth is not None
        and growth <= TARGET_RSS_MB_PER_RUN
        and cpu_per_poll is not None
        and cpu_per_poll <= TARGET_CPU_MS_PER_POLL
    )
    return {
        "target": (
            f"<= {TARGET_RSS_MB_PER_RUN:g} MB resident and <= {TARGET_CPU_MS_PER_POLL:g} ms triggerer CPU "
            "per deferred run per poll (slopes over N)"
        ),
        "poll_seconds": poll_seconds,
        "rows": rows,
        "rss_mb_per_deferred_run": _round(growth, 3),
        "cpu_ms_per_poll": cpu_per_poll,
        "cpu_ms_per_poll_all_in_at_largest": at_largest["cpu_ms_per_poll"],
        "memory_linearity": _round(linearity(rss), 3),
        "cpu_linearity": _round(linearity(cpu_total), 3),
        "met": met,
    }


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    parser.add_argument("--window-seconds", type=float, default=30.0)
    parser.add_argument("--json", type=pathlib.Path, help="also write the result as JSON here")
    parser.add_argument("--seed", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed:
        _seed(pathlib.Path(args.seed[0]), "databricks_default", float(args.seed[1]))
        return 0
    return finish(run(tuple(args.counts), args.poll_seconds, args.window_seconds), args.json)


if __name__ == "__main__":
    sys.exit(main())
