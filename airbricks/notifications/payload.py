"""Build the JSON payload of a notification from an Airflow callback context, with secrets removed.

The payload is the contract with whatever receives the generic webhook (an incident tool, a chat bridge,
a Lambda); Slack messages are rendered from the same dictionary. Every string that leaves the process
goes through :func:`scrub`: Airflow's secrets masker (which knows every connection password, variable
and ``mask_secret`` value this process has seen) plus removal of credentials embedded in URLs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Final

#: Bump when a field changes meaning or disappears; receivers can branch on it.
SCHEMA_VERSION: Final = 1

#: Exception text is cut to this many characters: enough for a Databricks state message, not a whole log.
MAX_ERROR_CHARS: Final = 2000

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s:]*(?::[^/@\s]*)?)@")
# Query parameters that carry credentials in signed or tokenised URLs (S3 presigned, SAS, webhooks...).
_SECRET_QUERY = re.compile(
    r"(?P<key>[?&](?:token|access_token|api_key|apikey|key|sig|signature|password|secret|"
    r"x-amz-signature|x-amz-credential|x-amz-security-token)=)[^&#\s]+",
    re.IGNORECASE,
)

#: XCom keys the Databricks provider's operators push (``XCOM_RUN_ID_KEY`` / ``XCOM_RUN_PAGE_URL_KEY``).
DATABRICKS_XCOM_KEYS: Final = ("run_id", "run_page_url")


def scrub(value: Any) -> Any:
    """Return ``value`` with secrets masked: Airflow's secrets masker, then URL credentials removed."""
    from airflow.sdk._shared.secrets_masker import redact

    return _strip_url_credentials(redact(value))


def _strip_url_credentials(value: Any) -> Any:
    if isinstance(value, str):
        value = _URL_USERINFO.sub(r"\g<scheme>***@", value)
        return _SECRET_QUERY.sub(r"\g<key>***", value)
    if isinstance(value, Mapping):
        return {key: _strip_url_credentials(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_strip_url_credentials(item) for item in value]
    return value


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return str(value)


def _error_text(exception: BaseException | str | None) -> str | None:
    if exception is None:
        return None
    text = exception if isinstance(exception, str) else f"{type(exception).__name__}: {exception}"
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 15] + " ...[truncated]"
    return text


def _xcom(ti: Any, key: str) -> Any:
    """XCom ``key`` pushed by this very task instance, or None (a missing XCom never breaks a callback)."""
    map_index = getattr(ti, "map_index", -1)
    # A mapped task (e.g. one Databricks run per partition) must read its own map index, not all of them.
    extra = {"map_indexes": map_index} if isinstance(map_index, int) and map_index >= 0 else {}
    try:
        value = ti.xcom_pull(task_ids=ti.task_id, key=key, **extra)
    except Exception:
        return None
    if isinstance(value, list):  # several map indexes came back: none of them is this try's own
        return None
    return value


def databricks_details(ti: Any, exception: BaseException | str | None) -> dict[str, Any] | None:
    """Run id, run page URL and error of a Databricks task, from the provider's XComs; None otherwise."""
    found = {key: _xcom(ti, key) for key in DATABRICKS_XCOM_KEYS}
    if not any(found.values()):
        return None
    return {
        "run_id": found["run_id"],
        "run_page_url": found["run_page_url"],
        "error": _error_text(exception),
    }


def _envelope(event: str, severity: str) -> dict[str, Any]:
    """The fields every payload starts with: schema version, event and severity."""
    return {"schema": SCHEMA_VERSION, "event": event, "severity": severity}


def task_payload(context: Mapping[str, Any], event: str) -> dict[str, Any]:
    """Payload for a task-level event (``task_failure`` / ``task_recovery``) from a callback context."""
    ti = context["ti"]
    dag_run = context.get("dag_run")
    exception = context.get("exception")
    payload: dict[str, Any] = {
        **_envelope(event, "error" if event == "task_failure" else "info"),
        "dag_id": ti.dag_id,
        "task_id": ti.task_id,
        "map_index": getattr(ti, "map_index", -1),
        "run_id": ti.run_id,
        "try_number": ti.try_number,
        "max_tries": getattr(ti, "max_tries", None),
        "logical_date": _iso(getattr(dag_run, "logical_date", None) or context.get("logical_date")),
        "log_url": getattr(ti, "log_url", None),
        "operator": getattr(getattr(ti, "task", None), "task_type", None),
        "error": _error_text(exception) if event == "task_failure" else None,
        "databricks": databricks_details(ti, exception if event == "task_failure" else None),
    }
    payload["text"] = _task_text(payload)
    return scrub(payload)


def dag_payload(context: Mapping[str, Any], event: str) -> dict[str, Any]:
    """Payload for a DAG-run event (``dag_failure`` / ``dag_recovery``) from a DAG callback context."""
    dag_run = context["dag_run"]
    reason = context.get("reason") or context.get("exception")
    payload: dict[str, Any] = {
        **_envelope(event, "error" if event == "dag_failure" else "info"),
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "logical_date": _iso(getattr(dag_run, "logical_date", None)),
        "error": _error_text(reason) if event == "dag_failure" else None,
    }
    verb = "failed" if event == "dag_failure" else "recovered"
    payload["text"] = f"DAG {payload['dag_id']} run {payload['run_id']} {verb}"
    if payload["error"]:
        payload["text"] += f": {payload['error']}"
    return scrub(payload)


def summary_payload(
    dag_id: str, suppressed: list[dict[str, Any]], count: int, since: float
) -> dict[str, Any]:
    """One message standing for ``count`` notifications of ``dag_id`` the rate limiter held back."""
    since_iso = dt.datetime.fromtimestamp(since, tz=dt.UTC).isoformat()
    tasks = sorted({item["task_id"] for item in suppressed if item.get("task_id")})
    payload = {
        **_envelope("summary", "error"),
        "dag_id": dag_id,
        "suppressed": {"count": count, "since": since_iso, "events": suppressed, "task_ids": tasks},
        "text": (
            f"{count} further notification(s) for DAG {dag_id} since {since_iso} were rate-limited; "
            f"tasks: {', '.join(tasks) or '-'}"
        ),
    }
    return scrub(payload)


def deadline_payload(context: Mapping[str, Any], *, hours: float | None) -> dict[str, Any]:
    """Payload for a missed freshness deadline, from the simple context Airflow gives deadline callbacks."""
    dag_run = context.get("dag_run") or {}
    deadline = context.get("deadline") or {}
    payload = {
        **_envelope("deadline_missed", "warning"),
        "dag_id": dag_run.get("dag_id"),
        "run_id": dag_run.get("dag_run_id") or dag_run.get("run_id"),
        "logical_date": _iso(dag_run.get("logical_date")),
        "state": dag_run.get("state"),
        "deadline_time": _iso(deadline.get("deadline_time")),
        "freshness_hours": hours,
    }
    payload["text"] = (
        f"Data freshness deadline missed: DAG {payload['dag_id']} run {payload['run_id']} "
        f"had not finished by {payload['deadline_time']} (state {payload['state']})"
    )
    return scrub(payload)


def _task_text(payload: Mapping[str, Any]) -> str:
    verb = "failed" if payload["event"] == "task_failure" else "recovered"
    text = (
        f"Task {payload['dag_id']}.{payload['task_id']} {verb} "
        f"(run {payload['run_id']}, try {payload['try_number']})"
    )
    if payload.get("error"):
        text += f": {payload['error']}"
    databricks = payload.get("databricks") or {}
    if databricks.get("run_page_url"):
        text += f" | Databricks run: {databricks['run_page_url']}"
    if payload.get("log_url"):
        text += f" | Log: {payload['log_url']}"
    return text
