"""Retry helpers for Databricks REST calls: ``Retry-After`` aware waits and idempotency tokens.

Databricks answers rate limiting with ``429 REQUEST_LIMIT_EXCEEDED`` and overload with
``503 TEMPORARILY_UNAVAILABLE``, both usually with a ``Retry-After`` header. The provider's hook retries
those statuses with a fixed exponential back-off and ignores the header, so under a rate limit it either
hammers the workspace or gives up before the window opens. :class:`wait_retry_after` is a tenacity wait
strategy that uses the server's value when there is one and the provider's exponential back-off otherwise.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from tenacity import wait_exponential
from tenacity.wait import wait_base

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tenacity import RetryCallState

RETRY_AFTER_STATUSES = frozenset({429, 503})
IDEMPOTENCY_TOKEN_MAX_LENGTH = 64


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP-date); ``None`` if unusable."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _status_and_headers(exception: BaseException | None) -> tuple[int | None, Mapping[str, str] | None]:
    """Status and headers of a failed ``requests`` or ``aiohttp`` call, whichever raised."""
    if exception is None:
        return None, None
    response = getattr(exception, "response", None)  # requests.HTTPError
    if response is not None and hasattr(response, "status_code"):
        return response.status_code, response.headers
    status = getattr(exception, "status", None)  # aiohttp.ClientResponseError
    if isinstance(status, int):
        return status, getattr(exception, "headers", None)
    return None, None


def retry_after_from_exception(exception: BaseException | None) -> float | None:
    """The ``Retry-After`` delay carried by a 429/503 error, ``None`` for anything else."""
    status, headers = _status_and_headers(exception)
    if status not in RETRY_AFTER_STATUSES or not headers:
        return None
    return parse_retry_after(headers.get("Retry-After"))


class wait_retry_after(wait_base):  # named like tenacity's own wait strategies
    """Tenacity wait: the server's ``Retry-After`` (capped) on 429/503, else the fallback strategy.

    :param fallback: wait used when the error has no usable ``Retry-After`` (the provider's exponential).
    :param max_wait: upper bound in seconds for a server-supplied delay, so a bogus header cannot park a
        worker slot for hours; the retry budget (``retry_limit``) still applies.
    """

    def __init__(self, fallback: wait_base, max_wait: float = 300.0) -> None:
        self.fallback = fallback
        self.max_wait = max_wait

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        exception = outcome.exception() if outcome is not None and outcome.failed else None
        delay = retry_after_from_exception(exception)
        if delay is not None:
            return min(delay, self.max_wait)
        return self.fallback(retry_state)


def default_wait(retry_delay: float, retry_limit: int, max_retry_after: float = 300.0) -> wait_retry_after:
    """The provider's default back-off (``wait_exponential(min=retry_delay, max=2**retry_limit)``),
    made ``Retry-After`` aware."""
    return wait_retry_after(wait_exponential(min=retry_delay, max=2**retry_limit), max_wait=max_retry_after)


def idempotency_token(dag_id: str, run_id: str, task_id: str, map_index: int = -1, *, salt: str = "") -> str:
    """A Databricks ``idempotency_token`` (at most 64 characters) for one task of one DAG run.

    The same DAG run and task always give the same token, so a retried Airflow task (or a retried HTTP
    request whose response was lost) gets the run that was already started instead of a second one.

    :param salt: optional extra component, e.g. the job name when one task starts several jobs.
    """
    key = "\x1f".join([dag_id, run_id, task_id, str(map_index), salt])
    # sha256 hex is exactly 64 characters: within the API limit and free of characters it could reject.
    token = hashlib.sha256(key.encode("utf-8")).hexdigest()
    assert len(token) <= IDEMPOTENCY_TOKEN_MAX_LENGTH
    return token


def token_for_context(context: Mapping[str, Any], *, salt: str = "") -> str:
    """:func:`idempotency_token` of the running task instance."""
    ti = context["ti"]
    return idempotency_token(ti.dag_id, ti.run_id, ti.task_id, getattr(ti, "map_index", -1), salt=salt)
