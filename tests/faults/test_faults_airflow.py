"""Process-level faults through a real Airflow deployment on PostgreSQL (``airflow_stack``: two schedulers,
triggerer, DAG processor, API server, each its own process group).

Each test kills, restarts or feeds bad input to one component while runs are in flight, then checks the runs
against the ledger of what really executed (``stack_dags/faults_probe.py``): every run succeeds, every task
finished exactly once, no (task, try) started twice. The cheapest faults come first; the stack is shared, so
each test leaves every component running again.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import itertools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow_stack import TERMINAL
from faults_support import BUCKET, lost_and_duplicated, partition_prefix, published_records

from airbricks.local.processes import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

PROBE = "faults_probe"
STACK_BUNDLE = Path(__file__).resolve().parent / "stack_bundle"
TASKS_PER_RUN = 3


def _run_ids(label: str, count: int) -> list[str]:
    stamp = time.time_ns()
    return [f"{label}__{stamp}_{n}" for n in range(count)]


def _executions(stack: Any, run_ids: list[str]) -> dict[str, Any]:
    """What really ran for ``run_ids``, from the ledger: finished tasks, duplicates, interrupted tries."""
    wanted = set(run_ids)
    lines = [line for line in stack.ledger_lines() if line["run_id"] in wanted]
    starts = collections.Counter(
        (x["run_id"], x["task_id"], x["try"]) for x in lines if x["event"] == "start"
    )
    done = collections.Counter((x["run_id"], x["task_id"]) for x in lines if x["event"] == "done")
    finished_tries = {(x["run_id"], x["task_id"], x["try"]) for x in lines if x["event"] == "done"}
    done_twice = sum(n - 1 for n in done.values() if n > 1)
    try_twice = sum(n - 1 for n in starts.values() if n > 1)
    return {
        "expected": len(run_ids) * TASKS_PER_RUN,
        "done": len(done),
        "duplicated": done_twice + try_twice,
        "done twice": done_twice,
        "try started twice": try_twice,
        "interrupted": len(set(starts) - finished_tries),
        "retried": sum(1 for (_, _, attempt) in starts if attempt > 1),
    }


def _settle(stack: Any, runs: list[str], timeout: float = 180) -> tuple[dict[str, str], dict[str, Any]]:
    states = stack.wait_runs(PROBE, runs, timeout=timeout)
    return states, _executions(stack, runs)


def _outcome(states: dict[str, str], ex: dict[str, Any]) -> str:
    by_state = collections.Counter(states.values())
    return (
        f"runs {dict(by_state)}, tasks finished {ex['done']}/{ex['expected']}, "
        f"{ex['interrupted']} tries cut off, {ex['retried']} tasks ran as a later try, "
        f"duplicates {ex['duplicated']} (finished twice {ex['done twice']}, same try started twice "
        f"{ex['try started twice']})"
    )


def _clean(states: dict[str, str], ex: dict[str, Any], runs: list[str], reruns_allowed: int = 0) -> bool:
    """Every run succeeded, every task finished, no try started twice, at most ``reruns_allowed`` tasks
    finished a second time (as a new try: tasks a dead LocalExecutor scheduler was running)."""
    return (
        len(states) == len(runs)
        and set(states.values()) == {"success"}
        and ex["done"] == ex["expected"]
        and ex["try started twice"] == 0
        and ex["done twice"] <= reruns_allowed
    )


def _record_probe(
    record_fault: Callable[..., Any],
    stack: Any,
    fault: str,
    expected: str,
    observed: str,
    ex: dict[str, Any],
    handled: bool,
) -> None:
    """Record a probe-DAG fault (tasks not finished count as lost, a try started twice as duplicated; a task
    re-run as a new try is in the observed text), then assert it, with every component's last log lines."""
    record_fault(
        fault,
        expected,
        observed,
        handled,
        records_lost=ex["expected"] - ex["done"],
        records_duplicated=ex["try started twice"],
    )
    assert handled, stack.tails()


# ---- DAG processor -------------------------------------------------------------------------------------
SLOW_PARSE_DAG = '''
"""Takes seconds to import, so the DAG processor can be killed in the middle of parsing it."""
import datetime, os, pathlib, time
from airflow.sdk import dag, task

pathlib.Path(os.environ["AIRBRICKS_FAULTS_LEDGER"] + ".parsing").write_text(str(os.getpid()))
time.sleep(6)

@dag(dag_id="faults_slow_parse", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False)
def faults_slow_parse():
    @task
    def noop():
        return None
    noop()

faults_slow_parse()
'''


def test_dag_processor_killed_while_parsing(airflow_stack: Any, record_fault: Callable[..., Any]) -> None:
    stack = airflow_stack
    marker = Path(f"{stack.ledger}.parsing")
    marker.unlink(missing_ok=True)
    (stack.dags_dir / "faults_slow_parse.py").write_text(SLOW_PARSE_DAG)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    parsing = marker.exists()
    stack.kill("dag-processor")
    # With no DAG processor, the scheduler keeps running what is already serialised.
    runs = [stack.trigger(PROBE, run_id, conf={"seconds": 1}) for run_id in _run_ids("dagproc", 2)]
    states, ex = _settle(stack, runs, timeout=120)
    stack.start_component("dag-processor")
    stack.wait_parsed([PROBE, "faults_slow_parse"], timeout=120)
    errors = stack.api("GET", "/importErrors")["total_entries"]
    handled = parsing and _clean(states, ex, runs) and errors == 0
    _record_probe(
        record_fault,
        stack,
        "airflow: DAG processor SIGKILLed while parsing",
        "runs of parsed DAGs go on; a restarted processor parses every file, no import error",
        f"killed mid-parse={parsing}; while down: {_outcome(states, ex)}; after restart faults_slow_parse "
        f"serialised, import errors {errors}",
        ex,
        handled,
    )


# ---- a git push of a broken DAG file -------------------------------------------------------------------
PUSHED_DAG = """
import datetime, time
from airflow.sdk import dag, task

@dag(dag_id="faults_pushed", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False)
def faults_pushed():
    @task
    def version():
        time.sleep(8)
        return {version!r}
    version()

faults_pushed()
"""


def _git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _push(clone: Path, text: str, message: str) -> None:
    (clone / "faults_pushed.py").write_text(text)
    _git("add", "faults_pushed.py", cwd=clone)
    _git("commit", "-qm", message, cwd=clone)
    _git("push", "-q", "origin", "HEAD:main", cwd=clone)


def _git_sync(checkout: Path) -> None:
    """What GitSync does on each period: fetch the branch and move the checkout to it."""
    _git("fetch", "-q", "origin", "main", cwd=checkout)
    _git("reset", "-q", "--hard", "FETCH_HEAD", cwd=checkout)


def _pushed_import_errors(stack: Any) -> list[dict[str, Any]]:
    errors = stack.api("GET", "/importErrors")["import_errors"]
    return [e for e in errors if e["filename"].endswith("faults_pushed.py")]


def _returned(stack: Any, run_id: str) -> str:
    rows = stack.sql(
        "SELECT value FROM xcom WHERE dag_id = 'faults_pushed' AND run_id = :r AND key = 'return_value'",
        r=run_id,
    )
    return str(rows[0][0]) if rows else "nothing"


def test_git_push_of_a_dag_file_with_a_syntax_error(
    airflow_stack: Any, record_fault: Callable[..., Any], tmp_path: Path
) -> None:
    import requests

    stack = airflow_stack
    upstream, clone, checkout = tmp_path / "dags.git", tmp_path / "work", stack.dags_dir / "gitsync"
    _git("init", "-q", "--bare", "-b", "main", str(upstream), cwd=tmp_path)
    _git("clone", "-q", str(upstream), str(clone), cwd=tmp_path)
    for key, value in (("user.name", "faults"), ("user.email", "faults@example.invalid")):
        _git("config", key, value, cwd=clone)
    _push(clone, PUSHED_DAG.format(version="v1"), "v1")
    _git("clone", "-q", str(upstream), str(checkout), cwd=tmp_path)
    stack.wait_parsed(["faults_pushed"], timeout=120)
    in_flight = stack.trigger("faults_pushed", _run_ids("pushed", 1)[0])
    stack.wait_task_state("faults_pushed", "running", 1, run_ids=[in_flight], timeout=120)

    _push(
        clone, PUSHED_DAG.format(version="v2").replace("def version():", "def version(:"), "v2: syntax error"
    )
    _git_sync(checkout)
    deadline, errors = time.monotonic() + 90, []
    while time.monotonic() < deadline and not errors:
        errors = _pushed_import_errors(stack)
        time.sleep(1)
    surfaced = bool(errors) and "SyntaxError" in errors[0]["stack_trace"]
    probe_runs = [stack.trigger(PROBE, run_id, conf={"seconds": 1}) for run_id in _run_ids("gitpush", 2)]
    # The task that was running finishes on the version it loaded. Its run is finalised only once the file
    # parses again: the scheduler does not process the runs of a DAG whose file is broken (stale).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not stack.task_states("faults_pushed", [in_flight])["success"]:
        time.sleep(1)
    in_flight_task = (
        "success" if stack.task_states("faults_pushed", [in_flight])["success"] else "not finished"
    )
    states, ex = _settle(stack, probe_runs, timeout=120)
    try:  # a broken file's DAG is marked stale: no new runs of a version nobody can parse any more
        stack.trigger("faults_pushed", _run_ids("pushed", 1)[0])
        refused = "no"
    except requests.HTTPError as exc:
        refused = f"HTTP {exc.response.status_code}"

    _push(clone, PUSHED_DAG.format(version="v3"), "v3: fixed")
    _git_sync(checkout)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and _pushed_import_errors(stack):
        time.sleep(1)
    stack.wait_parsed(["faults_pushed"], timeout=60)
    fixed_run = None
    while fixed_run is None and time.monotonic() < deadline + 30:
        try:
            fixed_run = stack.trigger("faults_pushed", _run_ids("pushed", 1)[0])
        except requests.HTTPError:
            time.sleep(1)
    fixed_state = (
        stack.wait_runs("faults_pushed", [fixed_run], timeout=120).get(fixed_run) if fixed_run else None
    )
    in_flight_state = stack.wait_runs("faults_pushed", [in_flight], timeout=60).get(in_flight)
    handled = (
        surfaced
        and in_flight_task == "success"
        and in_flight_state == "success"
        and "v1" in _returned(stack, in_flight)
        and refused != "no"
        and _clean(states, ex, probe_runs)
        and fixed_state == "success"
        and "v3" in _returned(stack, fixed_run or "")
    )
    _record_probe(
        record_fault,
        stack,
        "airflow: git push of a DAG file with a syntax error",
        "import error surfaced; the previous version's run finishes; other DAGs unaffected; a fix restores",
        f"SyntaxError surfaced={surfaced}; in-flight v1 task {in_flight_task} returning "
        f"{_returned(stack, in_flight)}; new runs of the broken DAG refused ({refused}); other DAG: "
        f"{_outcome(states, ex)}; after the fix: v1 run {in_flight_state}, new run {fixed_state} returning "
        f"{_returned(stack, fixed_run or '')}",
        ex,
        handled,
    )


# ---- components killed or restarted while runs are in flight ---------------------------------------------
def _in_flight(stack: Any, label: str, runs: int, seconds: float, running: int) -> list[str]:
    """Trigger ``runs`` probe runs and wait until ``running`` of their tasks are executing."""
    run_ids = [stack.trigger(PROBE, run_id, conf={"seconds": seconds}) for run_id in _run_ids(label, runs)]
    stack.wait_task_state(PROBE, "running", running, run_ids=run_ids, timeout=120)
    return run_ids


def _overlapping_tries(lines: list[dict[str, Any]], cut_off_at: float) -> int:
    """Tasks of which a try started before the previous try had ended (by finishing, or at ``cut_off_at``
    for a try that never finished: its process was killed then)."""
    tries: dict[tuple[str, str], dict[int, list[float]]] = collections.defaultdict(dict)
    for x in lines:
        span = tries[(x["run_id"], x["task_id"])].setdefault(x["try"], [x["at"], cut_off_at])
        span[0 if x["event"] == "start" else 1] = x["at"]
    overlapping = 0
    for spans in tries.values():
        ordered = [spans[n] for n in sorted(spans)]
        overlapping += any(later[0] < earlier[1] for earlier, later in itertools.pairwise(ordered))
    return overlapping


def test_one_of_two_schedulers_sigkilled_while_runs_are_queued_and_running(
    airflow_stack: Any, record_fault: Callable[..., Any]
) -> None:
    stack = airflow_stack
    # 8 runs x 3 tasks = 24 tasks against 2 x 8 executor slots: some run, some wait queued or scheduled.
    runs = _in_flight(stack, "schedkill", runs=8, seconds=10, running=6)

    def executing_on_scheduler_1() -> bool:
        pids = stack.descendants("scheduler-1")
        return any(x["event"] == "start" and x["pid"] in pids for x in stack.ledger_lines())

    wait_until(
        executing_on_scheduler_1, timeout=120, interval=0.5, what="scheduler-1's tasks to be executing"
    )
    at_kill = stack.task_states(PROBE, runs)
    # The scheduler's pod dies: the scheduler, its LocalExecutor workers and their task processes are all
    # SIGKILLed, so the tries it was running never finish. The survivor finds them orphaned (their
    # scheduler's heartbeat stops) and runs each again as a new try; it runs the queued ones too.
    killed = stack.kill("scheduler-1")
    cut_off_at = time.time()
    states, ex = _settle(stack, runs, timeout=420)
    survivor_alive = stack.alive("scheduler-2")
    stack.start_component("scheduler-1")
    lines = [x for x in stack.ledger_lines() if x["run_id"] in set(runs)]
    finished = {(x["run_id"], x["task_id"], x["try"]) for x in lines if x["event"] == "done"}
    cut_off = [
        x for x in lines if x["event"] == "start" and (x["run_id"], x["task_id"], x["try"]) not in finished
    ]
    cut_off_by_kill = sum(1 for x in cut_off if x["pid"] in killed)
    overlapping = _overlapping_tries(lines, cut_off_at)
    handled = (
        _clean(states, ex, runs)
        and survivor_alive
        and cut_off_by_kill == len(cut_off) > 0
        and overlapping == 0
    )
    _record_probe(
        record_fault,
        stack,
        "airflow: 1 of 2 schedulers SIGKILLed mid-run (with its executor workers and task processes)",
        "the other scheduler carries on; the dead one's tries never finish and each is re-run once as a "
        "new try (LocalExecutor cannot adopt them; the KubernetesExecutor adopts the pods and reruns "
        "nothing); every task finishes exactly once, no two tries of a task overlap",
        f"at the kill {dict(at_kill)}; {len(killed)} processes killed, {cut_off_by_kill} of the "
        f"{len(cut_off)} unfinished tries were theirs; after: {_outcome(states, ex)}; tasks with overlapping "
        f"tries {overlapping}; scheduler-2 alive={survivor_alive}",
        ex,
        handled,
    )


@pytest.mark.parametrize(
    ("mode", "how"),
    [("fast", "restarted (clean shutdown)"), ("immediate", "crashed (no shutdown, WAL recovery)")],
    ids=["restart", "crash"],
)
def test_metadata_db_restarted_mid_run(
    airflow_stack: Any, record_fault: Callable[..., Any], mode: str, how: str
) -> None:
    stack = airflow_stack
    runs = _in_flight(stack, f"db{mode}", runs=4, seconds=8, running=4)
    stack.postgres.stop(mode=mode)  # every client connection dropped
    time.sleep(5)
    stack.postgres.restart()
    # Like kubelet, start again any component that exits on the outage, also later (recorded in the outcome).
    crashed: list[str] = []
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        crashed += stack.restart_exited()
        states = stack.run_states(PROBE, runs)
        if len(states) == len(runs) and set(states.values()) <= {"success", "failed"}:
            break
        time.sleep(1)
    crashed += stack.restart_exited()
    states, ex = _settle(stack, runs, timeout=5)
    stack.wait_healthy(120)
    # A scheduler that exited leaves its running tasks to be reset by the other (a new try; see above).
    schedulers_exited = any(name.startswith("scheduler") for name in crashed)
    handled = _clean(states, ex, runs, reruns_allowed=ex["expected"] if schedulers_exited else 0)
    _record_probe(
        record_fault,
        stack,
        f"airflow: metadata DB (PostgreSQL) {how.split(' (')[0]} mid-run",
        "components reconnect or restart (as kubelet would); no try runs twice; every task finishes",
        f"DB {how}, down 5 s; components that exited (restarted): {sorted(set(crashed)) or 'none'}; "
        f"{_outcome(states, ex)}",
        ex,
        handled,
    )


def test_api_server_restarted_while_tasks_report_to_it(
    airflow_stack: Any, record_fault: Callable[..., Any]
) -> None:
    stack = airflow_stack
    runs = _in_flight(stack, "apirestart", runs=4, seconds=10, running=4)
    started = time.monotonic()
    stack.rolling_restart_api()
    took = time.monotonic() - started
    states, ex = _settle(stack, runs, timeout=240)
    handled = _clean(states, ex, runs)
    _record_probe(
        record_fault,
        stack,
        "airflow: API servers restarted while tasks report",
        "rolling restart of both replicas; task processes reconnect; every task finishes exactly once",
        f"both replicas restarted in turn in {took:.0f} s; {_outcome(states, ex)}",
        ex,
        handled,
    )


# ---- ingestion through the stack: a task process killed mid-upload ---------------------------------------
INGEST = "ingest_hackernews"
HN_PATH = "/api/v1/search_by_date"


def _ingest_partition(logical_date: datetime.datetime) -> str:
    """The partition an ``ingest_hackernews`` run writes: the day before its logical date (@daily)."""
    day = (logical_date - datetime.timedelta(days=1)).date().isoformat()
    return partition_prefix("hackernews", "stories", day)


def _synthetic_ids(pages: int, per_page: int) -> collections.Counter[str]:
    """The record ids the replay server's synthetic route serves (``objectID`` 0, 1, ...)."""
    return collections.Counter(str(n) for n in range(pages * per_page))


def test_task_process_sigkilled_mid_upload(
    airflow_stack: Any, s3_server: Any, replay_server: Any, record_fault: Callable[..., Any]
) -> None:
    from airbricks.ingestion.raw_zone import read_manifest

    stack, s3 = airflow_stack, s3_server.client()
    s3_server.reset()
    s3_server.create_bucket(BUCKET)
    pages, per_page = 200, 20
    replay_server.add_synthetic(HN_PATH, pages=pages, per_page=per_page, record_bytes=2000)
    logical = datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC)
    prefix = _ingest_partition(logical)
    run = stack.trigger(INGEST, _run_ids("midupload", 1)[0], logical_date=logical.isoformat())

    def parts_written() -> int:
        return int(s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("KeyCount", 0))

    pid: list[int | None] = [None]

    def uploading() -> bool:
        pid[0] = stack.task_pid(INGEST, run)
        return pid[0] is not None and parts_written() >= 5

    try:
        wait_until(uploading, timeout=300, interval=0.2, what=f"{INGEST} run {run} to have uploaded 5 pages")
    except TimeoutError as exc:
        raise AssertionError(
            f"{exc}: run {stack.run_states(INGEST, [run])}, tasks {dict(stack.task_states(INGEST, [run]))}, "
            f"task pid {pid[0]}, {parts_written()} objects under {prefix}\n{stack.tails()}"
        ) from exc
    written = parts_written()
    os.kill(pid[0] or 0, signal.SIGKILL)  # the task process itself: its supervisor sees it die, a retry runs
    # A reader polls the partition from the kill until the run ends: it must see no manifest (the killed
    # try's pages are not published) or the retry's complete one, never a manifest of part of the pages.
    seen: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        manifest = read_manifest(s3, BUCKET, prefix)
        seen["no manifest" if manifest is None else f"manifest of {len(manifest['parts'])} pages"] += 1
        if stack.run_states(INGEST, [run]).get(run) in TERMINAL:
            break
        time.sleep(0.3)
    state = stack.run_states(INGEST, [run]).get(run)
    tries = stack.sql(
        "SELECT try_number FROM task_instance WHERE dag_id = :d AND run_id = :r", d=INGEST, r=run
    )
    published, unlisted = published_records(s3, "hackernews", prefix)
    lost, duplicated = lost_and_duplicated(_synthetic_ids(pages, per_page), published)
    partial = sum(n for what, n in seen.items() if what not in ("no manifest", f"manifest of {pages} pages"))
    handled = state == "success" and partial == 0 and not unlisted and (lost, duplicated) == (0, 0)
    record_fault(
        "airflow: task process SIGKILLed mid-upload",
        "readers never see a partial partition (no manifest, or the complete one); the retry publishes "
        "every record exactly once",
        f"killed the task process with {written} of {pages} pages uploaded; reader polls after the kill: "
        f"{dict(seen)}; run {state} on try {tries[0][0] if tries else '?'}; "
        f"{sum((published or collections.Counter()).values())} of {pages * per_page} records published, "
        f"{len(unlisted)} objects the manifest does not list",
        handled,
        records_lost=lost,
        records_duplicated=duplicated,
    )
    assert handled, stack.tails()


# ---- the triggerer ---------------------------------------------------------------------------------------
DBX_WAIT = "faults_dbx_wait"
DBX_WAIT_JOB = "airbricks_faults_wait"
DEFERRED_WAITS = 50


@pytest.fixture
def databricks_bundle_dir() -> Path:
    return STACK_BUNDLE


def _emulator_runs(databricks_emulator: Any) -> list[Any]:
    """Every run of the wait job, as the emulator's REST API lists them (``jobs/runs/list``, paginated)."""
    client = databricks_emulator.client()
    return list(client.jobs.list_runs(job_id=databricks_emulator.job_id(DBX_WAIT_JOB)))


def _clusters_left(databricks_emulator: Any) -> int:
    """Clusters not TERMINATED once the runs have ended (the emulator's REST API, ``clusters/list``)."""
    with contextlib.suppress(TimeoutError):
        databricks_emulator.wait_idle(timeout=60)
    clusters = databricks_emulator.client().clusters.list()
    return sum(1 for c in clusters if c.state is not None and c.state.value != "TERMINATED")


@pytest.mark.timeout(1800)
def test_triggerer_sigkilled_while_50_databricks_waits_are_deferred(
    airflow_stack: Any, databricks_emulator: Any, record_fault: Callable[..., Any], tmp_path: Path
) -> None:
    stack = airflow_stack
    release = tmp_path / "release"
    conf = {"release_file": str(release)}
    started = time.monotonic()
    runs = [stack.trigger(DBX_WAIT, run_id, conf=conf) for run_id in _run_ids("trigkill", DEFERRED_WAITS)]
    try:  # each task starts its Databricks run on a worker, then defers: its wait moves to the triggerer
        stack.wait_task_state(DBX_WAIT, "deferred", DEFERRED_WAITS, run_ids=runs, timeout=900)
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; task states {dict(stack.task_states(DBX_WAIT, runs))}") from exc
    deferring = time.monotonic() - started
    before = len(_emulator_runs(databricks_emulator))
    stack.kill("triggerer")
    stack.start_component("triggerer")  # a new pod: it takes the dead triggerer's triggers over
    stack.wait_healthy(180, components=["triggerer"])
    release.write_text("go")
    states = stack.wait_runs(DBX_WAIT, runs, timeout=900)
    job_runs = _emulator_runs(databricks_emulator)
    results = collections.Counter(
        str(r.state.result_state.value) if r.state and r.state.result_state else "none" for r in job_runs
    )
    leaked = _clusters_left(databricks_emulator)
    succeeded = sum(1 for s in states.values() if s == "success")
    handled = before == len(job_runs) == DEFERRED_WAITS and succeeded == DEFERRED_WAITS and leaked == 0
    record_fault(
        f"airflow: triggerer SIGKILLed with {DEFERRED_WAITS} Databricks waits deferred",
        "a new triggerer takes every trigger over; every task resumes and succeeds; one Databricks run per "
        "task on the emulator, none started again",
        f"{DEFERRED_WAITS} deferred at the kill ({deferring:.0f} s after triggering); Airflow runs "
        f"{dict(collections.Counter(states.values()))}; "
        f"emulator runs (REST runs/list) {before} before the kill, {len(job_runs)} after, results "
        f"{dict(results)}; {leaked} clusters not terminated",
        handled,
        records_lost=DEFERRED_WAITS - succeeded,
        records_duplicated=max(0, len(job_runs) - DEFERRED_WAITS),
        clusters_leaked=leaked,
    )
    assert handled, stack.tails()


# ---- load: 50 ingestion runs and 50 Databricks runs in flight together -----------------------------------
LOAD_RUNS = 50


class _Sampler:
    """Samples, every ``interval`` seconds until stopped, the peak of each of ``probes`` (name -> count)."""

    def __init__(self, probes: dict[str, Callable[[], int]], interval: float = 1.0) -> None:
        self.peaks = dict.fromkeys(probes, 0)
        self._probes, self._interval = probes, interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stopped.is_set():
            for name, probe in self._probes.items():
                with contextlib.suppress(Exception):  # a failed sample is skipped, the next one counts
                    self.peaks[name] = max(self.peaks[name], probe())
            self._stopped.wait(self._interval)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=30)


@pytest.mark.timeout(2400)
def test_load_50_ingestion_and_50_databricks_runs_in_flight(
    airflow_stack: Any,
    s3_server: Any,
    replay_server: Any,
    databricks_emulator: Any,
    record_fault: Callable[..., Any],
    tmp_path: Path,
) -> None:
    stack, s3 = airflow_stack, s3_server.client()
    s3_server.reset()
    s3_server.create_bucket(BUCKET)
    pages, per_page = 3, 20
    replay_server.add_synthetic(HN_PATH, pages=pages, per_page=per_page, record_bytes=200)
    release = tmp_path / "release"
    release.write_text("go")  # the Databricks runs end as soon as they start: the load is Airflow's
    dates = [
        datetime.datetime(2026, 4, 2, tzinfo=datetime.UTC) + datetime.timedelta(days=n)
        for n in range(LOAD_RUNS)
    ]
    ingest_ids, dbx_ids = _run_ids("loadingest", LOAD_RUNS), _run_ids("loaddbx", LOAD_RUNS)

    def in_flight() -> int:
        rows = stack.sql(
            "SELECT count(*) FROM dag_run WHERE run_id = ANY(:r) AND state NOT IN ('success', 'failed')",
            r=[*ingest_ids, *dbx_ids],
        )
        return int(rows[0][0])

    started = time.monotonic()
    with _Sampler(
        {"db connections": stack.postgres.connection_count, "runs in flight": in_flight}
    ) as sampler:
        for date, ingest_id, dbx_id in zip(dates, ingest_ids, dbx_ids, strict=True):
            stack.trigger(INGEST, ingest_id, logical_date=date.isoformat())
            stack.trigger(DBX_WAIT, dbx_id, conf={"release_file": str(release)})
        ingest_states = stack.wait_runs(INGEST, ingest_ids, timeout=1500)
        dbx_states = stack.wait_runs(DBX_WAIT, dbx_ids, timeout=600)
    wall = time.monotonic() - started

    lost = duplicated = unlisted = 0
    for date in dates:
        published, stray = published_records(s3, "hackernews", _ingest_partition(date))
        run_lost, run_duplicated = lost_and_duplicated(_synthetic_ids(pages, per_page), published)
        lost, duplicated, unlisted = lost + run_lost, duplicated + run_duplicated, unlisted + len(stray)
    job_runs = _emulator_runs(databricks_emulator)
    leaked = _clusters_left(databricks_emulator)
    ok_ingest = sum(1 for s in ingest_states.values() if s == "success")
    ok_dbx = sum(1 for s in dbx_states.values() if s == "success")
    duplicated += max(0, len(job_runs) - LOAD_RUNS)
    lost += max(0, LOAD_RUNS - len(job_runs))
    handled = ok_ingest == ok_dbx == LOAD_RUNS and not unlisted and (lost, duplicated, leaked) == (0, 0, 0)
    pending = {
        dag: sorted(r for r, s in states.items() if s != "success")[:5]
        for dag, states in ((INGEST, ingest_states), (DBX_WAIT, dbx_states))
    }
    record_fault(
        f"load: {LOAD_RUNS} ingestion + {LOAD_RUNS} Databricks runs in flight together",
        "every run succeeds; every partition holds exactly the source's records; one Databricks run each; "
        "no cluster left",
        f"ingestion {ok_ingest}/{LOAD_RUNS} and Databricks {ok_dbx}/{LOAD_RUNS} succeeded, "
        f"{len(job_runs)} emulator runs; {LOAD_RUNS * pages * per_page} records expected in {LOAD_RUNS} "
        f"partitions, {unlisted} objects no manifest lists; wall time {wall:.0f} s; peak runs in flight "
        f"{sampler.peaks['runs in flight']}; peak DB connections {sampler.peaks['db connections']} "
        f"(pg_stat_activity, 1 s samples)",
        handled,
        records_lost=lost,
        records_duplicated=duplicated,
        clusters_leaked=leaked,
    )
    assert handled, f"not succeeded (first 5 each): {pending}\n{stack.tails()}"
