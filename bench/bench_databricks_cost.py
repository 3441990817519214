"""Databricks cost: clusters created and cluster-seconds per run of the processing pipeline.

    python -m bench.bench_databricks_cost

Runs the real bundle job ``airbricks_hackernews`` (bronze → silver → gold notebooks, PySpark) on the
Databricks emulator, reading a raw partition from a local moto S3 server, in two topologies, side by side
in one workspace (concurrent runs, so the benchmark takes the time of one):

* ``shared_job_cluster`` — the bundle as shipped: one ``job_clusters`` entry used by every task;
* ``cluster_per_task`` — a copy of the job in which every task has its own ``new_cluster`` (what you get by
  giving each task its own cluster spec, or by chaining single-task runs).

Figures come from the emulator's cluster records of the clusters each run's tasks ran on (created →
terminated): clusters created per run, cluster-seconds (sum of lifetimes), and clusters of the workspace
still active a few seconds after both runs ended (leaked). Cluster start-up takes
``CLUSTER_START_SECONDS`` on the emulator; on Databricks it is minutes and billed, so the result also gives
a modeled figure with ``MODELED_STARTUP_SECONDS`` per cluster launch. Target: 1 cluster per pipeline run,
0 leaked.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.common import REPO, airflow_env, child_result, finish, print_child_result

JOB_NAME = "airbricks_hackernews"
JOB_FILE = "hackernews.job.yml"
RAW_BUCKET = "airbricks-raw"
LAKE_BUCKET = "airbricks-bench-lake"
PARTITION = "raw/hackernews/stories/dt=2026-11-20/"
CLUSTER_START_SECONDS = 1.0
MODELED_STARTUP_SECONDS = 300  # a typical Databricks job-cluster launch, for the modeled figure only
TERMINAL = ("TERMINATED", "SKIPPED", "INTERNAL_ERROR")


def _hits(count: int) -> list[dict[str, Any]]:
    return [
        {
            "objectID": str(1000 + n),
            "title": f"Story {n}",
            "url": f"https://news{n % 7}.example.org/{n}",
            "author": f"user{n % 13}",
            "points": n % 50,
            "num_comments": n % 9,
            "created_at": "2026-11-20T10:00:00Z",
            "created_at_i": 1795168800 + n,
            "_tags": ["story"],
        }
        for n in range(count)
    ]


PER_TASK_JOB_NAME = JOB_NAME + "_cluster_per_task"


def per_task_bundle(source: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """Copy of the bundle plus a second hackernews job whose tasks each get their own new_cluster.

    The original job is kept, so both topologies run side by side in one workspace.
    """
    import yaml

    shutil.copytree(source, target)
    document = yaml.safe_load((target / "resources" / JOB_FILE).read_text())
    job = document["resources"]["jobs"].pop(JOB_NAME)
    specs = {entry["job_cluster_key"]: entry["new_cluster"] for entry in job.pop("job_clusters")}
    for task in job["tasks"]:
        task["new_cluster"] = specs[task.pop("job_cluster_key")]
    job["name"] = PER_TASK_JOB_NAME
    document["resources"]["jobs"] = {PER_TASK_JOB_NAME: job}
    (target / "resources" / ("per_task_" + JOB_FILE)).write_text(yaml.safe_dump(document, sort_keys=False))
    return target


def _child(workdir: pathlib.Path) -> dict[str, Any]:
    """Both topologies run concurrently (they would only wait for each other's CPU if run in turn)."""
    import requests

    from airbricks.emulator.clusters import ACTIVE_STATES
    from airbricks.emulator.server import EmulatorServer
    from airbricks.local.s3 import S3Server
    from airbricks.partitions import RawPartition

    topologies = {"shared_job_cluster": JOB_NAME, "cluster_per_task": PER_TASK_JOB_NAME}
    out: dict[str, Any] = {}
    with S3Server() as s3:
        client = s3.client()
        for bucket in (RAW_BUCKET, LAKE_BUCKET):
            s3.create_bucket(bucket)
        page = json.dumps({"hits": _hits(200), "page": 0, "nbPages": 1}).encode()
        client.put_object(Bucket=RAW_BUCKET, Key=PARTITION + "part-00001.json", Body=page)
        client.put_object(Bucket=RAW_BUCKET, Key=PARTITION + "_manifest.json", Body=b'{"records": 200}')
        server = EmulatorServer(
            state_dir=workdir / "emulator",
            cluster_start_seconds=CLUSTER_START_SECONDS,
            retry_interval_cap=0.5,
        ).start()
        try:
            workspace = server.workspace
            workspace.bundle_dir = per_task_bundle(REPO / "databricks", workdir / "bundle")
            workspace.reset()
            workspace.storage.endpoint_url = s3.endpoint_url
            workspace.storage._client = None
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {server.token}"
            api = server.url + "/api/2.2/jobs"
            run_ids = {}
            for topology, job_name in topologies.items():
                jobs = http.get(f"{api}/list", params={"name": job_name}, timeout=30).json()["jobs"]
                run_ids[topology] = http.post(
                    f"{api}/run-now",
                    json={
                        "job_id": jobs[0]["job_id"],
                        "job_parameters": {
                            **RawPartition.from_prefix(PARTITION).job_parameters(RAW_BUCKET),  # as processing
                            "output_root": f"s3://{LAKE_BUCKET}/{topology}/hackernews/stories/",
                        },
                    },
                    timeout=30,
                ).json()["run_id"]
            runs: dict[str, Any] = {}
            while len(runs) < len(run_ids):
                for topology, run_id in run_ids.items():
                    run = http.get(f"{api}/runs/get", params={"run_id": run_id}, timeout=30).json()
                    if run["state"]["life_cycle_state"] in TERMINAL:
                        runs[topology] = run
                time.sleep(0.5)
            time.sleep(3 * CLUSTER_START_SECONDS)  # let terminations settle before looking for leaks
            clusters = {c["cluster_id"]: c for c in workspace.clusters.list()}
            now_ms = time.time() * 1000
            for topology, run in runs.items():
                used = {
                    t["cluster_instance"]["cluster_id"]
                    for t in run.get("tasks", [])
                    if t.get("cluster_instance")
                }
                mine = [clusters[cluster_id] for cluster_id in used if cluster_id in clusters]
                lifetimes = [((c.get("terminated_time") or now_ms) - c["start_time"]) / 1000 for c in mine]
                out[topology] = {
                    "result_state": run["state"].get("result_state"),
                    "tasks": len({t["task_key"] for t in run.get("tasks", [])}),
                    "clusters_created": len(mine),
                    "cluster_sources": sorted({c["cluster_source"] for c in mine}),
                    "cluster_seconds": round(sum(lifetimes), 1),
                    "leaked_clusters": [c["cluster_id"] for c in mine if c["state"] in ACTIVE_STATES],
                    "run_seconds": round((run.get("end_time", 0) - run.get("start_time", 0)) / 1000, 1),
                }
            out["clusters_in_workspace"] = len(clusters)
            out["active_clusters_in_workspace"] = [
                c["cluster_id"] for c in clusters.values() if c["state"] in ACTIVE_STATES
            ]
        finally:
            server.stop()
    return out


def run() -> dict[str, Any]:
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="airbricks-bench-cost-"))
    try:
        child = subprocess.run(
            [sys.executable, "-m", "bench.bench_databricks_cost", "--child", str(workdir)],
            capture_output=True,
            text=True,
            env=airflow_env(str(workdir / "airflow-home")),
            check=False,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    raw = child_result(child, "cost benchmark")
    shared, per_task = raw.pop("shared_job_cluster"), raw.pop("cluster_per_task")
    ok = shared["result_state"] == per_task["result_state"] == "SUCCESS"
    met = ok and shared["clusters_created"] == 1 and not raw["active_clusters_in_workspace"]
    # On Databricks a job cluster bills from launch; start-up takes minutes, not the emulator's second.
    startup = MODELED_STARTUP_SECONDS - CLUSTER_START_SECONDS
    modeled = {
        name: round(t["cluster_seconds"] + t["clusters_created"] * startup, 1)
        for name, t in (("shared_job_cluster", shared), ("cluster_per_task", per_task))
    }
    return {
        "target": "1 cluster per pipeline run (shared job cluster), 0 leaked",
        "cluster_start_seconds_on_emulator": CLUSTER_START_SECONDS,
        "topologies": {"shared_job_cluster": shared, "cluster_per_task": per_task},
        "clusters_in_workspace_after": raw["clusters_in_workspace"],
        "leaked_clusters": raw["active_clusters_in_workspace"],
        "modeled_startup_seconds": MODELED_STARTUP_SECONDS,
        "modeled_cluster_seconds": modeled,
        "cluster_ratio_per_task_vs_shared": round(
            per_task["clusters_created"] / max(1, shared["clusters_created"]), 2
        ),
        "cluster_seconds_ratio_per_task_vs_shared": round(
            per_task["cluster_seconds"] / max(0.001, shared["cluster_seconds"]), 2
        ),
        "runs_succeeded": ok,
        "met": met,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=pathlib.Path, help="also write the result as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print_child_result(_child(pathlib.Path(args.child)))
        return 0
    return finish(run(), args.json)


if __name__ == "__main__":
    sys.exit(main())
