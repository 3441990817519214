"""OpenLineage for the pipeline: dataset names, the Databricks layer runs, and reading a lineage chain back.

The Airflow OpenLineage provider emits a START/COMPLETE event per task run; our operators tell it what
they read and wrote (``get_openlineage_facets_on_*``)::

    ingest_<source>.<task>          https://<api host><path>            -> s3://<raw bucket>/raw/.../dt=.../
    databricks_<source>_<dataset>.run_medallion_job
                                    s3://<raw bucket>/raw/.../dt=.../  -> bronze, silver, gold lake paths
      .bronze / .silver / .gold     one child run per Databricks task (parent: the Airflow task run)
                                    raw -> bronze -> silver -> gold/<table>

Dataset names follow the OpenLineage naming spec: ``s3://<bucket>`` + the key prefix (no slashes at either
end), and ``https://<host>[:port]`` + the URL path for an API endpoint. Nothing here imports OpenLineage at
module level: DAG files import the operators that import this module.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

# Where the Databricks job writes each layer: <output_root><layer>[/<table>]/dt=<date>/, the layout of
# databricks/src/airbricks_jobs/params.py (LayerParams.layer_path), which the bundle tests pin.
LAYERS = ("bronze", "silver", "gold")


def dataset_name(uri: str) -> tuple[str, str]:
    """``(namespace, name)`` of a storage or API URI per the OpenLineage naming spec.

    ``s3://bucket/a/b/`` -> ``("s3://bucket", "a/b")``; ``https://host:8443/v1/items?x=1`` ->
    ``("https://host:8443", "/v1/items")`` (the query string, which may carry a key, is never kept).
    """
    split = urlsplit(uri)
    if not split.scheme or not split.netloc:
        raise ValueError(f"lineage dataset URI {uri!r} has no scheme://authority")
    host = split.hostname or ""
    netloc = f"{host}:{split.port}" if split.port else host
    namespace = f"{split.scheme}://{netloc}"
    if split.scheme in ("http", "https"):
        return namespace, split.path or "/"
    return namespace, split.path.strip("/")


def ol_dataset(uri: str, facets: dict[str, Any] | None = None) -> Any:
    """An OpenLineage ``Dataset`` for ``uri``."""
    from openlineage.client.event_v2 import Dataset

    namespace, name = dataset_name(uri)
    return Dataset(namespace=namespace, name=name, facets=facets or {})


def lake_layer_uris(
    output_root: str, partition_folder: str, gold_tables: Iterable[str]
) -> dict[str, list[str]]:
    """The lake folders the medallion job writes for one partition, by layer.

    :param partition_folder: the partition's ``RawPartition.relative_prefix``, ``dt=YYYY-MM-DD/[hr=HH/]``.
    """
    root = output_root.rstrip("/")
    return {
        "bronze": [f"{root}/bronze/{partition_folder}"],
        "silver": [f"{root}/silver/{partition_folder}"],
        "gold": [f"{root}/gold/{table}/{partition_folder}" for table in sorted(gold_tables)],
    }


def layer_io(partition_path: str, layers: dict[str, list[str]]) -> dict[str, tuple[list[str], list[str]]]:
    """``{layer: (inputs, outputs)}``: raw -> bronze -> silver -> gold."""
    return {
        "bronze": ([partition_path], layers["bronze"]),
        "silver": (layers["bronze"], layers["silver"]),
        "gold": (layers["silver"], layers["gold"]),
    }


def _parent_facet(task_instance: Any) -> Any:
    """ParentRunFacet pointing at the Airflow task run (and, as root, its DAG run), like the provider's."""
    from airflow.providers.openlineage.plugins import macros
    from openlineage.client.facet_v2 import parent_run

    return parent_run.ParentRunFacet(
        run=parent_run.Run(runId=macros.lineage_run_id(task_instance)),
        job=parent_run.Job(
            namespace=macros.lineage_job_namespace(), name=macros.lineage_job_name(task_instance)
        ),
        root=parent_run.Root(
            run=parent_run.RootRun(runId=macros.lineage_root_run_id(task_instance)),
            job=parent_run.RootJob(
                namespace=macros.lineage_root_job_namespace(task_instance),
                name=macros.lineage_root_job_name(task_instance),
            ),
        ),
    )


@dataclass(frozen=True)
class DatabricksTaskRun:
    """One finished attempt of a task of a Databricks job run, with what it read and wrote."""

    task_key: str
    run_id: int
    start_time_ms: int
    end_time_ms: int
    run_page_url: str
    inputs: list[str]
    outputs: list[str]


def emit_databricks_task_runs(task_instance: Any, host: str, runs: list[DatabricksTaskRun]) -> int:
    """Emit START + COMPLETE for each Databricks task as a child run of the Airflow task run.

    Job name ``<airflow job name>.<task_key>``; run id derived from the Databricks task run id (stable
    across re-emission). On a workspace with the OpenLineage Spark listener the Spark events carry the
    same parent (the provider injects it as the ``OPENLINEAGE_CONTEXT`` job parameter). Returns the number
    of runs emitted (0 when OpenLineage is not configured).
    """
    from airflow.providers.openlineage.api import emit, is_openlineage_active
    from airflow.providers.openlineage.plugins import macros
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import job_type_job
    from openlineage.client.uuid import generate_static_uuid

    if not is_openlineage_active():
        return 0
    parent = _parent_facet(task_instance)
    job_type = job_type_job.JobTypeJobFacet(processingType="BATCH", integration="DATABRICKS", jobType="TASK")
    for run in runs:
        started = datetime.fromtimestamp(run.start_time_ms / 1000, tz=UTC)
        ended = datetime.fromtimestamp((run.end_time_ms or run.start_time_ms) / 1000, tz=UTC)
        run_id = str(generate_static_uuid(started, f"databricks:{host}:{run.run_id}".encode()))
        job = Job(
            namespace=macros.lineage_job_namespace(),
            name=f"{macros.lineage_job_name(task_instance)}.{run.task_key}",
            facets={"jobType": job_type},
        )
        facets = {"parent": parent}
        inputs = [ol_dataset(uri) for uri in run.inputs]
        outputs = [ol_dataset(uri) for uri in run.outputs]
        for state, when in ((RunState.START, started), (RunState.COMPLETE, ended)):
            emit(
                RunEvent(
                    eventType=state,
                    eventTime=when.isoformat(),
                    run=Run(runId=run_id, facets=facets),
                    job=job,
                    inputs=inputs,
                    outputs=outputs,
                    producer=_PRODUCER,
                )
            )
    return len(runs)


_PRODUCER = "https://github.com/airbricks/airbricks/tree/main/airbricks/lineage.py"


# ---- reading events back (make demo, tests) ---------------------------------------------------------


@dataclass
class LineageRun:
    """A run as the COMPLETE events describe it."""

    job: str
    run_id: str
    parent_run_id: str | None
    parent_job: str | None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


def read_events(path: pathlib.Path) -> list[dict[str, Any]]:
    """The events of a file transport (``append: true``: one JSON event per line)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _uri(dataset: dict[str, Any]) -> str:
    namespace, name = dataset["namespace"], dataset["name"]
    return f"{namespace}{name}" if namespace.startswith("http") else f"{namespace}/{name}"


def dataset_uri(uri: str) -> str:
    """``uri`` as :func:`completed_runs` spells datasets (namespace + name: no trailing slash, no query)."""
    namespace, name = dataset_name(uri)
    return _uri({"namespace": namespace, "name": name})


def completed_runs(events: Iterable[dict[str, Any]]) -> list[LineageRun]:
    """One :class:`LineageRun` per run that completed, with its datasets as URIs."""
    runs: dict[str, LineageRun] = {}
    for event in events:
        if event.get("eventType") != "COMPLETE":
            continue
        parent = (event["run"].get("facets") or {}).get("parent") or {}
        runs[event["run"]["runId"]] = LineageRun(
            job=event["job"]["name"],
            run_id=event["run"]["runId"],
            parent_run_id=(parent.get("run") or {}).get("runId"),
            parent_job=(parent.get("job") or {}).get("name"),
            inputs=[_uri(d) for d in event.get("inputs") or []],
            outputs=[_uri(d) for d in event.get("outputs") or []],
        )
    return list(runs.values())


def chain_from(runs: list[LineageRun], start: str) -> Iterator[LineageRun]:
    """Follow the data from dataset ``start``: each hop is the innermost run that read what the previous
    hop wrote (a run that is some other run's parent, like the Airflow task around the Databricks tasks,
    is skipped in favour of its children)."""
    parents = {run.parent_run_id for run in runs if run.parent_run_id}
    leaves = [run for run in runs if run.run_id not in parents]
    current, seen = {dataset_uri(start)}, set()
    while True:
        step = next((run for run in leaves if run.run_id not in seen and current & set(run.inputs)), None)
        if step is None or not step.outputs:
            return
        seen.add(step.run_id)
        yield step
        current = set(step.outputs)


def format_chain(runs: list[LineageRun], start: str) -> list[str]:
    """``start`` then, per hop, the job (its run and parent run) and the datasets it wrote."""
    by_id = {run.run_id: run for run in runs}
    lines = [dataset_uri(start)]
    for step in chain_from(runs, start):
        parent = by_id.get(step.parent_run_id or "")
        via = f", child of {parent.job} {parent.run_id[:8]}" if parent else ""
        lines.append(f"  -> {step.job} (run {step.run_id[:8]}{via})")
        lines.extend(step.outputs)
    return lines
