"""Failure/recovery notifications (generic webhook, Slack) and data-freshness deadlines.

One-line wiring in a DAG file::

    from airbricks.notifications import freshness_deadline, notify_task_failure, notify_task_recovery

    DAG(..., default_args={"on_failure_callback": notify_task_failure,
                           "on_success_callback": notify_task_recovery},
        on_failure_callback=notify_dag_failure, on_success_callback=notify_dag_recovery,
        deadline=freshness_deadline(hours=6))

Importing this package does no work: hooks, boto3 and the Slack SDK are imported when a callback runs.
See ``docs/OBSERVABILITY.md``.
"""

from __future__ import annotations

from airbricks.notifications.callbacks import (
    NotificationSettings,
    dispatch,
    failure_summary,
    notify_dag_failure,
    notify_dag_recovery,
    notify_task_failure,
    notify_task_recovery,
    on_task_failure,
)
from airbricks.notifications.deadline import deadline_missed, freshness_deadline

__all__ = [
    "NotificationSettings",
    "deadline_missed",
    "dispatch",
    "failure_summary",
    "freshness_deadline",
    "notify_dag_failure",
    "notify_dag_recovery",
    "notify_task_failure",
    "notify_task_recovery",
    "on_task_failure",
]
