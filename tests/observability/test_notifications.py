"""Failure/recovery notifications over real HTTP to a local receiver: payload, secrets, Slack, limits."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import multiprocessing
import secrets
from dataclasses import dataclass, field
from typing import Any

import pytest

from airbricks.notifications import (
    NotificationSettings,
    freshness_deadline,
    notify_dag_failure,
    notify_dag_recovery,
    notify_task_failure,
    notify_task_recovery,
)
from airbricks.notifications.ratelimit import FileStateStore, S3StateStore, TokenBucket, store_from_url

WEBHOOK_CONN = "AIRFLOW_CONN_AIRBRICKS_ALERTS_WEBHOOK"
SLACK_CONN = "AIRFLOW_CONN_AIRBRICKS_ALERTS_SLACK"


@dataclass
class FakeTask:
    task_type: str = "DatabricksSubmitRunOperator"


@dataclass
class TaskInstanceStandIn:
    """The attributes of Airflow's RuntimeTaskInstance a callback reads (no scheduler runs in these tests)."""

    dag_id: str = "databricks_gold"
    task_id: str = "silver"
    run_id: str = "scheduled__2026-11-20T00:00:00+00:00"
    try_number: int = 1
    max_tries: int = 2
    map_index: int = -1
    log_url: str = "http://airflow.local/dags/databricks_gold/runs/r/tasks/silver?try_number=1"
    task: FakeTask = field(default_factory=FakeTask)
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int | None = None) -> Any:
        assert task_ids == self.task_id
        if self.map_index >= 0:
            assert map_indexes == self.map_index, "a mapped task must pull its own map index"
        return self.xcoms.get(key)


@dataclass
class DagRunStandIn:
    dag_id: str = "databricks_gold"
    run_id: str = "scheduled__2026-11-20T00:00:00+00:00"
    logical_date: str = "2026-11-20T00:00:00+00:00"


def _context(ti: TaskInstanceStandIn, exception: BaseException | None = None) -> dict[str, Any]:
    return {"ti": ti, "task_instance": ti, "dag_run": DagRunStandIn(dag_id=ti.dag_id), "exception": exception}


def _token() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture
def webhook_password(webhook_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> str:
    """Webhook connection to the local receiver, file-based limiter state, no Slack; returns the password."""
    password = _token()
    monkeypatch.setenv(
        WEBHOOK_CONN,
        json.dumps(
            {
                "conn_type": "http",
                "host": f"{webhook_server.url}/hooks/airflow",
                "login": "alertbot",
                "password": password,
            }
        ),
    )
    monkeypatch.delenv(SLACK_CONN, raising=False)
    monkeypatch.setenv("AIRBRICKS_NOTIFY_STATE_URL", f"file://{tmp_path}/state")
    monkeypatch.setenv("AIRBRICKS_NOTIFY_BURST", "3")
    monkeypatch.setenv("AIRBRICKS_NOTIFY_REFILL_SECONDS", "600")
    return password


def test_task_failure_posts_the_expected_payload(webhook_server: Any, webhook_password: str) -> None:
    run_page = "https://adb-1234.5.azuredatabricks.net/?o=1234#job/77/run/991"
    ti = TaskInstanceStandIn(try_number=2, xcoms={"run_id": 991, "run_page_url": run_page})
    error = RuntimeError(f"Task failed with state FAILED: [INTERNAL_ERROR] bad column. Run: {run_page}")

    notify_task_failure(_context(ti, error))

    (request,) = webhook_server.requests
    assert request.path == "/hooks/airflow"
    assert request.headers["Content-Type"] == "application/json"
    expected_auth = base64.b64encode(f"alertbot:{webhook_password}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected_auth}"
    body = request.json()
    assert body["event"] == "task_failure"
    assert body["severity"] == "error"
    assert (body["dag_id"], body["task_id"], body["try_number"], body["max_tries"]) == (
        "databricks_gold",
        "silver",
        2,
        2,
    )
    assert body["run_id"] == ti.run_id
    assert body["log_url"] == ti.log_url
    assert body["operator"] == "DatabricksSubmitRunOperator"
    assert body["databricks"] == {
        "run_id": 991,
        "run_page_url": run_page,
        "error": f"RuntimeError: {error}",
    }
    assert "bad column" in body["text"]
    assert run_page in body["text"]
    assert webhook_password not in request.body.decode()


def test_mapped_databricks_task_reads_its_own_map_index(webhook_server: Any, webhook_password: str) -> None:
    ti = TaskInstanceStandIn(
        task_id="run_medallion_job", map_index=3, xcoms={"run_id": 7, "run_page_url": "u"}
    )
    notify_task_failure(_context(ti, RuntimeError("FAILED")))
    body = webhook_server.requests[0].json()
    assert (body["map_index"], body["databricks"]["run_id"]) == (3, 7)


def test_non_databricks_task_has_no_databricks_block(webhook_server: Any, webhook_password: str) -> None:
    notify_task_failure(_context(TaskInstanceStandIn(task_id="fetch"), ValueError("HTTP 503 from API")))
    (request,) = webhook_server.requests
    assert request.json()["databricks"] is None
    assert request.json()["error"] == "ValueError: HTTP 503 from API"


def test_secrets_never_reach_the_payload(webhook_server: Any, webhook_password: str) -> None:
    from airflow.sdk.log import mask_secret

    masked_by_task = _token()
    in_url = _token()
    in_query = _token()
    mask_secret(masked_by_task)
    error = RuntimeError(
        f"auth failed with key {masked_by_task}; fetching https://svc:{in_url}@api.example.com/v1?"
        f"page=2&token={in_query}; webhook said {webhook_password}"
    )
    ti = TaskInstanceStandIn(
        task_id="fetch", xcoms={"run_page_url": f"https://u:{in_url}@dbx.example.com/run/1"}
    )

    notify_task_failure(_context(ti, error))

    (request,) = webhook_server.requests
    raw = request.body.decode()
    for secret in (masked_by_task, in_url, in_query, webhook_password):
        assert secret not in raw
    body = request.json()
    assert "***" in body["error"]
    assert body["databricks"]["run_page_url"] == "https://***@dbx.example.com/run/1"
    assert "page=2&token=***" in body["error"]


def test_recovery_is_sent_only_when_a_retry_succeeded(webhook_server: Any, webhook_password: str) -> None:
    notify_task_recovery(_context(TaskInstanceStandIn(try_number=1)))
    assert webhook_server.requests == []
    notify_task_recovery(_context(TaskInstanceStandIn(try_number=3)))
    (request,) = webhook_server.requests
    body = request.json()
    assert (body["event"], body["severity"], body["try_number"]) == ("task_recovery", "info", 3)
    assert body["error"] is None


def test_dag_failure_then_recovery(webhook_server: Any, webhook_password: str) -> None:
    context = {"dag_run": DagRunStandIn(), "reason": "task_failure"}
    notify_dag_recovery(context)  # never failed: nothing to say
    assert webhook_server.requests == []
    notify_dag_failure(context)
    notify_dag_recovery(context)
    notify_dag_recovery(context)  # second success in a row: silent
    events = [r.json()["event"] for r in webhook_server.requests]
    assert events == ["dag_failure", "dag_recovery"]
    assert webhook_server.requests[0].json()["error"] == "task_failure"


def test_slack_incoming_webhook_via_the_provider(
    webhook_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    webhook_token = _token()
    monkeypatch.delenv(WEBHOOK_CONN, raising=False)
    monkeypatch.setenv(
        SLACK_CONN,
        json.dumps(
            {"conn_type": "slackwebhook", "password": f"{webhook_server.url}/services/T0/B0/{webhook_token}"}
        ),
    )
    monkeypatch.setenv("AIRBRICKS_NOTIFY_STATE_URL", f"file://{tmp_path}")
    ti = TaskInstanceStandIn(xcoms={"run_page_url": "https://dbx.example.com/run/5", "run_id": 5})

    notify_task_failure(_context(ti, RuntimeError("run 5 FAILED")))

    (request,) = webhook_server.requests
    assert request.path == f"/services/T0/B0/{webhook_token}"
    body = request.json()
    assert "Task databricks_gold.silver failed" in body["text"]
    links = body["blocks"][1]["elements"][0]["text"]
    assert "<https://dbx.example.com/run/5|Databricks run>" in links
    assert "|Airflow log>" in links
    assert webhook_token not in json.dumps(body)


def test_slack_api_token_via_the_provider(
    webhook_server: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    bot_token = f"xoxb-{_token()}"
    monkeypatch.delenv(WEBHOOK_CONN, raising=False)
    monkeypatch.setenv(
        SLACK_CONN,
        json.dumps(
            {
                "conn_type": "slack",
                "password": bot_token,
                "extra": {"base_url": f"{webhook_server.url}/api/", "channel": "#data-alerts"},
            }
        ),
    )
    monkeypatch.setenv("AIRBRICKS_NOTIFY_STATE_URL", f"file://{tmp_path}")

    notify_task_failure(_context(TaskInstanceStandIn(task_id="gold"), RuntimeError("boom")))

    (request,) = webhook_server.requests
    assert request.path == "/api/chat.postMessage"
    assert request.headers["Authorization"] == f"Bearer {bot_token}"
    body = request.json()
    assert body["channel"] == "#data-alerts"
    assert "databricks_gold.gold failed" in body["text"]
    assert bot_token not in request.body.decode()


def test_no_channel_configured_logs_and_does_not_raise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(WEBHOOK_CONN, raising=False)
    monkeypatch.delenv(SLACK_CONN, raising=False)
    monkeypatch.setenv("AIRBRICKS_NOTIFY_STATE_URL", f"file://{tmp_path}")
    with caplog.at_level(logging.WARNING, logger="airbricks.notifications.callbacks"):
        notify_task_failure(_context(TaskInstanceStandIn(), RuntimeError("x")))
    assert "No notification channel delivered task_failure" in caplog.text
    assert "airbricks_alerts_webhook" in caplog.text


def test_receiver_error_is_logged_not_raised(
    webhook_server: Any, webhook_password: str, caplog: pytest.LogCaptureFixture
) -> None:
    webhook_server.status = 500
    with caplog.at_level(logging.ERROR, logger="airbricks.notifications.callbacks"):
        notify_task_failure(_context(TaskInstanceStandIn(), RuntimeError("x")))
    assert len(webhook_server.requests) >= 1
    assert "through webhook (airbricks_alerts_webhook) failed" in caplog.text


def _fail_tasks(worker: int, per_worker: int) -> None:
    for index in range(per_worker):
        ti = TaskInstanceStandIn(task_id=f"task_{worker}_{index}")
        notify_task_failure(_context(ti, RuntimeError(f"failure {worker}/{index}")))


def test_a_storm_from_many_pods_sends_one_alert_and_one_summary(
    webhook_server: Any, webhook_password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Separate processes (as worker pods are) share the bucket: 1 alert, then 1 summary of the other 23."""
    monkeypatch.setenv("AIRBRICKS_NOTIFY_BURST", "1")
    workers, per_worker = 4, 6
    # fork, like Airflow's own supervisor: spawn would re-import Airflow in every child (~10 s each here).
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_fail_tasks, args=(w, per_worker)) for w in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0

    assert [r.json()["event"] for r in webhook_server.requests] == ["task_failure"]

    notify_dag_failure({"dag_run": DagRunStandIn(), "reason": "task_failure"})

    assert len(webhook_server.requests) == 2
    summary = webhook_server.requests[1].json()
    assert summary["event"] == "dag_failure"
    held = workers * per_worker - 1
    assert summary["suppressed"]["count"] == held
    assert len(summary["suppressed"]["task_ids"]) == held
    assert f"{held} further notification(s)" in summary["text"]
    # Nothing is held any more: the next DAG failure carries no summary.
    notify_dag_failure({"dag_run": DagRunStandIn(), "reason": "again"})
    assert "suppressed" not in webhook_server.requests[2].json()


def test_held_back_alerts_ride_along_with_the_next_allowed_one(tmp_path: Any) -> None:
    now = [1_000.0]
    bucket = TokenBucket(FileStateStore(tmp_path), burst=2, refill_seconds=60, clock=lambda: now[0])
    decisions = [bucket.acquire("dag", {"task_id": f"t{i}"}) for i in range(5)]
    assert [d.send for d in decisions] == [True, True, False, False, False]
    now[0] += 61  # one token back
    decision = bucket.acquire("dag", {"task_id": "t5"})
    assert decision.send
    assert decision.suppressed_count == 3
    assert [e["task_id"] for e in decision.suppressed] == ["t2", "t3", "t4"]
    assert decision.suppressed_since == 1_000.0
    assert not bucket.acquire("dag", {"task_id": "t6"}).send
    assert bucket.acquire("other_dag", {"task_id": "x"}).send  # buckets are per DAG


def test_s3_state_store_is_a_real_compare_and_set(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Conditional writes against the S3 server: a stale writer loses, and the bucket works end to end."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(s3_server.airflow_connection()))
    bucket_name = s3_server.create_bucket(f"notify-{secrets.token_hex(4)}")
    store = store_from_url(f"s3://{bucket_name}/_airbricks/notifications")
    assert isinstance(store, S3StateStore)

    assert store.load("dag") == (None, None)
    assert store.compare_and_set("dag", None, {"n": 1})
    assert not store.compare_and_set("dag", None, {"n": 2}), "create-if-absent must fail when it exists"
    state, version = store.load("dag")
    assert state == {"n": 1}
    assert store.compare_and_set("dag", version, {"n": 2})
    assert not store.compare_and_set("dag", version, {"n": 3}), "stale ETag must lose"
    assert store.load("dag")[0] == {"n": 2}
    assert s3_server.list_keys(bucket_name, "_airbricks/") == ["_airbricks/notifications/dag.json"]

    limiter = TokenBucket(store, burst=1, refill_seconds=3600)
    sent = [limiter.acquire("storm", {"task_id": f"t{i}"}).send for i in range(10)]
    assert sent == [True] + [False] * 9
    drained = limiter.drain("storm")
    assert (drained.send, drained.suppressed_count) == (True, 9)
    assert not limiter.drain("storm").send


def test_unreachable_state_store_fails_open(
    webhook_server: Any, webhook_password: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRBRICKS_NOTIFY_STATE_URL", "s3://no-such-bucket-here/x")
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps({"conn_type": "aws", "extra": {"endpoint_url": "http://127.0.0.1:9"}}),
    )
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    notify_task_failure(_context(TaskInstanceStandIn(), RuntimeError("x")))
    assert [r.json()["event"] for r in webhook_server.requests] == ["task_failure"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AIRBRICKS_NOTIFY_BURST": "three"}, "AIRBRICKS_NOTIFY_BURST"),
        ({"AIRBRICKS_NOTIFY_BURST": "0"}, "burst must be >= 1"),
        ({"AIRBRICKS_NOTIFY_STATE_URL": "redis://x"}, "Unsupported notification state URL 'redis://x'"),
        ({"AIRBRICKS_NOTIFY_STATE_URL": "s3:///nobucket"}, "has no bucket"),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NotificationSettings.from_env(env).bucket()


def test_freshness_deadline_is_a_serialisable_deadline_alert() -> None:
    import datetime as dt

    from airflow.sdk import DAG, AsyncCallback, DeadlineAlert
    from airflow.serialization.serialized_objects import DagSerialization

    alert = freshness_deadline(6)
    assert isinstance(alert, DeadlineAlert)
    assert alert.interval == dt.timedelta(hours=6)
    assert isinstance(alert.callback, AsyncCallback)
    assert alert.callback.path == "airbricks.notifications.deadline.deadline_missed"
    assert alert.callback.kwargs == {"hours": 6}
    dag = DAG(
        "freshness_probe", schedule=None, start_date=dt.datetime(2026, 1, 1), deadline=freshness_deadline(6)
    )
    (serialised,) = DagSerialization.to_dict(dag)["dag"]["deadline"]
    assert serialised["reference"] == {"reference_type": "DagRunQueuedAtDeadline"}
    assert serialised["callback"]["__data__"]["path"] == "airbricks.notifications.deadline.deadline_missed"
    with pytest.raises(ValueError, match="hours must be > 0"):
        freshness_deadline(0)


def test_missed_deadline_runs_through_airflows_callback_trigger(
    webhook_server: Any, webhook_password: str
) -> None:
    """Airflow's own CallbackTrigger (what the triggerer runs) imports our callback and gets a POST out."""
    from airflow.triggers.callback import CallbackTrigger

    alert = freshness_deadline(2)
    context = {  # what Deadline.handle_miss puts in the callback kwargs
        "dag_run": {"dag_id": "databricks_gold", "dag_run_id": "asset_triggered__1", "state": "running"},
        "deadline": {"id": "d-1", "deadline_time": "2026-11-21T08:00:00+00:00"},
    }
    trigger = CallbackTrigger(
        callback_path=alert.callback.path, callback_kwargs={**alert.callback.kwargs, "context": context}
    )

    async def run() -> list[Any]:
        return [event.payload async for event in trigger.run()]

    events = asyncio.run(run())
    assert [e["state"] for e in events] == ["running", "success"]
    (request,) = webhook_server.requests
    body = request.json()
    assert body["event"] == "deadline_missed"
    assert (body["dag_id"], body["run_id"], body["freshness_hours"]) == (
        "databricks_gold",
        "asset_triggered__1",
        2,
    )
    assert "had not finished by 2026-11-21T08:00:00+00:00" in body["text"]
