"""Triggers (run in the triggerer's event loop) for the airbricks Databricks operators and sensors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.databricks.triggers.databricks import DatabricksExecutionTrigger
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airbricks.databricks.hooks import (
    DEFAULT_CONN_ID,
    DEFAULT_RETRY_DELAY,
    DEFAULT_RETRY_LIMIT,
    DatabricksHookMixin,
)


class DatabricksFileTrigger(DatabricksHookMixin, BaseTrigger):
    """Wait until a Unity Catalog Volume file/directory or DBFS path exists.

    Not found (404) keeps waiting; any other error ends the wait with an ``error`` event, so a wrong
    token or a missing permission fails the task instead of waiting until the timeout.

    :param path: ``/Volumes/<catalog>/<schema>/<volume>/...`` or ``dbfs:/...``.
    :param databricks_conn_id: Airflow connection of the workspace.
    :param poke_interval: seconds between two checks.
    :param timeout: seconds after which the wait gives up (``None``: the task's own timeout applies).
    :param retry_limit: attempts per HTTP call on transient errors (5xx, 429 with Retry-After).
    :param retry_delay: base back-off in seconds between those attempts.
    :param retry_args: ``tenacity.Retrying`` arguments (the same names as the provider's
        ``DatabricksExecutionTrigger``).
    """

    def __init__(
        self,
        path: str,
        databricks_conn_id: str = DEFAULT_CONN_ID,
        poke_interval: float = 30.0,
        timeout: float | None = None,
        retry_limit: int = DEFAULT_RETRY_LIMIT,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        retry_args: dict[Any, Any] | None = None,
    ) -> None:
        super().__init__()
        self.path = path
        self.databricks_conn_id = databricks_conn_id
        self.poke_interval = poke_interval
        self.timeout = timeout
        self.databricks_retry_limit = retry_limit
        self.databricks_retry_delay = retry_delay
        self.databricks_retry_args = retry_args

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "path": self.path,
                "databricks_conn_id": self.databricks_conn_id,
                "poke_interval": self.poke_interval,
                "timeout": self.timeout,
                "retry_limit": self.databricks_retry_limit,
                "retry_delay": self.databricks_retry_delay,
                "retry_args": self.databricks_retry_args,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self._hook
        deadline = time.monotonic() + self.timeout if self.timeout is not None else None
        while True:
            try:
                found = await hook.a_file_exists(self.path)
            except Exception as err:
                yield TriggerEvent({"status": "error", "path": self.path, "message": str(err)})
                return
            if found:
                yield TriggerEvent({"status": "success", "path": self.path})
                return
            if deadline is not None and time.monotonic() >= deadline:
                yield TriggerEvent(
                    {
                        "status": "timeout",
                        "path": self.path,
                        "message": f"{self.path} did not appear within {self.timeout} s",
                    }
                )
                return
            self.log.info("%s not found yet; checking again in %s s", self.path, self.poke_interval)
            await asyncio.sleep(self.poke_interval)


# The provider trigger's INFO line at every poll of a run that is not finished yet.
_POLL_LINE = "run-id %s in run state %s. sleeping for %s seconds"


class _StateChangeLog:
    """A trigger's logger that passes everything through except the provider's per-poll INFO line, which
    it logs at INFO only when the run's state changed since the last poll (at DEBUG otherwise).

    That line cost more than half of the triggerer's CPU per poll (py-spy of the trigger runner with 100
    deferred runs, docs/PERFORMANCE.md): each one is formatted, sent to the supervisor and written to the
    trigger's log file. A run's log still shows every state it went through.
    """

    def __init__(self, log: Any) -> None:
        self._log = log
        self._last_state: str | None = None

    def info(self, message: Any, *args: Any, **kwargs: Any) -> Any:
        if message == _POLL_LINE and len(args) == 3:
            state = str(args[1])
            if state == self._last_state:
                return self._log.debug(message, *args, **kwargs)
            self._last_state = state
        return self._log.info(message, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


class AirbricksDatabricksExecutionTrigger(DatabricksHookMixin, DatabricksExecutionTrigger):
    """The provider's run-monitoring trigger, polling through an ``AirbricksDatabricksHook``.

    Identical events and arguments; only the hook differs, so polling a run honours ``Retry-After``, and
    the "still running" line is logged when the run's state changes, not at every poll.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The provider's trigger keeps its arguments as retry_limit/retry_delay/retry_args and polls
        # through self.hook, which its __init__ has just set to a plain DatabricksHook.
        self.databricks_retry_limit = self.retry_limit
        self.databricks_retry_delay = self.retry_delay
        self.databricks_retry_args = self.retry_args
        self.hook = self._get_hook(self.caller)
        self._log = _StateChangeLog(self.log)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs
