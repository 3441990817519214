"""Where notifications go: a generic JSON webhook and Slack, each enabled by the presence of its connection.

- Webhook: an HTTP connection (default id ``airbricks_alerts_webhook``); the payload is POSTed as JSON with
  the HTTP provider's :class:`~airflow.providers.http.hooks.http.HttpHook`, so login/password (basic auth),
  extra headers and the connection's URL work as for any Airflow HTTP connection. The URL and the
  credentials stay in the connection (a secrets backend or a Kubernetes Secret), never in the payload.
- Slack (default id ``airbricks_alerts_slack``) through the official Slack provider: a ``slackwebhook``
  connection posts to the incoming webhook; a ``slack`` (API token) connection posts with
  ``chat.postMessage`` to the channel in the connection extra ``channel`` (or ``#airflow-alerts``).

A connection that does not exist disables its channel quietly; one that exists but fails is logged and
the other channels still get the message.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from airbricks.notifications.payload import scrub

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK_CONN_ID = "airbricks_alerts_webhook"
DEFAULT_SLACK_CONN_ID = "airbricks_alerts_slack"
DEFAULT_SLACK_CHANNEL = "#airflow-alerts"
_TIMEOUT_SECONDS = 10


def _connection(conn_id: str | None) -> Any | None:
    if not conn_id:
        return None
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        # Not configured is a normal state for an optional channel.
        log.debug("Notification connection %s is not configured; channel disabled", conn_id)
        return None


def send_webhook(conn_id: str, payload: dict[str, Any]) -> bool:
    """POST ``payload`` as JSON to the HTTP connection ``conn_id``; False if the connection is absent."""
    if _connection(conn_id) is None:
        return False
    from airflow.providers.http.hooks.http import HttpHook

    # Scrub again now that fetching the connection registered its password with the secrets masker.
    payload = scrub(payload)

    hook = HttpHook(method="POST", http_conn_id=conn_id)
    hook.run(
        endpoint=None,
        data=json.dumps(payload),
        headers={"Content-Type": "application/json"},
        extra_options={"timeout": _TIMEOUT_SECONDS, "check_response": True},
    )
    return True


def slack_blocks(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Slack Block Kit rendering of a payload: the text, then the links as context."""
    icon = {"error": ":red_circle:", "warning": ":warning:"}.get(
        payload.get("severity", ""), ":white_check_mark:"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{icon} {payload['text']}"[:2900]}}
    ]
    links = []
    if payload.get("log_url"):
        links.append(f"<{payload['log_url']}|Airflow log>")
    databricks = payload.get("databricks") or {}
    if databricks.get("run_page_url"):
        links.append(f"<{databricks['run_page_url']}|Databricks run>")
    if links:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(links)}]})
    return blocks


def send_slack(conn_id: str, payload: dict[str, Any]) -> bool:
    """Post ``payload`` to Slack via the provider's hook matching the connection type."""
    conn = _connection(conn_id)
    if conn is None:
        return False
    payload = scrub(payload)  # the Slack token/webhook URL is registered with the masker by now
    blocks = slack_blocks(payload)
    if conn.conn_type == "slack":
        from airflow.providers.slack.hooks.slack import SlackHook

        channel = (conn.extra_dejson or {}).get("channel", DEFAULT_SLACK_CHANNEL)
        SlackHook(slack_conn_id=conn_id, timeout=_TIMEOUT_SECONDS).client.chat_postMessage(
            channel=channel, text=payload["text"], blocks=blocks
        )
    else:
        from airflow.providers.slack.hooks.slack_webhook import SlackWebhookHook

        SlackWebhookHook(slack_webhook_conn_id=conn_id, timeout=_TIMEOUT_SECONDS).send(
            text=payload["text"], blocks=blocks
        )
    return True
