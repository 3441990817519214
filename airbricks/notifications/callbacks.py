"""Failure and recovery callbacks for DAGs and tasks, rate-limited per DAG across all worker pods.

The one home of the project's Airflow callbacks. :func:`on_task_failure` is the default task failure callback
(``task.on_failure_callback`` in ``sources.yaml`` names it by dotted path,
``airbricks.notifications.on_task_failure``): it logs one clear line, then notifies like
:func:`notify_task_failure`. Wire the others with one line each (they take the Airflow callback ``context``
and nothing else)::

    default_args = {
        "on_failure_callback": on_task_failure,
        "on_success_callback": notify_task_recovery,  # sends only when a retry succeeded
    }
    DAG(..., on_failure_callback=notify_dag_failure, on_success_callback=notify_dag_recovery)

Configuration (environment, read when a callback runs, never at import):

``AIRBRICKS_ALERTS_WEBHOOK_CONN_ID``  HTTP connection of the generic webhook (``airbricks_alerts_webhook``)
``AIRBRICKS_ALERTS_SLACK_CONN_ID``    Slack connection, webhook or API token (``airbricks_alerts_slack``)
``AIRBRICKS_NOTIFY_STATE_URL``        rate-limiter state: ``s3://bucket/prefix`` or ``file:///dir``
                                      (default ``s3://$AIRBRICKS_RAW_BUCKET/_airbricks/notifications``)
``AIRBRICKS_NOTIFY_BURST``            notifications a DAG may send at once (3)
``AIRBRICKS_NOTIFY_REFILL_SECONDS``   one more notification allowed every N seconds (600)

A callback never raises: a broken notification channel must not change a task's outcome.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from typing import Any

from airbricks.notifications import channels
from airbricks.notifications import payload as payloads
from airbricks.notifications.ratelimit import Decision, TokenBucket, store_from_url

log = logging.getLogger(__name__)
# The one-line failure summaries have their own logger, so they can be routed or filtered on their own.
failure_log = logging.getLogger("airbricks.failures")

DEFAULT_RAW_BUCKET = "airbricks-raw"
_DAG_FAILING_FLAG = "dag_failing"


@dataclasses.dataclass(frozen=True)
class NotificationSettings:
    """Where notifications go and how fast; see the module docstring for the environment variables."""

    webhook_conn_id: str = channels.DEFAULT_WEBHOOK_CONN_ID
    slack_conn_id: str = channels.DEFAULT_SLACK_CONN_ID
    state_url: str = f"s3://{DEFAULT_RAW_BUCKET}/_airbricks/notifications"
    burst: int = 3
    refill_seconds: float = 600.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> NotificationSettings:
        env = os.environ if environ is None else environ
        bucket = env.get("AIRBRICKS_RAW_BUCKET") or DEFAULT_RAW_BUCKET
        try:
            burst = int(env.get("AIRBRICKS_NOTIFY_BURST", "3"))
            refill = float(env.get("AIRBRICKS_NOTIFY_REFILL_SECONDS", "600"))
        except ValueError as error:
            raise ValueError(
                f"AIRBRICKS_NOTIFY_BURST / AIRBRICKS_NOTIFY_REFILL_SECONDS must be numbers: {error}"
            ) from error
        return cls(
            webhook_conn_id=env.get("AIRBRICKS_ALERTS_WEBHOOK_CONN_ID", channels.DEFAULT_WEBHOOK_CONN_ID),
            slack_conn_id=env.get("AIRBRICKS_ALERTS_SLACK_CONN_ID", channels.DEFAULT_SLACK_CONN_ID),
            state_url=env.get("AIRBRICKS_NOTIFY_STATE_URL", f"s3://{bucket}/_airbricks/notifications"),
            burst=burst,
            refill_seconds=refill,
        )

    def bucket(self) -> TokenBucket:
        return TokenBucket(
            store_from_url(self.state_url), burst=self.burst, refill_seconds=self.refill_seconds
        )


def dispatch(message: dict[str, Any], settings: NotificationSettings | None = None) -> list[str]:
    """Send an already built (and scrubbed) payload to every configured channel; return those that took it."""
    from airbricks.metrics import record_notification

    settings = settings or NotificationSettings.from_env()
    delivered = []
    for name, send, conn_id in (
        ("webhook", channels.send_webhook, settings.webhook_conn_id),
        ("slack", channels.send_slack, settings.slack_conn_id),
    ):
        try:
            if send(conn_id, message):
                delivered.append(name)
                record_notification(channel=name, kind=message["event"], sent=True)
        except Exception:
            log.exception("Sending %s notification through %s (%s) failed", message["event"], name, conn_id)
    if not delivered:
        log.warning(
            "No notification channel delivered %s for DAG %s: configure connection %s or %s",
            message["event"],
            message.get("dag_id"),
            settings.webhook_conn_id,
            settings.slack_conn_id,
        )
    return delivered


def _attach_summary(message: dict[str, Any], decision: Decision) -> dict[str, Any]:
    if not decision.suppressed_count or decision.suppressed_since is None:
        return message
    summary = payloads.summary_payload(
        message["dag_id"], decision.suppressed, decision.suppressed_count, decision.suppressed_since
    )
    message["suppressed"] = summary["suppressed"]
    message["text"] = f"{message['text']}\n{summary['text']}"
    return message


def _limited(key: str, event: dict[str, Any], settings: NotificationSettings) -> Decision:
    try:
        return settings.bucket().acquire(key, event)
    except Exception:
        # Fail open: a duplicate alert is better than a lost one when the state store is unreachable.
        log.warning("Notification rate limiter unavailable; sending without limit", exc_info=True)
        return Decision(send=True)


def _task_event(context: Mapping[str, Any], event: str) -> list[str]:
    settings = NotificationSettings.from_env()
    message = payloads.task_payload(context, event)
    brief = {k: message.get(k) for k in ("event", "task_id", "run_id", "try_number", "log_url")}
    decision = _limited(message["dag_id"], brief, settings)
    if not decision.send:
        from airbricks.metrics import record_notification

        record_notification(channel="all", kind=event, sent=False)
        log.info("Notification %s for %s rate-limited; it will be summarised", event, message["dag_id"])
        return []
    return dispatch(_attach_summary(message, decision), settings)


def notify_task_failure(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` for tasks: one message per failure, rate-limited per DAG."""
    try:
        _task_event(context, "task_failure")
    except Exception:
        log.exception("Task failure notification could not be built or sent")


def _one_line(value: object, limit: int = 500) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure_summary(context: Any) -> str:
    """``dag=… task=… run=… try=n interval=start..end error=Type: message`` from a task context."""
    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    try_number = getattr(ti, "try_number", "?")
    run_id = context.get("run_id") or getattr(ti, "run_id", "?")
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    interval = f"{start.isoformat() if start else '?'}..{end.isoformat() if end else '?'}"
    exc = context.get("exception")
    error = f"{type(exc).__name__}: {_one_line(exc)}" if exc is not None else "unknown"
    return f"dag={dag_id} task={task_id} run={run_id} try={try_number} interval={interval} error={error}"


def on_task_failure(context: Mapping[str, Any]) -> None:
    """The default task ``on_failure_callback``: log a one-line failure summary, then
    :func:`notify_task_failure` (webhook/Slack, rate-limited).

    Never raises: a broken callback must not mask the task's error.
    """
    try:
        failure_log.error("Task failed: %s", failure_summary(context))
    except Exception:  # pragma: no cover - defensive
        failure_log.exception("Task failed, and building the failure summary failed too")
    notify_task_failure(context)


def notify_task_recovery(context: Mapping[str, Any]) -> None:
    """``on_success_callback`` for tasks: a message only when the task succeeded after a failed try."""
    try:
        if int(getattr(context["ti"], "try_number", 1) or 1) > 1:
            _task_event(context, "task_recovery")
    except Exception:
        log.exception("Task recovery notification could not be built or sent")


def notify_dag_failure(context: Mapping[str, Any]) -> None:
    """DAG ``on_failure_callback``: always sent (one per run) and carries the summary of held-back alerts."""
    try:
        settings = NotificationSettings.from_env()
        message = payloads.dag_payload(context, "dag_failure")
        decision = Decision(send=True)
        try:
            bucket = settings.bucket()
            decision = bucket.drain(message["dag_id"])
            bucket.swap_flag(message["dag_id"], _DAG_FAILING_FLAG, True)
        except Exception:
            log.warning("Notification state unavailable; DAG failure sent without summary", exc_info=True)
        dispatch(_attach_summary(message, decision), settings)
    except Exception:
        log.exception("DAG failure notification could not be built or sent")


def notify_dag_recovery(context: Mapping[str, Any]) -> None:
    """DAG ``on_success_callback``: a message only for the first success after a failed run."""
    try:
        settings = NotificationSettings.from_env()
        dag_id = context["dag_run"].dag_id
        if settings.bucket().swap_flag(dag_id, _DAG_FAILING_FLAG, False):
            dispatch(payloads.dag_payload(context, "dag_recovery"), settings)
    except Exception:
        log.exception("DAG recovery notification could not be built or sent")
