"""The run scheduler: a run's life cycle from admission to its last task, and each task's retries.

One thread per run (or repair) admits it (``max_concurrent_runs``, FIFO per job), injects run faults, starts
the run's job clusters up front as Databricks does, then starts each task when its ``depends_on`` and
``run_if`` allow, in a thread of its own that runs attempts through the :class:`TaskRunner` until it
succeeds or has no retries left. The run's outcome follows from its tasks' latest attempts.
"""

from __future__ import annotations

import shutil
import threading
import time
from typing import Any

from airbricks.emulator.clusters import ClusterFailed, ClusterManager
from airbricks.emulator.faults import Faults
from airbricks.emulator.runs import FAILED_RESULTS, Run, RunStore, TaskRun, now_ms
from airbricks.emulator.spark_drivers import kill_group
from airbricks.emulator.task_runner import TaskRunner, cluster_message
from airbricks.emulator.views import state_json

_SKIP_MESSAGES = {
    "UPSTREAM_FAILED": "Upstream task(s) failed.",
    "UPSTREAM_CANCELED": "Upstream task(s) were canceled.",
}


class RunScheduler:
    """Executes runs; every wait is on the store's condition.

    :param store: the run store.
    :param clusters: job clusters are created and terminated here.
    :param faults: run faults (``fail_runs``) are taken here.
    :param runner: runs one task attempt.
    :param retry_interval_cap: upper bound (seconds) of ``min_retry_interval_millis``; None keeps the job's.
    """

    def __init__(
        self,
        store: RunStore,
        clusters: ClusterManager,
        faults: Faults,
        runner: TaskRunner,
        retry_interval_cap: float | None = None,
    ):
        self._store = store
        self.clusters = clusters
        self.faults = faults
        self.runner = runner
        self.retry_interval_cap = retry_interval_cap
        self._threads: list[threading.Thread] = []

    def join(self, timeout: float) -> None:
        """Wait for every run thread (after their runs were asked to cancel)."""
        for thread in list(self._threads):
            thread.join(timeout=timeout)

    def start(self, run: Run, tasks: list[TaskRun], repair: bool) -> None:
        """Run ``tasks`` of ``run`` (all of them, or a repair's) in a thread of their own."""
        thread = threading.Thread(
            target=self._execute, args=(run, tasks, repair), name=f"run-{run.run_id}", daemon=True
        )
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _execute(self, run: Run, to_run: list[TaskRun], repair: bool) -> None:
        try:
            self._execute_inner(run, to_run, repair)
        except Exception as exc:  # a bug here must still end the run, never leave it RUNNING forever
            with self._store.cond:
                self._store.finish(
                    run,
                    "INTERNAL_ERROR",
                    "FAILED",
                    f"Emulator error: {exc!r}",
                    ("INTERNAL_ERROR", "INTERNAL_ERROR"),
                )
        finally:
            self._release_clusters(run)
            with self._store.cond:
                if run.life_cycle_state == "TERMINATING":
                    run.life_cycle_state = "TERMINATED"
                run.end_time = now_ms()
                if run.repair_history:
                    run.repair_history[-1]["end_time"] = run.end_time
                    run.repair_history[-1]["state"] = state_json(run)
                self._store.cond.notify_all()
            shutil.rmtree(self.runner.storage.storage_dir / f"run-{run.run_id}", ignore_errors=True)

    def _execute_inner(self, run: Run, to_run: list[TaskRun], repair: bool) -> None:
        # Queue behind other active runs of the same job (max_concurrent_runs, queueing on by default).
        with self._store.cond:
            if not repair and run.job_id is not None:
                limit = int(run.settings.get("max_concurrent_runs") or 1)
                queue_enabled = (run.settings.get("queue") or {}).get("enabled", True)
                while (verdict := self._admission(run, limit)) != "start":
                    if verdict == "full" and not queue_enabled:
                        for task in run.tasks:
                            task.life_cycle_state, task.result_state = "SKIPPED", None
                        run.admission = "started"  # decided: lets younger runs through
                        self._store.finish(
                            run,
                            "SKIPPED",
                            "MAXIMUM_CONCURRENT_RUNS_REACHED",
                            "Run skipped: maximum concurrent runs reached",
                            ("MAX_CONCURRENT_RUNS_EXCEEDED", "CLIENT_ERROR"),
                        )
                        return
                    if verdict == "full":
                        run.admission = "queued"
                        run.state_message = "Waiting: maximum concurrent runs reached"
                    if run.cancel_requested:
                        self._store.finish(
                            run,
                            "TERMINATED",
                            "CANCELED",
                            "Run canceled while queued",
                            ("USER_CANCELED", "SUCCESS"),
                        )
                        return
                    self._store.cond.wait(0.2)
            run.admission = "started"
            run.life_cycle_state = "PENDING"
            run.state_message = ""
            run.result_state = None
            run.termination = None
            if not run.start_time:
                run.start_time = now_ms()
        injected = self.faults.take_run_failure()
        if injected is not None and injected.kind == "INTERNAL_ERROR":
            with self._store.cond:
                for task in to_run:
                    self._store.end_task(
                        task,
                        "INTERNAL_ERROR",
                        "FAILED",
                        injected.message,
                        ("INTERNAL_ERROR", "INTERNAL_ERROR"),
                    )
                self._store.finish(
                    run, "INTERNAL_ERROR", "FAILED", injected.message, ("INTERNAL_ERROR", "INTERNAL_ERROR")
                )
            return
        # Job clusters are shared by every task of the run: start them all up front, as Databricks does.
        setup_started = time.monotonic()
        try:
            self._start_job_clusters(run, to_run)
        except ClusterFailed as failed:
            self._cluster_failed(run, to_run, failed)
            return
        with self._store.cond:
            run.setup_duration = int((time.monotonic() - setup_started) * 1000)
            if run.cancel_requested:
                self._cancel_pending(run, to_run)
                self._store.finish(
                    run, "TERMINATED", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS")
                )
                return
            run.life_cycle_state = "RUNNING"
        timeout = run.settings.get("timeout_seconds") or 0
        deadline = time.monotonic() + timeout if timeout else None
        pending = {t.task_key: t for t in to_run}
        workers: dict[str, threading.Thread] = {}
        fail_first = injected  # a FAILED fault fails the first task that starts (or its task_key)
        while True:
            with self._store.cond:
                by_key = {t.task_key: t for t in run.latest}  # retries add attempts: rebuild each round
                if deadline and time.monotonic() > deadline and not run.timed_out:
                    run.timed_out = True
                    for task in run.tasks:
                        if task.process is not None and task.kill_reason is None:
                            task.kill_reason = "TIMEDOUT"
                            kill_group(task.process)
                for key, task in list(pending.items()):
                    verdict = self._readiness(task, by_key, run)
                    if verdict == "wait":
                        continue
                    del pending[key]
                    if verdict == "run":
                        task.life_cycle_state = "PENDING"
                        targeted = fail_first is not None and fail_first.task_key in (None, task.task_key)
                        thread = threading.Thread(
                            target=self._run_task_safe,
                            args=(run, task, fail_first if targeted else None),
                            daemon=True,
                        )
                        if targeted:
                            fail_first = None
                        workers[key] = thread
                        thread.start()
                    else:
                        self._store.end_task(
                            task, "TERMINATED", verdict, _SKIP_MESSAGES[verdict], ("SKIPPED", "SUCCESS")
                        )
                if not pending and all(not w.is_alive() for w in workers.values()):
                    break
                self._store.cond.wait(0.1)
        with self._store.cond:
            latest = run.latest
            results = [t.result_state for t in latest]
            if run.timed_out:
                self._store.finish(
                    run,
                    "TERMINATING",
                    "TIMEDOUT",
                    f"Run timed out after {timeout} seconds",
                    ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
                )
            elif run.cancel_requested:
                self._store.finish(
                    run, "TERMINATING", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS")
                )
            elif any(t.life_cycle_state == "INTERNAL_ERROR" for t in latest):
                bad = next(t for t in latest if t.life_cycle_state == "INTERNAL_ERROR")
                self._store.finish(
                    run,
                    "INTERNAL_ERROR",
                    "FAILED",
                    bad.state_message,
                    bad.termination or ("INTERNAL_ERROR", "INTERNAL_ERROR"),
                )
            elif any(r in FAILED_RESULTS for r in results):
                failed = [t.task_key for t in latest if t.result_state in ("FAILED", "TIMEDOUT")]
                self._store.finish(
                    run,
                    "TERMINATING",
                    "FAILED",
                    f"Task(s) {failed} failed" if failed else "Run failed",
                    ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
                )
            else:
                self._store.finish(run, "TERMINATING", "SUCCESS", "", ("SUCCESS", "SUCCESS"))

    def _admission(self, run: Run, limit: int) -> str:
        """``start``, ``wait`` (an older run of the job has not been admitted yet) or ``full``."""
        others = [
            r for r in self._store.runs.values() if r.job_id == run.job_id and r is not run and r.active
        ]
        if any(r.run_id < run.run_id and r.admission != "started" for r in others):
            return "wait"  # first in, first out
        started = sum(1 for r in others if r.admission == "started")
        return "start" if started < limit else "full"

    def _readiness(self, task: TaskRun, by_key: dict[str, TaskRun], run: Run) -> str:
        if run.cancel_requested or run.timed_out:
            return "UPSTREAM_CANCELED" if run.cancel_requested else "UPSTREAM_FAILED"
        deps = [by_key[d["task_key"]] for d in task.spec.get("depends_on") or [] if d["task_key"] in by_key]
        if any(not d.done or self.will_retry(run, d) for d in deps):
            return "wait"  # a failed dependency that will be retried is not final yet
        if not deps:
            return "run"
        results = [d.result_state for d in deps]
        ok = [r == "SUCCESS" for r in results]
        rule = task.spec.get("run_if") or "ALL_SUCCESS"
        passes = {
            "ALL_SUCCESS": all(ok),
            "ALL_DONE": True,
            "NONE_FAILED": not any(r in ("FAILED", "TIMEDOUT", "UPSTREAM_FAILED") for r in results),
            "AT_LEAST_ONE_SUCCESS": any(ok),
            "ALL_FAILED": not any(ok),
            "AT_LEAST_ONE_FAILED": not all(ok),
        }.get(rule, all(ok))
        if passes:
            return "run"
        if any(r in ("CANCELED", "UPSTREAM_CANCELED") for r in results):
            return "UPSTREAM_CANCELED"
        return "UPSTREAM_FAILED"

    def _start_job_clusters(self, run: Run, to_run: list[TaskRun]) -> None:
        needed = {t.spec.get("job_cluster_key") for t in to_run} - {None}
        specs = {c["job_cluster_key"]: c["new_cluster"] for c in run.settings.get("job_clusters") or []}
        for key in sorted(needed):
            existing = run.job_cluster_ids.get(key)
            if existing and self.clusters.state_of(existing) == "RUNNING":
                continue
            cluster = self.clusters.create(
                {**specs[key], "cluster_name": f"job-{run.job_id or 'submit'}-run-{run.run_id}-{key}"},
                source="JOB",
            )
            with self._store.lock:
                run.job_cluster_ids[key] = cluster.cluster_id
                run.owned_clusters.append(cluster.cluster_id)
        for key in sorted(needed):
            self.clusters.wait_running(
                run.job_cluster_ids[key], timeout=3600, cancelled=lambda: run.cancel_requested
            )

    def _cluster_failed(self, run: Run, tasks: list[TaskRun], failed: ClusterFailed) -> None:
        message = cluster_message(failed)
        with self._store.cond:
            if run.cancel_requested:
                self._cancel_pending(run, tasks)
                self._store.finish(
                    run, "TERMINATED", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS")
                )
                return
            for task in tasks:
                if not task.done:
                    self._store.end_task(
                        task, "INTERNAL_ERROR", "FAILED", message, ("CLUSTER_ERROR", "CLOUD_FAILURE")
                    )
            self._store.finish(run, "INTERNAL_ERROR", "FAILED", message, ("CLUSTER_ERROR", "CLOUD_FAILURE"))

    def _cancel_pending(self, run: Run, tasks: list[TaskRun]) -> None:
        for task in tasks:
            if not task.done:
                self._store.end_task(
                    task, "TERMINATED", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS")
                )

    def _release_clusters(self, run: Run) -> None:
        for cluster_id in run.owned_clusters:
            try:
                self.clusters.terminate(
                    cluster_id,
                    {"code": "JOB_FINISHED", "type": "SUCCESS", "parameters": {}},
                    "Job run finished",
                )
            except Exception:  # noqa: S112 - a permanently deleted job cluster needs no termination
                continue

    def _run_task_safe(self, run: Run, task: TaskRun, injected: Any) -> None:
        """Run a task, then its retries (max_retries, min_retry_interval_millis, retry_on_timeout)."""
        while True:
            try:
                self.runner.run(run, task, injected)
            except Exception as exc:
                with self._store.cond:
                    task.error = f"Emulator error: {exc!r}"
                    self._store.end_task(
                        task, "INTERNAL_ERROR", "FAILED", task.error, ("INTERNAL_ERROR", "INTERNAL_ERROR")
                    )
            injected = None
            with self._store.cond:
                if not self.will_retry(run, task):
                    return
                task = self._store.new_attempt(run, task, "WAITING_FOR_RETRY")
                interval = (task.spec.get("min_retry_interval_millis") or 0) / 1000
                if self.retry_interval_cap is not None:
                    interval = min(interval, self.retry_interval_cap)
                deadline = time.monotonic() + interval
                while time.monotonic() < deadline and not (run.cancel_requested or run.timed_out):
                    self._store.cond.wait(0.1)
                if run.cancel_requested or run.timed_out:
                    self._store.end_task(
                        task, "TERMINATED", "CANCELED", "Run canceled", ("USER_CANCELED", "SUCCESS")
                    )
                    return

    def will_retry(self, run: Run, task: TaskRun) -> bool:
        """Whether a finished attempt gets another one, as Databricks decides it."""
        if run.cancel_requested or run.timed_out or task.kill_reason == "CANCELED":
            return False
        failed = task.result_state == "FAILED" or task.life_cycle_state == "INTERNAL_ERROR"
        timed_out = task.result_state == "TIMEDOUT" and bool(task.spec.get("retry_on_timeout"))
        if not (failed or timed_out):
            return False
        max_retries = int(task.spec.get("max_retries") or 0)
        return max_retries == -1 or task.attempt_number < max_retries
