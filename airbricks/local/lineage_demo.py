"""The lineage stage of ``make demo``: OpenLineage to a local file, read back as one chain.

* ``start``: configures Airflow's OpenLineage provider with a file transport (one JSON event per line in
  ``<demo dir>/lineage/events.jsonl``) and the namespace ``airbricks``.
* ``verify``: the Hacker News API endpoint leads, through ingestion, the raw partition and the three
  Databricks tasks, to bronze, silver and gold, and the Databricks task runs are children of the Airflow
  task run that ran the job (ParentRunFacet); any gap is a demo problem.
* ``summary``: that chain, one dataset or job run per line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airbricks.lineage import LineageRun, chain_from, completed_runs, format_chain, read_events

NAMESPACE = "airbricks"
HN_API_PATH = "/api/v1/search_by_date"


def events_file(demo_dir: Path) -> Path:
    return Path(demo_dir) / "lineage" / "events.jsonl"


def check_chain(runs: list[LineageRun], start: str) -> list[str]:
    """Problems with the chain from ``start`` (empty: API -> raw -> bronze -> silver -> gold, linked)."""
    chain = list(chain_from(runs, start))
    jobs = [run.job.rsplit(".", 1)[-1] for run in chain]
    if jobs[1:] != ["bronze", "silver", "gold"] or not chain[0].outputs[0].startswith("s3://"):
        found = [run.job for run in chain]
        return [f"lineage chain from {start} is {found}: expected ingestion, bronze, silver, gold"]
    by_id = {run.run_id: run for run in runs}
    problems = []
    parents = {run.parent_run_id for run in chain[1:]}
    if len(parents) != 1 or None in parents:
        problems.append(f"the Databricks task runs have parents {parents}, expected one Airflow task run")
    else:
        parent = by_id.get(next(iter(parents)))
        if parent is None:
            problems.append(f"parent run {parents} of the Databricks task runs emitted no COMPLETE event")
        elif chain[0].outputs[0] not in parent.inputs:
            problems.append(f"{parent.job} did not read {chain[0].outputs[0]} (inputs {parent.inputs})")
    return problems


class LineageStage:
    """See the module docstring. Duck-typed like ``airbricks.local.demo.Stage``."""

    name = "lineage"

    def __init__(self) -> None:
        self.start_uri = ""

    def start(self, ctx: Any) -> None:
        path = events_file(ctx.demo_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        ctx.env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = NAMESPACE
        ctx.env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
            {"type": "file", "log_file_path": str(path), "append": True}
        )
        replay = ctx.services.get("replay")
        if replay is not None:
            self.start_uri = f"{replay.url.rstrip('/')}{HN_API_PATH}"

    def dags(self, ctx: Any) -> list[str]:
        return []

    def run(self, ctx: Any) -> None:
        return None

    def _runs(self, ctx: Any) -> list[LineageRun]:
        return completed_runs(read_events(events_file(ctx.demo_dir)))

    def verify(self, ctx: Any) -> list[str]:
        if not self.start_uri:
            return ["no API replay server: nothing to follow"]
        return check_chain(self._runs(ctx), self.start_uri)

    def summary(self, ctx: Any) -> list[str]:
        runs = self._runs(ctx)
        lines = [f"lineage: {len(runs)} completed run(s) in {events_file(ctx.demo_dir)}"]
        if self.start_uri:
            lines += ["  " + line for line in format_chain(runs, self.start_uri)]
        return lines

    def stop(self, ctx: Any) -> None:
        return None
