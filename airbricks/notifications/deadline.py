"""Data-freshness deadlines: Airflow 3 ``DeadlineAlert`` with an airbricks notification as callback.

Usage in a processing DAG (one line)::

    DAG(..., deadline=freshness_deadline(hours=6))

The deadline is measured from when the DAG run was queued (``DeadlineReference.DAGRUN_QUEUED_AT``) by
default, because processing DAGs are asset-triggered and such runs have no logical date. When the run has
not finished by then, Airflow's scheduler queues the callback, the triggerer runs it (it is an
``AsyncCallback``), and Airflow itself counts ``deadline_alerts.deadline_missed`` — which the
``AirbricksFreshnessDeadlineMissed`` alert rule watches, so the miss is seen even without a channel.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import DeadlineAlert

log = logging.getLogger(__name__)


async def deadline_missed(context: dict[str, Any] | None = None, hours: float | None = None) -> None:
    """Deadline callback: send a ``deadline_missed`` notification (runs in the triggerer).

    :param context: the context Airflow passes to deadline callbacks (``dag_run`` and ``deadline``).
    :param hours: the freshness target, echoed in the payload.
    """
    from airbricks.notifications.callbacks import dispatch
    from airbricks.notifications.payload import deadline_payload

    message = deadline_payload(context or {}, hours=hours)
    # Channels use blocking hooks; keep the triggerer's event loop free while they run.
    await asyncio.to_thread(dispatch, message)


def freshness_deadline(
    hours: float,
    *,
    reference: Any = None,
    name: str | None = None,
) -> DeadlineAlert:
    """A ``DeadlineAlert`` firing when a DAG run has not finished ``hours`` after it was queued.

    :param hours: freshness target in hours (> 0).
    :param reference: a ``DeadlineReference`` to measure from instead of the queue time, e.g.
        ``DeadlineReference.DAGRUN_LOGICAL_DATE`` for scheduled DAGs.
    :param name: name shown for the deadline in Airflow.
    """
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    if hours <= 0:
        raise ValueError(f"freshness_deadline hours must be > 0, got {hours!r}")
    return DeadlineAlert(
        reference=reference if reference is not None else DeadlineReference.DAGRUN_QUEUED_AT,
        interval=dt.timedelta(hours=hours),
        callback=AsyncCallback(deadline_missed, kwargs={"hours": hours}),
        name=name or f"freshness-{hours:g}h",
    )
