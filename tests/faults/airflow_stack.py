"""One real Airflow deployment on this machine, component by component, for the process-level faults.

Production runs each Airflow component as its own process (pod): two schedulers, a triggerer, a DAG processor
and an API server that task processes report to, all on a PostgreSQL metadata DB. :class:`AirflowStack` starts
exactly that, each component in its own process group (so one can be SIGKILLed with everything it forked,
as when a pod dies), on a PostgreSQL server of its own (so restarting it touches nothing else), with the
LocalExecutor inside each scheduler. The timing settings are shortened (heartbeats 1 s, a dead component
noticed after 10 s, a task without heartbeat after 20 s) so a fault costs seconds; the mechanisms are the
production ones. As in ``chart/values-prod.yaml`` there are two API server replicas behind one address (a
TCP front, :class:`faults_proxy.FaultProxy`, standing in for the Kubernetes Service): task processes, the CLI
and the tests talk to the front, which sends new connections to a replica that is up.

Task executions are recorded by the probe DAG (``stack_dags/faults_probe.py``) in a ledger file, one JSON
line per start and per finish, so "no task ran twice" is checked on what really executed, not on states.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from faults_proxy import FaultProxy

from airbricks.local.postgres import PostgresServer
from airbricks.local.processes import ProcessGroup, free_port, http_ok, wait_until

STACK_DAGS = Path(__file__).resolve().parent / "stack_dags"
LEDGER_ENV = "AIRBRICKS_FAULTS_LEDGER"
TERMINAL = {"success", "failed"}


class AirflowStack:
    """Real Airflow components on PostgreSQL; ``components`` maps a name to its process group.

    :param base_dir: holds AIRFLOW_HOME, the DAG folder, the ledger and every component's log.
    :param dag_files: files copied into the stack's DAG folder (more can be written later: "git push").
    :param env: extra environment for every component (connections, stand-in settings).
    :param schedulers: how many schedulers to run (production runs two).
    """

    def __init__(
        self, base_dir: Path, dag_files: Iterable[Path], env: Mapping[str, str], *, schedulers: int = 2
    ) -> None:
        self.base_dir = base_dir
        self.home = base_dir / "airflow"
        self.dags_dir = base_dir / "dags"
        self.logs_dir = base_dir / "logs"
        self.ledger = base_dir / "ledger.jsonl"
        self.api_servers = ["api-server-1", "api-server-2"]
        self.api_ports = {name: free_port() for name in self.api_servers}
        self.api_front = FaultProxy("127.0.0.1", self.api_ports["api-server-1"]).start()
        self.scheduler_names = [f"scheduler-{n}" for n in range(1, schedulers + 1)]
        self.components: dict[str, ProcessGroup] = {}
        self.postgres = PostgresServer()  # its own temporary directory: one the unprivileged user can reach
        self._dag_files = list(dag_files)
        self._extra_env = dict(env)
        self._env: dict[str, str] = {}
        self.database_url = ""

    @property
    def base_url(self) -> str:
        return self.api_front.endpoint_url

    # ---- lifecycle -----------------------------------------------------------------------------------
    def start(self, timeout: float = 240) -> AirflowStack:
        for folder in (self.home, self.dags_dir, self.logs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        for path in self._dag_files:
            shutil.copy2(path, self.dags_dir / path.name)
        self.postgres.start()
        self.database_url = self.postgres.create_database("airflow").render_as_string(hide_password=False)
        self._env = self._component_env()
        subprocess.run(
            [sys.executable, "-m", "airflow", "db", "migrate"],
            env=self._env,
            check=True,
            capture_output=True,
            timeout=300,
        )
        for name in [*self.api_servers, "dag-processor", "triggerer", *self.scheduler_names]:
            self.start_component(name)
        self.wait_healthy(timeout)
        return self

    def stop(self) -> None:
        for group in self.components.values():
            group.stop(grace_seconds=10)
        self.api_front.stop()
        self.postgres.stop(mode="immediate", remove=True)

    def start_component(self, name: str) -> None:
        """Start (or start again) component ``name``: ``api-server``, ``scheduler-N``, ``triggerer``, ..."""
        command = name.rsplit("-", 1)[0] if name[-1].isdigit() else name
        argv = [sys.executable, "-m", "airflow", command]
        env = dict(self._env)
        if command == "api-server":
            argv += ["--host", "127.0.0.1", "--port", str(self.api_ports[name])]
        if command == "scheduler":  # each scheduler serves its task logs on a port of its own
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(free_port())
        self.components[name] = ProcessGroup(
            argv, env=env, log_path=self.logs_dir / f"{name}.log", cwd=self.base_dir
        ).start()

    def descendants(self, name: str) -> set[int]:
        """Pids of every live process the component started, in its process group or not."""
        import psutil

        with contextlib.suppress(psutil.NoSuchProcess):
            return {p.pid for p in psutil.Process(self.components[name].pid or 0).children(recursive=True)}
        return set()

    def kill(self, name: str) -> set[int]:
        """SIGKILL the component and every process it started, as when its pod dies: executor workers and
        task processes too, although the task supervisor puts each task process in a process group of its
        own. Everything is stopped first, so nothing forks in between. Returns the pids killed."""
        import psutil

        group = self.components[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group.pid or 0, signal.SIGSTOP)
        pids = self.descendants(name)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        pids |= self.descendants(name)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group.pid or 0, signal.SIGKILL)
        group.stop(grace_seconds=5)
        psutil.wait_procs([p for p in map(_process, pids) if p is not None], timeout=10)
        return pids

    def restart(self, name: str) -> None:
        """Stop the component gracefully (SIGTERM, as a rolling restart does) and start it again."""
        self.components[name].stop(grace_seconds=20)
        self.start_component(name)

    def rolling_restart_api(self, timeout: float = 180) -> None:
        """Restart each API server replica in turn, the front sending traffic to the other meanwhile."""
        for name in self.api_servers:
            other = next(n for n in self.api_servers if n != name)
            self.api_front.upstream = ("127.0.0.1", self.api_ports[other])
            self.restart(name)
            wait_until(
                lambda name=name: http_ok(f"http://127.0.0.1:{self.api_ports[name]}/api/v2/monitor/health"),
                timeout=timeout,
                interval=0.5,
                what=f"{name} to serve again",
            )
        self.api_front.upstream = ("127.0.0.1", self.api_ports[self.api_servers[0]])

    def restart_exited(self) -> list[str]:
        """Start again every component that has exited (what kubelet does for a crashed pod); their names."""
        exited = [name for name, group in self.components.items() if not group.alive()]
        for name in exited:
            self.components[name].stop(grace_seconds=5)  # reap it and close its log
            self.start_component(name)
        return exited

    def alive(self, name: str) -> bool:
        return self.components[name].alive()

    def wait_healthy(self, timeout: float = 120, components: Iterable[str] = ()) -> None:
        wanted = set(components) or {"metadatabase", "scheduler", "triggerer", "dag_processor"}

        def healthy() -> bool:
            health = self.api("GET", "/monitor/health")
            return all((health.get(c) or {}).get("status") == "healthy" for c in wanted)

        try:
            wait_until(
                lambda: http_ok(f"{self.base_url}/api/v2/monitor/health") and healthy(),
                timeout=timeout,
                interval=1,
                what="the Airflow stack to become healthy",
            )
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.tails()}") from exc

    # ---- the REST API and the metadata DB ----------------------------------------------------------------
    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """One call to the public REST API (v2); the simple auth manager lets everyone in as admin."""
        import requests

        response = requests.request(method, f"{self.base_url}/api/v2{path}", timeout=90, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def sql(self, query: str, **params: Any) -> list[Any]:
        from sqlalchemy import create_engine, text
        from sqlalchemy.pool import NullPool

        engine = create_engine(self.database_url, poolclass=NullPool)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(query), params).all())
        finally:
            engine.dispose()

    def wait_parsed(self, dag_ids: Iterable[str], timeout: float = 120) -> None:
        wanted = set(dag_ids)

        def parsed() -> bool:
            rows = self.sql("SELECT dag_id FROM serialized_dag")
            return wanted <= {r[0] for r in rows}

        wait_until(parsed, timeout=timeout, interval=1, what=f"DAGs {sorted(wanted)} to be parsed")

    def trigger(
        self, dag_id: str, run_id: str, conf: Mapping[str, Any] | None = None, logical_date: str | None = None
    ) -> str:
        """Trigger a run through the REST API (``logical_date`` ISO, for DAGs that need a data interval)."""
        import requests

        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf or {}}
        for attempt in range(1, 4):
            try:
                self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)
                return run_id
            except (requests.Timeout, requests.ConnectionError):  # a busy machine: the API server is slow
                if attempt == 3:
                    raise
            except requests.HTTPError as exc:
                # The run id is ours: a 409 after a timed-out attempt means that attempt created the run.
                if attempt > 1 and exc.response is not None and exc.response.status_code == 409:
                    return run_id
                raise
        return run_id

    def task_pid(self, dag_id: str, run_id: str) -> int | None:
        """Pid of the running task process of that run (its title is ``airflow worker -- <ti id>``)."""
        rows = self.sql(
            "SELECT id FROM task_instance WHERE dag_id = :d AND run_id = :r AND state = 'running'",
            d=dag_id,
            r=run_id,
        )
        if not rows:
            return None
        title = f"airflow worker -- {rows[0][0]}".encode()
        for proc in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(title):
                    return int(proc.name)
        return None

    def run_states(self, dag_id: str, run_ids: Iterable[str]) -> dict[str, str]:
        rows = self.sql(
            "SELECT run_id, state FROM dag_run WHERE dag_id = :dag_id AND run_id = ANY(:run_ids)",
            dag_id=dag_id,
            run_ids=list(run_ids),
        )
        return {run_id: state for run_id, state in rows}

    def wait_runs(self, dag_id: str, run_ids: list[str], timeout: float) -> dict[str, str]:
        """Wait until every run is success or failed; their states (the non-terminal ones on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.run_states(dag_id, run_ids)
            if len(states) == len(run_ids) and set(states.values()) <= TERMINAL:
                return states
            if time.monotonic() > deadline:
                return states
            time.sleep(1)

    def task_states(self, dag_id: str, run_ids: Iterable[str]) -> collections.Counter[str]:
        """How many task instances of these runs are in each state."""
        rows = self.sql(
            "SELECT coalesce(state, 'none'), count(*) FROM task_instance "
            "WHERE dag_id = :dag_id AND run_id = ANY(:run_ids) GROUP BY 1",
            dag_id=dag_id,
            run_ids=list(run_ids),
        )
        return collections.Counter({state: count for state, count in rows})

    def wait_task_state(
        self, dag_id: str, state: str, count: int, *, run_ids: Iterable[str], timeout: float = 60
    ) -> None:
        runs = list(run_ids)
        wait_until(
            lambda: self.task_states(dag_id, runs)[state] >= count,
            timeout=timeout,
            interval=0.5,
            what=f"{count} {dag_id} task(s) {state}",
        )

    # ---- the ledger of task executions -------------------------------------------------------------------
    def ledger_lines(self) -> list[dict[str, Any]]:
        if not self.ledger.is_file():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines() if line.strip()]

    def tails(self, lines: int = 15) -> str:
        return "\n".join(f"--- {name} ---\n{group.tail(lines)}" for name, group in self.components.items())

    # ---- internals ---------------------------------------------------------------------------------------
    def _component_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_dir),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "8",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
                "AIRFLOW__CORE__MAX_ACTIVE_RUNS_PER_DAG": "128",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": self.base_url.rsplit(":", 1)[1],
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.home / "logs"),
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                # Fast failure detection, same mechanisms as production's defaults (30 s / 300 s).
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
                "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "2",
                "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
                "AIRFLOW__DAG_PROCESSOR__HEALTH_CHECK_THRESHOLD": "10",
                LEDGER_ENV: str(self.ledger),
                "NO_COLOR": "1",
            }
        )
        env.update(self._extra_env)
        return env


def _process(pid: int) -> Any:
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        return psutil.Process(pid)
    return None
