"""Default task callbacks, referenced by dotted path from DAG configs (e.g. ``on_task_failure``).

This is the hook point for notifications: the default logs one clear line and hands the context to
``airbricks.notifications`` (a channel is active only when its connection exists; see docs/OBSERVABILITY.md).
Another callable can replace it per source in ``sources.yaml``.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("airbricks.failures")


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


def on_task_failure(context: Any) -> None:
    """Log a one-line failure summary, then notify the configured channels (webhook/Slack, rate-limited).

    Never raises: a broken callback must not mask the task's error.
    """
    try:
        log.error("Task failed: %s", failure_summary(context))
    except Exception:  # pragma: no cover - defensive
        log.exception("Task failed, and building the failure summary failed too")
    # Imported here: DAG files import this module, and parsing them must not pay for the notifiers.
    from airbricks.notifications import notify_task_failure

    notify_task_failure(context)
