"""The run store: runs and task attempts in memory, their ids, and the one condition all run threads share.

A run goes QUEUED (if the job is at ``max_concurrent_runs``) → PENDING (clusters starting) → RUNNING →
TERMINATING (job clusters shut down) → TERMINATED, or INTERNAL_ERROR for platform failures. Every state
change happens under :attr:`RunStore.cond` and notifies it, so waiting threads (scheduler, task runners,
``shutdown``) wake at once instead of polling blindly.
"""

from __future__ import annotations

import base64
import itertools
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from airbricks.emulator.errors import as_int, invalid, not_found

TERMINAL = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")
FAILED_RESULTS = ("FAILED", "TIMEDOUT", "CANCELED", "UPSTREAM_FAILED", "UPSTREAM_CANCELED")
CANCELED = ("USER_CANCELED", "SUCCESS")  # status.termination_details of a canceled run or task


def now_ms() -> int:
    return int(time.time() * 1000)


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        prefix, _, number = text.partition(":")
        if prefix != "offset":
            raise ValueError(text)
        return int(number)
    except ValueError as exc:
        raise invalid(f"Invalid page_token {token!r}") from exc


@dataclass
class TaskRun:
    """One attempt of one task (retries and repairs add attempts; ``Run.tasks`` keeps them all)."""

    run_id: int
    task_key: str
    spec: dict[str, Any]
    attempt_number: int = 0
    life_cycle_state: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    termination: tuple[str, str] | None = None  # (code, type) of status.termination_details
    start_time: int = 0
    setup_start: float | None = None
    exec_start: float | None = None
    exec_end: float | None = None
    end_time: int = 0
    cluster_id: str | None = None
    exit_value: str | None = None
    error: str | None = None
    error_trace: str | None = None
    logs: str | None = None
    logs_truncated: bool = False
    task_values: dict[str, Any] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    kill_reason: str | None = None  # CANCELED | TIMEDOUT | CLUSTER_LOST

    @property
    def done(self) -> bool:
        return self.life_cycle_state in TERMINAL


@dataclass
class Run:
    run_id: int
    job_id: int | None
    number_in_job: int
    run_name: str
    run_type: str
    settings: dict[str, Any]
    job_parameters: dict[str, str]
    overriding: dict[str, Any]
    tasks: list[TaskRun]
    created: int = field(default_factory=now_ms)
    life_cycle_state: str = "QUEUED"
    result_state: str | None = None
    state_message: str = ""
    termination: tuple[str, str] | None = None
    start_time: int = 0
    end_time: int = 0
    setup_duration: int = 0
    cancel_requested: bool = False
    timed_out: bool = False
    admission: str = "new"  # new -> queued -> started: the per-job FIFO of max_concurrent_runs
    repair_history: list[dict[str, Any]] = field(default_factory=list)
    job_cluster_ids: dict[str, str] = field(default_factory=dict)
    owned_clusters: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.life_cycle_state not in TERMINAL

    @property
    def latest(self) -> list[TaskRun]:
        """The latest attempt of each task, in task order (``tasks`` holds every attempt, like Databricks)."""
        by_key: dict[str, TaskRun] = {}
        for task in self.tasks:
            by_key[task.task_key] = task
        return list(by_key.values())


class RunStore:
    """Runs by id, task attempts by their own run id, idempotency tokens, and the id counter.

    Jobs take their ids from the same counter (:meth:`next_id`), so a job id never equals a run id.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.runs: dict[int, Run] = {}
        self.task_index: dict[int, tuple[Run, TaskRun]] = {}
        self.idempotency: dict[str, int] = {}
        self._ids = itertools.count(1000 + int(time.time()) % 1000 * 1000)

    def next_id(self) -> int:
        with self.lock:
            return next(self._ids)

    def get(self, run_id: Any) -> Run:
        run_id = as_int(run_id, "run_id")
        run = self.runs.get(run_id)
        if run is None:
            raise not_found(f"Run {run_id} does not exist.")
        return run

    def add(self, run: Run, token: str | None) -> None:
        with self.lock:
            self.runs[run.run_id] = run
            for task in run.tasks:
                self.task_index[task.run_id] = (run, task)
            if token:
                self.idempotency[token] = run.run_id

    def by_token(self, token: str | None) -> Run | None:
        with self.lock:
            return self.runs.get(self.idempotency[token]) if token and token in self.idempotency else None

    def new_attempt(self, run: Run, previous: TaskRun, life_cycle_state: str) -> TaskRun:
        """Append the next attempt of ``previous``'s task (a retry or a repair) and index it."""
        with self.lock:
            fresh = TaskRun(
                run_id=next(self._ids),
                task_key=previous.task_key,
                spec=previous.spec,
                attempt_number=previous.attempt_number + 1,
                life_cycle_state=life_cycle_state,
            )
            run.tasks.append(fresh)  # runs/get lists every attempt; clients keep the latest
            self.task_index[fresh.run_id] = (run, fresh)
            return fresh

    def remove(self, run: Run) -> None:
        with self.lock:
            del self.runs[run.run_id]
            for task in run.tasks:
                self.task_index.pop(task.run_id, None)

    def clear(self) -> None:
        with self.lock:
            self.runs.clear()
            self.task_index.clear()
            self.idempotency.clear()

    # -- state changes (callers hold ``cond``) ---------------------------------------------------------
    @staticmethod
    def _set_state(
        record: Run | TaskRun, life: str, result: str | None, message: str, termination: tuple[str, str]
    ) -> None:
        record.life_cycle_state = life
        record.result_state = result
        record.state_message = message
        record.termination = termination

    def finish(
        self, run: Run, life: str, result: str | None, message: str, termination: tuple[str, str]
    ) -> None:
        self._set_state(run, life, result, message, termination)
        self.cond.notify_all()

    def end_task(
        self, task: TaskRun, life: str, result: str | None, message: str, termination: tuple[str, str]
    ) -> None:
        """:meth:`finish` for one task attempt; also stamps its end (and its start, if it never started)."""
        self._set_state(task, life, result, message, termination)
        if not task.start_time:
            task.start_time = now_ms()
        task.end_time = now_ms()
        self.cond.notify_all()

    def cancel_task(self, task: TaskRun, message: str = "Run canceled") -> None:
        self.end_task(task, "TERMINATED", "CANCELED", message, CANCELED)
