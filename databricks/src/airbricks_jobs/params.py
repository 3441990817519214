"""Job parameters: validation and the output locations derived from them.

The raw partition arrives already parsed: Airflow passes ``partition_key``, ``partition_date`` and
``partition_folder`` (``dt=YYYY-MM-DD/`` or ``dt=YYYY-MM-DD/hr=HH/``) next to ``partition_path``, all from
``airbricks.partitions.RawPartition.job_parameters``, so this code never parses a path or knows the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

LAYERS = ("bronze", "silver", "gold")
#: Job parameters that must not be empty: Airflow always passes them with run-now.
REQUIRED = ("dataset", "partition_path", "partition_key", "partition_date", "partition_folder", "output_root")


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
    :param partition_path: the raw partition, ``s3://<bucket>/raw/<source>/<dataset>/dt=YYYY-MM-DD/[hr=HH/]``.
    :param partition_key: the Airflow partition key, ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH``.
    :param partition_date: ``YYYY-MM-DD`` of the partition.
    :param partition_folder: the partition's relative folder, ``dt=YYYY-MM-DD/[hr=HH/]``: every layer's
        output goes to ``<output_root>/<layer>/[<table>/]<partition_folder>``.
    :param output_root: where this dataset's bronze/silver/gold folders live.
    :param interval_start: start of the ingested data interval (ISO-8601), informational.
    :param interval_end: end of the ingested data interval (ISO-8601), informational.
    """

    dataset: str
    layer: str
    partition_path: str
    partition_key: str
    partition_date: str
    partition_folder: str
    output_root: str
    interval_start: str = ""
    interval_end: str = ""

    def __post_init__(self) -> None:
        if self.layer not in LAYERS:
            raise JobParameterError(f"task parameter 'layer' must be one of {LAYERS}, got {self.layer!r}")
        for name in REQUIRED:
            if not getattr(self, name).strip():
                raise JobParameterError(
                    f"job parameter {name!r} is empty; Airflow passes it with run-now "
                    "(or set it when running the job by hand)"
                )
        try:
            date.fromisoformat(self.partition_date)
        except ValueError:
            raise JobParameterError(
                f"job parameter 'partition_date' is not YYYY-MM-DD: {self.partition_date!r}"
            ) from None
        folder = self.partition_folder
        if folder.startswith("/") or ".." in folder.split("/"):
            raise JobParameterError(
                "job parameter 'partition_folder' must be a relative folder such as dt=YYYY-MM-DD/, "
                f"got {folder!r}"
            )
        start = _parse_iso("interval_start", self.interval_start)
        end = _parse_iso("interval_end", self.interval_end)
        if start and end and end < start:
            raise JobParameterError(
                f"interval_end {self.interval_end!r} is before interval_start {self.interval_start!r}"
            )

    def layer_path(self, layer: str, table: str | None = None) -> str:
        """Output folder of one layer (and optional table) for this partition."""
        parts = [layer, table] if table else [layer]
        return join_path(self.output_root, *parts, self.partition_folder)
