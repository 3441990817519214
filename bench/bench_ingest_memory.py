"""Memory benchmark of API → S3 ingestion: peak RSS of the ingesting process vs. total bytes ingested.

    python bench/bench_ingest_memory.py                 # ~10 MB and ~1 GB
    python bench/bench_ingest_memory.py --sizes-mb 10   # just one size

Separate processes, so each measurement sees only the ingesting code:

* a *servers* process hosts the synthetic page server (the replay server's generated HN-style pages,
  ~1 MiB each) and starts the moto S3 server (objects spill to disk: ``MOTO_S3_DEFAULT_KEY_BUFFER_SIZE``)
  in a process of its own: in production the API and S3 are separate services, and two Python servers in
  one process would share one interpreter lock, serialising exactly the overlap ingestion relies on;
* one fresh *ingest* process per size imports everything, records its RSS (the interpreter baseline),
  runs the real :func:`airbricks.ingestion.ingest.ingest_interval` (HTTP client, pagination, validation,
  staging, publish) and reports its peak RSS (``ru_maxrss`` and a 5 ms sampler).

Target: peak above baseline < 200 MB at 1 GB, i.e. memory does not grow with the amount ingested.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
BUCKET = "bench-raw"
PATH = "/bench/search_by_date"
RECORD_BYTES = 1024
PER_PAGE = 1024  # ~1 MiB pages
TARGET_MB = 200


def _s3_server(connection: Any) -> None:
    """Grandchild: the S3 server with the bucket; sends its URL, serves until told to stop."""
    from airbricks.local.s3 import S3Server

    with S3Server() as s3:
        s3.create_bucket(BUCKET)
        connection.send(s3.endpoint_url)
        connection.recv()


def _servers() -> None:
    """Child: start S3 (own process) + synthetic page server, print their URLs, serve until stdin closes."""
    from airbricks.local.replay import ReplayServer

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    s3_process = context.Process(target=_s3_server, args=(theirs,), daemon=True)
    s3_process.start()
    try:
        s3_url = ours.recv()
        with ReplayServer(fixtures=[]) as api:
            print(json.dumps({"s3": s3_url, "api": api.url, "api_port": api.port}), flush=True)
            for line in sys.stdin:  # commands: "pages N" → serve N synthetic pages at PATH
                command, _, value = line.strip().partition(" ")
                if command == "pages":
                    api.reset()
                    api.add_synthetic(PATH, pages=int(value), per_page=PER_PAGE, record_bytes=RECORD_BYTES)
                    print("ok", flush=True)
    finally:
        ours.send("stop")
        s3_process.join(timeout=60)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _ingest(s3_url: str, api_url: str, *, republish: bool = False) -> None:
    """Child: one ingestion run, measured. Prints a JSON result line.

    By default the run is a first publication (what every scheduled run is): the partition left by an
    earlier child is removed before the measurement. ``republish`` keeps it, so the run re-publishes a
    published partition (backfill / re-run: the staged protocol, see docs/INGESTION.md).
    """
    import datetime

    import boto3  # imported before the baseline: the baseline is "ready to ingest"
    import requests  # noqa: F401
    from botocore.config import Config

    from airbricks.ingestion.config import DatasetConfig, HttpPolicy
    from airbricks.ingestion.http import ApiEndpoint
    from airbricks.ingestion.ingest import ingest_interval

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto placeholder
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.list_buckets()  # warm the client (endpoint resolution, credential chain) before the baseline
    if not republish:  # earlier children of this server published the same partition: start afresh
        for listing in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="raw/"):
            keys = [{"Key": obj["Key"]} for obj in listing.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=BUCKET, Delete={"Objects": keys, "Quiet": True})
    # A task process has Airflow's metrics client set up before it ingests; do the same before the baseline,
    # so the figure is what ingesting costs, not Airflow's first import.
    from airbricks import metrics

    metrics._stats()
    config = DatasetConfig(
        path=PATH,
        records_path="hits",
        required_fields=("objectID", "title", "created_at_i"),
        pagination={"style": "page_number", "start_page": 0, "total_pages_path": "nbPages"},
    )
    peak = {"rss": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak["rss"] = max(peak["rss"], _rss_bytes())
            time.sleep(0.005)

    baseline = _rss_bytes()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    result = ingest_interval(
        source="bench",
        dataset="pages",
        config=config,
        endpoint=ApiEndpoint("bench", api_url),
        http_policy=HttpPolicy(max_pages=100_000),
        s3=s3,
        bucket=BUCKET,
        interval_start=datetime.datetime(2026, 11, 19, tzinfo=datetime.UTC),
        interval_end=datetime.datetime(2026, 11, 20, tzinfo=datetime.UTC),
        run_id="bench",
    )
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "baseline_rss": baseline,
                "peak_rss": max(peak["rss"], max_rss),
                "seconds": seconds,
                "pages": result.pages,
                "records": result.records,
                "bytes": result.bytes,
            }
        ),
        flush=True,
    )


def _run(sizes_mb: list[int]) -> int:
    spill = tempfile.mkdtemp(prefix="bench-moto-")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(64 * 1024),  # moto keeps objects in temp files, not RAM
        "TMPDIR": spill,
    }
    servers = subprocess.Popen(
        [sys.executable, __file__, "--servers"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    failed = False
    try:
        if servers.stdout is None or servers.stdin is None:
            raise RuntimeError("servers process has no pipes")
        urls = json.loads(servers.stdout.readline())
        print(
            f"{'target':>8} {'ingested':>10} {'pages':>6} {'seconds':>8} {'MB/s':>7} "
            f"{'peak RSS above baseline':>24}"
        )
        for size in sizes_mb:
            pages = max(1, round(size * 1024 * 1024 / (PER_PAGE * RECORD_BYTES)))
            servers.stdin.write(f"pages {pages}\n")
            servers.stdin.flush()
            if servers.stdout.readline().strip() != "ok":
                raise RuntimeError("servers process did not set up the synthetic pages")
            child = subprocess.run(
                [sys.executable, __file__, "--ingest", urls["s3"], urls["api"]],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            if child.returncode != 0:
                print(child.stderr, file=sys.stderr)
                return 1
            r = json.loads(child.stdout.strip().splitlines()[-1])
            above = (r["peak_rss"] - r["baseline_rss"]) / 1024 / 1024
            mb = r["bytes"] / 1024 / 1024
            verdict = "ok" if above < TARGET_MB else f"OVER {TARGET_MB} MB"
            failed |= above >= TARGET_MB
            print(
                f"{size:>6}MB {mb:>8.1f}MB {r['pages']:>6} {r['seconds']:>8.1f} {mb / r['seconds']:>7.1f} "
                f"{above:>17.1f} MB  {verdict}  (baseline {r['baseline_rss'] / 1024 / 1024:.0f} MB)"
            )
    finally:
        if servers.stdin:
            servers.stdin.close()
        servers.wait(timeout=60)
        shutil.rmtree(spill, ignore_errors=True)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mb", type=int, nargs="+", default=[10, 1024], help="total sizes to ingest")
    parser.add_argument("--servers", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ingest", nargs=2, metavar=("S3_URL", "API_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.servers:
        _servers()
        return 0
    if args.ingest:
        _ingest(*args.ingest)
        return 0
    return _run(args.sizes_mb)


if __name__ == "__main__":
    sys.exit(main())
