"""Job parameters: validation and the few derived values (partition date, output locations)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime

_DT_SEGMENT = re.compile(r"(?:^|/)dt=(\d{4}-\d{2}-\d{2})(?:/|$)")

LAYERS = ("bronze", "silver", "gold")


class JobParameterError(ValueError):
    """A job parameter is missing or malformed; the message names the parameter."""


def _parse_iso(name: str, value: str) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise JobParameterError(f"job parameter {name!r} is not an ISO-8601 timestamp: {value!r}") from err


def join_path(root: str, *parts: str) -> str:
    """Join a storage root (``s3://...``, ``/Volumes/...`` or a local path) and relative parts with ``/``."""
    path = root.rstrip("/")
    for part in parts:
        path = f"{path}/{part.strip('/')}"
    return path + "/"


@dataclass(frozen=True)
class LayerParams:
    """The parameters every medallion task receives (job parameters + the task's base parameters).

    :param dataset: which dataset pipeline to run, e.g. ``hackernews_stories``.
    :param layer: ``bronze``, ``silver`` or ``gold``.
    :param partition_path: the raw partition prefix, ``.../raw/<source>/<dataset>/dt=YYYY-MM-DD/``.
    :param output_root: where this dataset's bronze/silver/gold folders live.
    :param interval_start: start of the ingested data interval (ISO-8601), informational.
    :param interval_end: end of the ingested data interval (ISO-8601), informational.
    """

    dataset: str
    layer: str
    partition_path: str
    output_root: str
    interval_start: str = ""
    interval_end: str = ""

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise JobParameterError(f"task parameter 'layer' must be one of {LAYERS}, got {self.layer!r}")
        for name in ("dataset", "partition_path", "output_root"):
            if not getattr(self, name).strip():
                raise JobParameterError(
                    f"job parameter {name!r} is empty; Airflow passes it with run-now "
                    "(or set it when running the job by hand)"
                )
        start = _parse_iso("interval_start", self.interval_start)
        end = _parse_iso("interval_end", self.interval_end)
        if start and end and end < start:
            raise JobParameterError(
                f"interval_end {self.interval_end!r} is before interval_start {self.interval_start!r}"
            )
        self.partition_date  # noqa: B018 - validate eagerly so a bad path fails before Spark starts

    @property
    def partition_date(self) -> str:
        """``YYYY-MM-DD`` of the partition: the ``dt=`` folder of ``partition_path``, else interval_start."""
        match = _DT_SEGMENT.search(self.partition_path)
        if match:
            try:
                date.fromisoformat(match.group(1))
            except ValueError as err:
                raise JobParameterError(
                    f"job parameter 'partition_path' has an invalid dt= date: {self.partition_path!r}"
                ) from err
            return match.group(1)
        start = _parse_iso("interval_start", self.interval_start)
        if start is None:
            raise JobParameterError(
                "job parameter 'partition_path' has no dt=YYYY-MM-DD folder and 'interval_start' is empty: "
                f"cannot tell the partition date of {self.partition_path!r}"
            )
        return start.date().isoformat()

    def layer_path(self, layer: str, table: str | None = None) -> str:
        """Output folder of one layer (and optional table) for this partition date."""
        parts = [layer, table] if table else [layer]
        return join_path(self.output_root, *parts, f"dt={self.partition_date}")
