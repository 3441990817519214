"""Operators for managing Databricks from Airflow.

A modern take on the custom operators of "Fully Managing Databricks from Airflow using Custom Operators"
(Airflow 2.1 era): where the official provider covers a need (run-now, runs/submit, workflows, deferral)
these are thin subclasses of it; what it lacks is added here:

* :class:`DatabricksRestOperator` - any REST call, result to XCom;
* :class:`DatabricksCreateClusterOperator` / :class:`DatabricksDeleteClusterOperator` - all-purpose cluster
  lifecycle, meant to be wired as Airflow setup / teardown so the cluster is deleted whatever happens;
* :class:`DatabricksRunResultOperator` - the ``dbutils.notebook.exit`` value of a run (or of one task);
* :class:`AirbricksDatabricksRunNowOperator` / :class:`AirbricksDatabricksSubmitRunOperator` - the provider's
  operators with an idempotency token derived from the DAG run and ``Retry-After`` aware retries.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.databricks.hooks.databricks import RunState
from airflow.providers.databricks.operators.databricks import (
    DEFER_METHOD_NAME,
    XCOM_JOB_ID_KEY,
    XCOM_RUN_ID_KEY,
    XCOM_RUN_PAGE_URL_KEY,
    DatabricksRunNowOperator,
    DatabricksSubmitRunOperator,
)
from airflow.providers.databricks.triggers.databricks import DatabricksExecutionTrigger
from airflow.providers.databricks.utils.databricks import extract_failed_task_errors
from airflow.sdk import BaseOperator, TriggerRule
from airflow.sdk.exceptions import AirflowException

from airbricks import metrics
from airbricks.databricks.hooks import (
    DEFAULT_CONN_ID,
    DEFAULT_RETRY_DELAY,
    DEFAULT_RETRY_LIMIT,
    AirbricksDatabricksHook,
    DatabricksHookMixin,
)
from airbricks.databricks.repair import get_run_with_history, repair_failed_tasks, run_state
from airbricks.databricks.retry import token_for_context
from airbricks.databricks.triggers import AirbricksDatabricksExecutionTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

XCOM_CLUSTER_ID_KEY = "cluster_id"
# Tags put on every cluster created from Airflow, so a teardown (or a janitor) can find it even when the
# creating task died before it could record the id.
TAG_DAG_ID = "airflow_dag_id"
TAG_RUN_ID = "airflow_run_id"
TAG_TASK_ID = "airflow_task_id"
CLUSTER_FAILED_STATES = frozenset({"TERMINATING", "TERMINATED", "ERROR", "UNKNOWN"})
MAX_ERROR_TRACE_CHARS = 2000
# Task state (Airflow 3.3 task_state_store, kept across retries and clears of the task in its DAG run):
# the Databricks run a try of AirbricksDatabricksRunNowOperator started, so a later try can repair it.
TASK_STATE_RUN_KEY = "airbricks_databricks_run_id"


def _try_number(context: Context) -> int:
    return int(getattr(context.get("ti"), "try_number", 1) or 1)


def _clear_number(context: Context) -> int:
    dag_run = context.get("dag_run")
    return int(getattr(dag_run, "clear_number", 0) or 0)


class DatabricksBaseOperator(DatabricksHookMixin, BaseOperator):
    """Base of the airbricks operators and sensors of their own (not subclassing a provider operator).

    Declares the workspace connection and retry arguments once; ``self._hook`` is the
    :class:`AirbricksDatabricksHook` built from them (:class:`DatabricksHookMixin`).

    :param databricks_conn_id: Airflow connection of the workspace (templated in every subclass).
    :param databricks_retry_limit: attempts per HTTP call on transient errors (5xx, 429, connection errors).
    :param databricks_retry_delay: base back-off in seconds between those attempts.
    :param databricks_retry_args: ``tenacity.Retrying`` arguments, as the provider's operators take them
        (their ``wait`` still honours ``Retry-After``).
    """

    def __init__(
        self,
        *,
        databricks_conn_id: str = DEFAULT_CONN_ID,
        databricks_retry_limit: int = DEFAULT_RETRY_LIMIT,
        databricks_retry_delay: float = DEFAULT_RETRY_DELAY,
        databricks_retry_args: dict[Any, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.databricks_conn_id = databricks_conn_id
        self.databricks_retry_limit = databricks_retry_limit
        self.databricks_retry_delay = databricks_retry_delay
        self.databricks_retry_args = databricks_retry_args


class _ProviderRunMixin(DatabricksHookMixin):
    """Makes a provider run operator use :class:`AirbricksDatabricksHook` everywhere, its trigger too."""

    def defer(self, *, trigger: Any, **kwargs: Any) -> Any:
        # The provider constructs its DatabricksExecutionTrigger inline; swap in the same trigger whose
        # hook honours Retry-After (identical arguments and events).
        if type(trigger) is DatabricksExecutionTrigger:
            trigger = AirbricksDatabricksExecutionTrigger(**trigger.serialize()[1])
        return super().defer(trigger=trigger, **kwargs)  # type: ignore[misc]


class _IdempotentRunMixin(_ProviderRunMixin):
    """Derive ``idempotency_token`` from the DAG run so a retried task attaches to the run it started.

    The token covers dag_id, run_id, task_id, map_index and the DAG run's ``clear_number``: automatic
    retries reuse the token (no duplicate run, even when the first ``run-now`` response was lost), while
    clearing the task on purpose starts a fresh run.
    """

    idempotency_token: str | None
    derive_idempotency_token: bool
    task_id: str

    def _ensure_idempotency_token(self, context: Context, salt: str) -> None:
        if self.idempotency_token or not self.derive_idempotency_token:
            return
        self.idempotency_token = token_for_context(context, salt=f"{salt}|clear={_clear_number(context)}")
        self.log.info("Idempotency token for this task of this DAG run: %s", self.idempotency_token)  # type: ignore[attr-defined]

    def poll_until_complete(self, external_id: Any, context: Context) -> None:
        # The provider's failure message names the failed tasks' errors but not the run page: add it.
        try:
            super().poll_until_complete(external_id, context)  # type: ignore[misc]
        except AirflowException as err:
            url = self._hook.get_run_page_url(int(external_id))  # type: ignore[attr-defined]
            raise AirflowException(f"{err}. Run page: {url}") from err

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        try:
            return super().execute_complete(context, event)  # type: ignore[misc]
        except AirflowException as err:
            raise AirflowException(_run_failure_message(event or {}, err)) from err


def _run_failure_message(event: dict[str, Any], error: Exception) -> str:
    """One line naming the run, its final state, each failed task's error and the run page URL."""
    try:
        state = RunState.from_json(event["run_state"])
        outcome = f"ended {state.life_cycle_state}/{state.result_state or '-'}: {state.state_message}"
    except (KeyError, TypeError, ValueError):
        return f"{error} (run page: {event.get('run_page_url', 'unknown')})"
    errors = "; ".join(f"{e.get('task_key')}: {e.get('error')}" for e in event.get("errors") or [])
    return (
        f"Databricks run {event.get('run_id')} {outcome}. "
        f"Task errors: {errors or 'none reported'}. Run page: {event.get('run_page_url', 'unknown')}"
    )


class AirbricksDatabricksRunNowOperator(_IdempotentRunMixin, DatabricksRunNowOperator):
    """:class:`~airflow.providers.databricks.operators.databricks.DatabricksRunNowOperator`, idempotent per
    DAG run, with ``Retry-After`` aware retries.

    All arguments of the provider's operator are accepted (``job_name``, ``job_parameters``,
    ``deferrable``, ...), plus the following. Unlike the provider's operator it returns the run id
    (XCom ``return_value``), so a downstream mapped task can expand over it.

    **Repair.** Each try records its run id in the task's state (Airflow's ``task_state_store``, which
    survives retries and clears within the DAG run). A later try of the task, an automatic retry or a
    clear of the failed task from the UI/CLI/API, takes that run over: it follows it if it is still going,
    and if it failed it **repairs** it (``runs/repair`` with the latest repair id: only the failed tasks
    and their downstream tasks re-run, in the same run, with this try's job parameters) instead of
    starting the whole job again. A run that succeeded is not reused by a clear: clearing a successful task
    processes the data again in a fresh run.

    :param derive_idempotency_token: when no ``idempotency_token`` is given, derive one from dag_id, run_id,
        task_id, map_index and the DAG run's clear number (64 hex characters). A retry whose first
        ``run-now`` response was lost then gets the run that call started instead of a duplicate.
    """

    def __init__(self, *, derive_idempotency_token: bool = True, **kwargs: Any) -> None:
        # The provider's own durable mode (Airflow 3.3 task state) reconnects to an active run but re-submits
        # a failed one and silently reuses a succeeded one even after a clear; _start_run does all three
        # the way described above, for the deferrable and the polling path alike.
        kwargs.setdefault("durable", False)
        super().__init__(**kwargs)
        self.derive_idempotency_token = derive_idempotency_token

    def _start_run(self, context: Context) -> int:
        """Start the job run, or take over the one an earlier try of this task left: follow it if it is
        still going, repair it (failed tasks and their downstream only) if it failed."""
        json = self._prepare_run_now_json(context)
        store = context.get("task_state_store")
        earlier = store.get(TASK_STATE_RUN_KEY) if store is not None else None
        if earlier is not None and self._resume(int(earlier), json, earlier_try=True):
            return self.run_id
        self.run_id = self._hook.run_now(json)
        self.log.info("Run-now returned run_id %s", self.run_id)
        if store is not None:
            store.set(TASK_STATE_RUN_KEY, self.run_id)
        # The token hands a retry the run its first try started (also when that try could not record it).
        # On a first try a run that is already failed just failed on its own and is reported as such.
        if _try_number(context) > 1 and self.run_id != earlier:
            self._resume(self.run_id, json, earlier_try=False)
        return self.run_id

    def _resume(self, run_id: int, json: dict[str, Any], *, earlier_try: bool) -> bool:
        """Take over ``run_id``: True when this try follows it (still active, or repaired now).

        A succeeded run recorded by an earlier try is not reused (False): the task was cleared on purpose to
        process the data again, so a fresh run starts.
        """
        try:
            run = get_run_with_history(self._hook, run_id)
        except AirflowException as err:
            if earlier_try:
                self.log.warning(
                    "Run %s of an earlier try is unreadable (%s); starting a new run", run_id, err
                )
                return False
            raise
        state = run_state(run)
        self.run_id = run_id
        if not state.is_terminal:
            self.log.info("Following run %s, still %s", run_id, state.life_cycle_state)
            return True
        if state.is_successful:
            return not earlier_try
        self.log.warning(
            "Run %s (started by an earlier try of this task) ended %s/%s: %s. Repairing it: only its failed "
            "tasks and their downstream tasks re-run",
            run_id,
            state.life_cycle_state,
            state.result_state,
            state.state_message,
        )
        repair_failed_tasks(self._hook, run, job_parameters=json.get("job_parameters"), log=self.log)
        return True

    def execute(self, context: Context) -> Any:
        self._ensure_idempotency_token(context, salt=str(self.job_name or self.job_id or ""))
        if self.deferrable:
            self._start_run(context)
            self._defer_until_terminal(context)
            return self.run_id
        return self.execute_resumable(context)

    def _defer_until_terminal(self, context: Context) -> None:
        """The provider's deferrable hand-off, for the run this try follows: push the job id, run id and run
        page to XCom, then defer to the trigger, or, when the run has already finished, complete at once
        (raises on failure)."""
        run_page_url = self._hook.get_run_page_url(self.run_id)
        if self.do_xcom_push:
            ti = context["ti"]
            ti.xcom_push(key=XCOM_JOB_ID_KEY, value=self._hook.get_job_id(self.run_id))
            ti.xcom_push(key=XCOM_RUN_ID_KEY, value=self.run_id)
            ti.xcom_push(key=XCOM_RUN_PAGE_URL_KEY, value=run_page_url)
        self.log.info("Run %s: status, Spark UI and logs at %s", self.run_id, run_page_url)
        if not self.wait_for_termination:
            return
        run = self._hook.get_run(self.run_id)
        state = RunState(**run["state"])
        if state.is_terminal:
            event = {
                "run_id": self.run_id,
                "run_page_url": run_page_url,
                "run_state": state.to_json(),
                "repair_run": self.repair_run,
                "errors": extract_failed_task_errors(self._hook, run, state),
            }
            self.execute_complete(context, event)
            return
        self.defer(
            trigger=AirbricksDatabricksExecutionTrigger(
                run_id=self.run_id,
                databricks_conn_id=self.databricks_conn_id,
                polling_period_seconds=self.polling_period_seconds,
                retry_limit=self.databricks_retry_limit,
                retry_delay=self.databricks_retry_delay,
                retry_args=self.databricks_retry_args,
                run_page_url=run_page_url,
                repair_run=self.repair_run,
            ),
            method_name=DEFER_METHOD_NAME,
        )

    def submit_job(self, context: Context) -> int:
        return self._start_run(context)

    def get_job_result(self, external_id: Any, context: Context) -> int:
        super().get_job_result(external_id, context)
        return int(external_id)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> int | None:
        super().execute_complete(context, event)
        # The run id as return value lets downstream tasks map over it (mapping needs return_value).
        return int(event["run_id"]) if event and event.get("run_id") is not None else self.run_id


class AirbricksDatabricksSubmitRunOperator(_IdempotentRunMixin, DatabricksSubmitRunOperator):
    """:class:`~airflow.providers.databricks.operators.databricks.DatabricksSubmitRunOperator` (one-time run,
    e.g. on an existing all-purpose cluster), idempotent per DAG run, with ``Retry-After`` aware retries.

    :param derive_idempotency_token: see :class:`AirbricksDatabricksRunNowOperator`.
    """

    def __init__(self, *, derive_idempotency_token: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.derive_idempotency_token = derive_idempotency_token

    def execute(self, context: Context) -> Any:
        self._ensure_idempotency_token(context, salt="submit")
        return super().execute(context)


class DatabricksRestOperator(DatabricksBaseOperator):
    """Call any Databricks REST endpoint; the decoded JSON response goes to XCom.

    For endpoints the provider's hook has no method for (or cannot call: ``HEAD``/``PUT``, query string and
    body together). Authentication, retries (incl. ``Retry-After``) and error messages are the hook's.

    :param endpoint: path after ``/api/``, e.g. ``2.1/clusters/list`` (templated).
    :param method: HTTP method, default ``GET`` (templated).
    :param query: query-string parameters (templated).
    :param body: JSON body (templated).
    :param expected_statuses: non-2xx statuses to accept instead of failing (e.g. ``[404]``).
    The connection and retry arguments are those of :class:`DatabricksBaseOperator`.

    :return: ``{"status": ..., "headers": {...}}`` for ``HEAD``, otherwise the JSON body (``{}`` if empty).
    """

    template_fields: Sequence[str] = ("method", "endpoint", "query", "body", "databricks_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"query": "json", "body": "json"}
    ui_color = "#1CB1C2"

    def __init__(
        self,
        *,
        endpoint: str,
        method: str = "GET",
        query: dict[str, Any] | None = None,
        body: Any = None,
        expected_statuses: Sequence[int] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.method = method
        self.query = query
        self.body = body
        self.expected_statuses = frozenset(expected_statuses)

    def execute(self, context: Context) -> Any:
        body = json.loads(self.body) if isinstance(self.body, str) and self.body.strip() else self.body
        response = self._hook.call(
            self.method,
            self.endpoint,
            query=self.query,
            body=body or None,
            ok_statuses=self.expected_statuses,
        )
        self.log.info("%s %s -> HTTP %s", self.method.upper(), self.endpoint, response.status_code)
        if self.method.upper() == "HEAD":
            return {"status": response.status_code, "headers": dict(response.headers)}
        if not response.content:
            return {}
        try:
            return response.json()
        except ValueError:
            return {"status": response.status_code, "text": response.text}


class DatabricksCreateClusterOperator(DatabricksBaseOperator):
    """Create an all-purpose cluster, wait until it is ``RUNNING`` and push its ``cluster_id`` to XCom.

    Wire it as a setup task and :class:`DatabricksDeleteClusterOperator` as its teardown::

        create = DatabricksCreateClusterOperator(task_id="create_cluster", cluster_spec={...})
        delete = DatabricksDeleteClusterOperator(task_id="delete_cluster", setup_task_id="create_cluster")
        create >> work_tasks >> delete.as_teardown(setups=create)

    The id is pushed to XCom (key ``cluster_id``) as soon as the cluster exists, before waiting, so the
    teardown can delete a cluster that then fails to start. The cluster is tagged with the DAG/run/task
    ids, which lets a retry reuse it and the teardown find it even without the XCom.

    :param cluster_spec: body of ``2.1/clusters/create`` (``spark_version``, ``node_type_id``,
        ``num_workers``/``autoscale``, ...) (templated).
    :param cluster_name: name of the cluster; default ``airflow-<dag_id>-<task_id>`` (templated).
    :param autotermination_minutes: used when the spec sets none: a safety net that stops the cluster even
        if Airflow itself goes away before the teardown runs.
    :param timeout_seconds: how long to wait for ``RUNNING`` before failing.
    :param polling_period_seconds: seconds between two ``clusters/get`` polls.

    The connection and retry arguments are those of :class:`DatabricksBaseOperator`.
    """

    template_fields: Sequence[str] = ("cluster_spec", "cluster_name", "databricks_conn_id")
    template_fields_renderers: ClassVar[dict[str, str]] = {"cluster_spec": "json"}
    ui_color = "#1CB1C2"

    def __init__(
        self,
        *,
        cluster_spec: dict[str, Any],
        cluster_name: str | None = None,
        autotermination_minutes: int = 60,
        timeout_seconds: float = 1800,
        polling_period_seconds: float = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cluster_spec = cluster_spec
        self.cluster_name = cluster_name
        self.autotermination_minutes = autotermination_minutes
        self.timeout_seconds = timeout_seconds
        self.polling_period_seconds = polling_period_seconds
        self.cluster_id: str | None = None

    def _tags(self, context: Context) -> dict[str, str]:
        ti = context["ti"]
        return {TAG_DAG_ID: ti.dag_id, TAG_RUN_ID: ti.run_id, TAG_TASK_ID: ti.task_id}

    def _spec(self, context: Context) -> dict[str, Any]:
        if not isinstance(self.cluster_spec, dict):
            raise AirflowException(f"cluster_spec must be a mapping, got {type(self.cluster_spec).__name__}")
        spec = dict(self.cluster_spec)
        missing = [key for key in ("spark_version",) if not spec.get(key)]
        if missing:
            raise AirflowException(f"cluster_spec is missing {missing} (needed by 2.1/clusters/create)")
        spec.setdefault("cluster_name", self.cluster_name or f"airflow-{self.dag_id}-{self.task_id}")
        spec.setdefault("autotermination_minutes", self.autotermination_minutes)
        spec["custom_tags"] = {**(spec.get("custom_tags") or {}), **self._tags(context)}
        return spec

    def _existing_cluster(self, tags: dict[str, str]) -> str | None:
        """A live cluster made by an earlier attempt (clusters/create takes no idempotency token)."""
        for cluster in find_tagged_clusters(self._hook, tags):
            if cluster.get("state") not in CLUSTER_FAILED_STATES:
                return cluster["cluster_id"]
        return None

    def execute(self, context: Context) -> str:
        spec = self._spec(context)
        self.cluster_id = self._existing_cluster(self._tags(context))
        if self.cluster_id:
            self.log.info("Reusing cluster %s created by an earlier attempt of this task", self.cluster_id)
        else:
            self.cluster_id = self._hook.create_cluster(spec)
            self.log.info("Created cluster %s (%s)", self.cluster_id, spec["cluster_name"])
        context["ti"].xcom_push(key=XCOM_CLUSTER_ID_KEY, value=self.cluster_id)
        self._wait_until_running(self.cluster_id)
        return self.cluster_id

    def _wait_until_running(self, cluster_id: str) -> None:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            cluster = self._hook.get_cluster(cluster_id)
            if cluster is None:
                raise AirflowException(
                    f"Cluster {cluster_id} disappeared while starting (deleted by someone?)"
                )
            state = cluster.get("state", "UNKNOWN")
            if state == "RUNNING":
                self.log.info("Cluster %s is RUNNING", cluster_id)
                return
            if state in CLUSTER_FAILED_STATES:
                reason = cluster.get("termination_reason") or {}
                raise AirflowException(
                    f"Cluster {cluster_id} failed to start: state {state}, "
                    f"reason {reason.get('code', 'UNKNOWN')} ({reason.get('type', '')}) "
                    f"{json.dumps(reason.get('parameters') or {})}: {cluster.get('state_message', '')}"
                )
            if time.monotonic() >= deadline:
                raise AirflowException(
                    f"Cluster {cluster_id} not RUNNING after {self.timeout_seconds} s (state {state}: "
                    f"{cluster.get('state_message', '')})"
                )
            self.log.info(
                "Cluster %s is %s; checking again in %s s", cluster_id, state, self.polling_period_seconds
            )
            time.sleep(self.polling_period_seconds)

    def on_kill(self) -> None:
        if self.cluster_id:
            self.log.info("Task killed: terminating cluster %s", self.cluster_id)
            self._hook.terminate_cluster_by_id(self.cluster_id)


def find_tagged_clusters(hook: AirbricksDatabricksHook, tags: dict[str, str]) -> list[dict[str, Any]]:
    """Clusters whose ``custom_tags`` contain all of ``tags`` (``2.1/clusters/list``, every page)."""
    found: list[dict[str, Any]] = []
    page_token: str | None = None
    while True:
        query: dict[str, Any] = {"page_size": 100}
        if page_token:
            query["page_token"] = page_token
        page = hook.call_json("GET", "2.1/clusters/list", query=query)
        for cluster in page.get("clusters", []):
            cluster_tags = cluster.get("custom_tags") or {}
            if all(cluster_tags.get(key) == value for key, value in tags.items()):
                found.append(cluster)
        page_token = page.get("next_page_token")
        if not page_token:
            return found


class DatabricksDeleteClusterOperator(DatabricksBaseOperator):
    """Terminate and permanently delete an all-purpose cluster; a cluster already gone is not an error.

    Meant as the teardown of :class:`DatabricksCreateClusterOperator` (``.as_teardown(setups=create)``),
    so it runs whatever the work tasks did. It deletes ``cluster_id`` when given and, with
    ``setup_task_id``, every cluster that task created in this DAG run (found by tag), which covers a
    setup that died before it could push the id.

    :param cluster_id: id to delete (templated); empty/``None`` means "only what the tags find".
    :param setup_task_id: task id of the creating task, to find its clusters by tag.
    :param databricks_retry_limit: attempts per HTTP call on transient errors; 5 here, so a teardown rides
        out a short outage. The other connection and retry arguments are those of
        :class:`DatabricksBaseOperator`.
    :return: the ids of the clusters deleted.
    """

    template_fields: Sequence[str] = ("cluster_id", "databricks_conn_id")
    ui_color = "#F2B0A6"

    def __init__(
        self,
        *,
        cluster_id: str | None = None,
        setup_task_id: str | None = None,
        databricks_retry_limit: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(databricks_retry_limit=databricks_retry_limit, **kwargs)
        if not cluster_id and not setup_task_id:
            raise ValueError("DatabricksDeleteClusterOperator needs cluster_id or setup_task_id")
        self.cluster_id = cluster_id
        self.setup_task_id = setup_task_id

    def as_teardown(self, *args: Any, **kwargs: Any) -> DatabricksDeleteClusterOperator:
        """Airflow's ``as_teardown`` with trigger rule ``all_done`` instead of ``all_done_setup_success``.

        A cluster that fails to start makes the setup task fail, yet the (terminated) cluster exists and
        must still be deleted: the default teardown rule would skip exactly that case.
        """
        super().as_teardown(*args, **kwargs)
        self.trigger_rule = TriggerRule.ALL_DONE
        return self

    def execute(self, context: Context) -> list[str]:
        ids: list[str] = []
        if self.cluster_id and str(self.cluster_id) not in ("None", ""):
            ids.append(str(self.cluster_id))
        if self.setup_task_id:
            ti = context["ti"]
            pushed = ti.xcom_pull(task_ids=self.setup_task_id, key=XCOM_CLUSTER_ID_KEY)
            if pushed and pushed not in ids:
                ids.append(str(pushed))
            tags = {TAG_DAG_ID: ti.dag_id, TAG_RUN_ID: ti.run_id, TAG_TASK_ID: self.setup_task_id}
            ids.extend(
                c["cluster_id"] for c in find_tagged_clusters(self._hook, tags) if c["cluster_id"] not in ids
            )
        if not ids:
            self.log.info("No cluster to delete: the setup task created none")
        for cluster_id in ids:
            terminated = self._hook.terminate_cluster_by_id(cluster_id)
            deleted = self._hook.permanent_delete_cluster(cluster_id)
            if terminated or deleted:
                self.log.info("Cluster %s terminated and permanently deleted", cluster_id)
            else:
                self.log.info("Cluster %s was already gone", cluster_id)
        return ids


class DatabricksRunResultOperator(DatabricksBaseOperator):
    """Return (to XCom) the ``dbutils.notebook.exit`` value of a finished run, or of one task of a job run.

    ``runs/get`` -> the task's own run id (by ``task_key``) -> ``runs/get-output``. Fails clearly when the
    run has not finished or did not succeed: the message carries the run page URL, the state message and
    the notebook's error.

    :param run_id: the run id (templated), e.g. ``"{{ ti.xcom_pull(task_ids='run_job', key='run_id') }}"``.
    :param task_key: task whose output to fetch in a multi-task run (templated); optional for one-task runs.
    :param parse_json: decode the exit value as JSON when it is JSON (default ``True``).

    The connection and retry arguments are those of :class:`DatabricksBaseOperator`.
    """

    template_fields: Sequence[str] = ("run_id", "task_key", "databricks_conn_id")
    ui_color = "#1CB1C2"

    def __init__(
        self,
        *,
        run_id: int | str,
        task_key: str | None = None,
        parse_json: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.task_key = task_key
        self.parse_json = parse_json

    def _target_task(self, run: dict[str, Any]) -> dict[str, Any]:
        tasks = run.get("tasks") or []
        if self.task_key:
            attempts = [t for t in tasks if t.get("task_key") == self.task_key]
            if not attempts:
                keys = sorted({t.get("task_key", "?") for t in tasks})
                raise AirflowException(
                    f"Run {run['run_id']} has no task {self.task_key!r}; its tasks are {keys} "
                    f"({run.get('run_page_url', '')})"
                )
            return max(attempts, key=lambda t: (t.get("attempt_number", 0), t.get("start_time", 0)))
        if len({t.get("task_key") for t in tasks}) > 1:
            keys = sorted({t.get("task_key", "?") for t in tasks})
            raise AirflowException(
                f"Run {run['run_id']} has several tasks {keys}: pass task_key to say whose output to fetch"
            )
        return tasks[-1] if tasks else run

    def execute(self, context: Context) -> Any:
        if self.run_id in (None, "", "None"):
            raise AirflowException("run_id is empty: the upstream task pushed no Databricks run id")
        run = self._hook.get_run(int(self.run_id))
        run_url = run.get("run_page_url", "")
        target = self._target_task(run)
        state = target.get("state") or run.get("state") or {}
        what = f"task {self.task_key!r} of run {run['run_id']}" if self.task_key else f"run {run['run_id']}"
        lifecycle = state.get("life_cycle_state", "UNKNOWN")
        if lifecycle not in ("TERMINATED", "SKIPPED", "INTERNAL_ERROR"):
            raise AirflowException(
                f"{what} has not finished (state {lifecycle}); no result yet. See {run_url}"
            )
        output = self._hook.get_run_output(int(target.get("run_id", run["run_id"])))
        result_state = state.get("result_state", "")
        metrics.record_databricks_run(
            dag_id=self.dag_id,
            task_id=self.task_id,
            result_state=result_state or lifecycle,
            duration=(target.get("run_duration") or run.get("run_duration") or 0) / 1000,
            job_name=run.get("run_name"),
        )
        if result_state != "SUCCESS":
            trace = (output.get("error_trace") or "")[-MAX_ERROR_TRACE_CHARS:]
            raise AirflowException(
                f"{what} ended {lifecycle}/{result_state or 'no result'}: {state.get('state_message', '')}. "
                f"Notebook error: {output.get('error') or 'none reported'}. Run page: {run_url}"
                + (f"\nError trace (tail):\n{trace}" if trace else "")
            )
        notebook_output = output.get("notebook_output") or {}
        if notebook_output.get("truncated"):
            self.log.warning("The exit value of %s was truncated by Databricks (> 5 MB?)", what)
        result = notebook_output.get("result")
        if result is None:
            self.log.warning("%s succeeded but its notebook called no dbutils.notebook.exit(...)", what)
            return None
        self.log.info("Result of %s (%s): %s", what, run_url, result[:1000])
        if self.parse_json:
            try:
                return json.loads(result)
            except ValueError:
                return result
        return result
