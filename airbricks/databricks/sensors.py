"""``DatabricksFileSensor``: wait for a file in a Unity Catalog Volume or on DBFS."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout

from airbricks.databricks.operators import DatabricksBaseOperator
from airbricks.databricks.triggers import DatabricksFileTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context


class DatabricksFileSensor(DatabricksBaseOperator, BaseSensorOperator):
    """Succeed once ``path`` exists: ``/Volumes/...`` (Files API ``HEAD``) or ``dbfs:/...`` (``get-status``).

    Not found (404) keeps waiting; any other error (bad token, no permission, bad path) fails at once.
    With ``deferrable=True`` the waiting happens in the triggerer (:class:`DatabricksFileTrigger`) and no
    worker slot is held.

    :param path: file or directory (trailing ``/``) to wait for (templated).
    :param deferrable: wait in the triggerer instead of a worker.

    ``poke_interval``, ``timeout`` and ``mode`` are the usual sensor arguments; the connection and retry
    arguments are those of :class:`~airbricks.databricks.operators.DatabricksBaseOperator`.
    """

    template_fields: Sequence[str] = ("path", "databricks_conn_id")
    ui_color = "#1CB1C2"

    def __init__(
        self,
        *,
        path: str,
        deferrable: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.deferrable = deferrable

    def poke(self, context: Context) -> bool:
        found = self._hook.file_exists(self.path)
        self.log.info("%s %s", self.path, "exists" if found else "not found yet")
        return found

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        if self.poke(context):
            return None
        timeout = self.timeout.total_seconds() if isinstance(self.timeout, timedelta) else self.timeout
        self.defer(
            trigger=DatabricksFileTrigger(
                path=self.path,
                databricks_conn_id=self.databricks_conn_id,
                poke_interval=float(self.poke_interval_seconds),
                timeout=float(timeout) if timeout else None,
                retry_limit=self.databricks_retry_limit,
                retry_delay=self.databricks_retry_delay,
                retry_args=self.databricks_retry_args,
            ),
            method_name="execute_complete",
        )
        return None

    @property
    def poke_interval_seconds(self) -> float:
        interval = self.poke_interval
        return interval.total_seconds() if isinstance(interval, timedelta) else float(interval)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> None:
        status = event.get("status")
        if status == "success":
            self.log.info("%s exists", event.get("path"))
            return
        if status == "timeout":
            raise AirflowSensorTimeout(event.get("message", f"{self.path} did not appear in time"))
        raise AirflowException(f"Checking {self.path} failed: {event.get('message', event)}")
