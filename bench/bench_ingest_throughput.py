"""Ingestion throughput and memory: the real ingestion code vs a raw boto3 multipart upload of the same bytes.

    python -m bench.bench_ingest_throughput [--size-mb 256] [--repeats 3] [--memory-sizes-mb 10 1024]

Reuses the machinery of ``bench/bench_ingest_memory.py`` (its *servers* process: moto S3 server spilling
objects to disk + the replay server's synthetic ~1 MiB pages; and its *ingest* child: one fresh process
running :func:`airbricks.ingestion.ingest.ingest_interval`, the code ``HttpToS3RawOperator.execute`` runs
after resolving its connections, measuring seconds and peak RSS). Added here is the baseline child:

* ``raw``: the same pages fetched with a plain ``requests`` session into a temp file (timed: the API leg
  alone), then that file uploaded to the same S3 server with ``boto3``'s managed multipart upload
  (``upload_file``, default ``TransferConfig``: 8 MiB parts, 10 threads) — the physical floor of the S3 leg.

Figures (median of ``--repeats`` interleaved runs, same servers, same bytes):

* ``ratio_vs_raw_upload`` = ingest MB/s / raw multipart upload MB/s (target ≥ 0.9); the ingest run is a
  first publication of its partition (every scheduled run; direct mode, see docs/INGESTION.md);
* ``ingest_republish_mb_per_s``: the same interval ingested again over its published partition (re-run or
  backfill: staged mode, each byte uploaded and then copied server-side), for information;
* ``ratio_vs_fetch_then_upload`` = ingest MB/s / (fetch + upload, done one after the other) MB/s — what a
  naive "download, then upload" job would achieve;
* memory: peak RSS above the ingesting process's baseline at each ``--memory-sizes-mb`` (target < 200 MB at
  1 GB and flat, i.e. independent of size).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench import bench_ingest_memory as memory_bench
from bench.common import airflow_env, finish, summary

MIB = 1024 * 1024
TARGET_RATIO = 0.9
TARGET_MEMORY_MB = memory_bench.TARGET_MB
RAW_KEY = "raw-baseline/blob.json"


def _pages_for(size_mb: int) -> int:
    return max(1, round(size_mb * MIB / (memory_bench.PER_PAGE * memory_bench.RECORD_BYTES)))


def _raw_child(s3_url: str, api_url: str, pages: int) -> None:
    """Child: fetch the pages (plain requests), then upload the same bytes with boto3 multipart."""
    import boto3
    import requests
    from botocore.config import Config

    from airbricks.local.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )
    s3.list_buckets()  # warm the client, as the ingest child does
    with tempfile.NamedTemporaryFile(prefix="bench-raw-", suffix=".json") as spill:
        started = time.perf_counter()
        with requests.Session() as http:
            for page in range(pages):  # hackernews style: page from 0
                response = http.get(f"{api_url}{memory_bench.PATH}", params={"page": page}, timeout=60)
                response.raise_for_status()
                spill.write(response.content)
        spill.flush()
        fetch_seconds = time.perf_counter() - started
        size = os.path.getsize(spill.name)
        started = time.perf_counter()
        s3.upload_file(spill.name, memory_bench.BUCKET, RAW_KEY)  # managed multipart (8 MiB parts)
        upload_seconds = time.perf_counter() - started
    head = s3.head_object(Bucket=memory_bench.BUCKET, Key=RAW_KEY)
    if head["ContentLength"] != size:
        raise RuntimeError(f"raw upload stored {head['ContentLength']} bytes, expected {size}")
    s3.delete_object(Bucket=memory_bench.BUCKET, Key=RAW_KEY)
    print(json.dumps({"bytes": size, "fetch_seconds": fetch_seconds, "upload_seconds": upload_seconds}))


def _ingest_child(s3_url: str, api_url: str, republish: bool = False) -> None:
    """Child: the memory benchmark's measured ingestion run, in a process that is already what an Airflow
    task process is when ``execute`` starts: Airflow imported and its metrics client initialised.

    Without this, the ingestion's metrics call (:func:`airbricks.metrics.record_ingested`) imports Airflow
    inside the measured window: ~80 MB and seconds that a real task never pays there.
    """
    from airbricks import metrics

    metrics._stats()
    memory_bench._ingest(s3_url, api_url, republish=republish)


class Servers:
    """The memory benchmark's servers process (S3 + synthetic pages), driven over its stdin protocol."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, memory_bench.__file__, "--servers"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdin is not None
        self.urls = json.loads(self.proc.stdout.readline())

    def serve_pages(self, pages: int) -> None:
        assert self.proc.stdout is not None
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"pages {pages}\n")
        self.proc.stdin.flush()
        if self.proc.stdout.readline().strip() != "ok":
            raise RuntimeError("servers process did not set up the synthetic pages")

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _child(self, args: list[str]) -> dict[str, Any]:
        child = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=self.env, check=False
        )
        if child.returncode != 0:
            raise RuntimeError(f"benchmark child {args[:2]} failed:\n{child.stderr[-4000:]}")
        return json.loads(child.stdout.strip().splitlines()[-1])

    def ingest(self, *, republish: bool = False) -> dict[str, Any]:
        return self._child(
            ["-m", "bench.bench_ingest_throughput", "--ingest-child", self.urls["s3"], self.urls["api"]]
            + (["--republish"] if republish else [])
        )

    def raw(self, pages: int) -> dict[str, Any]:
        return self._child(
            [
                "-m",
                "bench.bench_ingest_throughput",
                "--raw-child",
                self.urls["s3"],
                self.urls["api"],
                str(pages),
            ]
        )


def run(
    size_mb: int = 256, repeats: int = 3, memory_sizes_mb: tuple[int, ...] = (10, 1024)
) -> dict[str, Any]:
    spill = tempfile.mkdtemp(prefix="bench-moto-")
    env = {
        **airflow_env(),
        "MOTO_S3_DEFAULT_KEY_BUFFER_SIZE": str(64 * 1024),  # as the memory benchmark: objects spill to disk
        "TMPDIR": spill,
    }
    servers = Servers(env)
    ingest_mbps: list[float] = []
    republish_mbps: list[float] = []
    upload_mbps: list[float] = []
    fetch_mbps: list[float] = []
    serial_mbps: list[float] = []
    ratios_raw: list[float] = []
    ratios_serial: list[float] = []
    memory: dict[str, Any] = {}
    try:
        pages = _pages_for(size_mb)
        servers.serve_pages(pages)
        for _ in range(repeats):  # interleaved, so load changes hit both sides alike
            raw = servers.raw(pages)
            ingest = servers.ingest()  # first publication of the partition: what a scheduled run does
            republish = servers.ingest(republish=True)  # the same interval again: a re-run / backfill
            if not ingest["bytes"] == republish["bytes"] == raw["bytes"]:
                raise RuntimeError(
                    f"ingested {ingest['bytes']} bytes ({republish['bytes']} when re-published) but the raw "
                    f"baseline has {raw['bytes']}"
                )
            mb = raw["bytes"] / MIB
            ingest_mbps.append(mb / ingest["seconds"])
            republish_mbps.append(mb / republish["seconds"])
            upload_mbps.append(mb / raw["upload_seconds"])
            fetch_mbps.append(mb / raw["fetch_seconds"])
            serial_mbps.append(mb / (raw["fetch_seconds"] + raw["upload_seconds"]))
            ratios_raw.append(ingest_mbps[-1] / upload_mbps[-1])
            ratios_serial.append(ingest_mbps[-1] / serial_mbps[-1])
        for size in memory_sizes_mb:
            servers.serve_pages(_pages_for(size))
            r = servers.ingest()
            memory[f"{size}MB"] = {
                "ingested_mb": round(r["bytes"] / MIB, 1),
                "pages": r["pages"],
                "seconds": round(r["seconds"], 1),
                "mb_per_s": round(r["bytes"] / MIB / r["seconds"], 1),
                "baseline_rss_mb": round(r["baseline_rss"] / MIB, 1),
                "peak_above_baseline_mb": round((r["peak_rss"] - r["baseline_rss"]) / MIB, 1),
            }
    finally:
        servers.close()
        shutil.rmtree(spill, ignore_errors=True)
    ratio = summary(ratios_raw, 3)
    peaks = [entry["peak_above_baseline_mb"] for entry in memory.values()]
    memory_met = bool(peaks) and max(peaks) < TARGET_MEMORY_MB
    return {
        "target": f"throughput >= {TARGET_RATIO}x raw boto3 multipart upload; peak RSS < "
        f"{TARGET_MEMORY_MB} MB above baseline at every size (flat)",
        "size_mb": size_mb,
        "ingest_mb_per_s": summary(ingest_mbps, 2),
        "ingest_republish_mb_per_s": summary(republish_mbps, 2),
        "raw_upload_mb_per_s": summary(upload_mbps, 2),
        "api_fetch_mb_per_s": summary(fetch_mbps, 2),
        "fetch_then_upload_mb_per_s": summary(serial_mbps, 2),
        "ratio_vs_raw_upload": ratio,
        "ratio_vs_fetch_then_upload": summary(ratios_serial, 3),
        "memory": memory,
        "memory_growth_mb": round(max(peaks) - min(peaks), 1) if peaks else None,
        "throughput_met": ratio["median"] >= TARGET_RATIO,
        "memory_met": memory_met,
        "met": ratio["median"] >= TARGET_RATIO and memory_met,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256, help="size of each throughput run")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved throughput runs")
    parser.add_argument("--memory-sizes-mb", type=int, nargs="*", default=[10, 1024])
    parser.add_argument("--json", type=pathlib.Path, help="also write the result as JSON here")
    parser.add_argument(
        "--raw-child", nargs=3, metavar=("S3_URL", "API_URL", "PAGES"), help=argparse.SUPPRESS
    )
    parser.add_argument("--ingest-child", nargs=2, metavar=("S3_URL", "API_URL"), help=argparse.SUPPRESS)
    parser.add_argument("--republish", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ingest_child:
        _ingest_child(*args.ingest_child, republish=args.republish)
        return 0
    if args.raw_child:
        _raw_child(args.raw_child[0], args.raw_child[1], int(args.raw_child[2]))
        return 0
    return finish(run(args.size_mb, args.repeats, tuple(args.memory_sizes_mb)), args.json)


if __name__ == "__main__":
    sys.exit(main())
