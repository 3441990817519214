"""Backfill throughput: intervals per minute of ``make backfill`` at concurrency 1, 4 and 8.

    python -m bench.bench_backfill [--intervals 8] [--concurrency 1 4 8]

One local stack (``make backfill``'s own: the demo's stand-ins, the Databricks emulator and real ``airflow
standalone``, started once), then for each concurrency a backfill of the hackernews source over its own
fresh range of ``--intervals`` days (no level reuses another's partitions), through Airflow's backfill API
with ``max_active_runs`` = the concurrency. An interval counts when its ingestion run succeeded and its
Databricks processing run ended in success; wall time is from ``POST /api/v2/backfills`` to the last
interval done (Airflow's start-up excluded). The stack runs in a child process: it reroutes logging.

Target: none on throughput (stated in docs/PERFORMANCE.md: the figure depends on the machine and on the
processing DAG's ``max_active_runs`` = 4 and the bundle job's ``max_concurrent_runs`` = 4, which cap
processing at 4 whatever the backfill's concurrency). Met = every interval succeeded with 0 duplicates.
"""

from __future__ import annotations

import argparse
import datetime as dt
import pathlib
import subprocess
import sys
import tempfile
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.common import REPO, child_result, finish, print_child_result

FIRST_DAY = dt.date(2026, 10, 1)
SOURCE = "hackernews"


def measure(intervals: int, concurrencies: tuple[int, ...], work_dir: pathlib.Path) -> dict[str, Any]:
    """In the child: one stack, one backfill per concurrency over its own days."""
    from airbricks.local import backfill

    last_day = FIRST_DAY + dt.timedelta(days=intervals * len(concurrencies) - 1)
    sources = REPO / "dags" / "sources.yaml"
    local = backfill.local_stack(work_dir, REPO, FIRST_DAY, last_day, concurrency=max(concurrencies))
    rows = []
    with local:
        api = local.start([f"ingest_{SOURCE}", f"databricks_{SOURCE}_stories"])
        for n, concurrency in enumerate(concurrencies):
            first = FIRST_DAY + dt.timedelta(days=n * intervals)
            last = first + dt.timedelta(days=intervals - 1)
            request = backfill.parse_request(
                SOURCE, first.isoformat(), last.isoformat(), concurrency, sources_yaml=sources
            )
            report = backfill.run_backfill(api, request, timeout=1800)
            rows.append(
                {
                    "concurrency": concurrency,
                    "intervals": len(report.intervals),
                    "succeeded": len(report.intervals) - len(report.failed),
                    "manifests": report.manifests,
                    "databricks_runs": report.databricks_runs,
                    "duplicates": report.duplicates,
                    "wall_seconds": round(report.seconds, 1),
                    "intervals_per_minute": round(report.intervals_per_minute, 2),
                    "api_5xx_retried": report.api_errors,
                }
            )
    return {"rows": rows}


def run(intervals: int = 8, concurrencies: tuple[int, ...] = (1, 4, 8)) -> dict[str, Any]:
    """Measure in a child process; returns the section of ``bench/results.json``."""
    with tempfile.TemporaryDirectory(prefix="airbricks-bench-backfill-") as work:
        command = [sys.executable, "-m", "bench.bench_backfill", "--child", "--work-dir", work]
        command += ["--intervals", str(intervals), "--concurrency", *map(str, concurrencies)]
        child = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=3600, check=False)
        measured = child_result(child, "backfill benchmark")
    rows = measured["rows"]
    base = rows[0]["intervals_per_minute"] or None
    for row in rows:
        row["speedup_vs_first"] = round(row["intervals_per_minute"] / base, 2) if base else None
    correct = all(r["succeeded"] == r["intervals"] == intervals and r["duplicates"] == 0 for r in rows)
    return {
        "source": SOURCE,
        "intervals_per_level": intervals,
        "rows": rows,
        "processing_cap": "processing DAG max_active_runs 4, bundle job max_concurrent_runs 4",
        "target": "none on throughput; every interval succeeds, 0 duplicates",
        "met": correct,
        "headline": "; ".join(f"c={r['concurrency']}: {r['intervals_per_minute']}/min" for r in rows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intervals", type=int, default=8, help="days backfilled per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work-dir", type=pathlib.Path, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=pathlib.Path, help="also write the result here")
    args = parser.parse_args(argv)
    if args.child:
        print_child_result(measure(args.intervals, tuple(args.concurrency), args.work_dir))
        return 0
    return finish(run(args.intervals, tuple(args.concurrency)), args.json)


if __name__ == "__main__":
    sys.exit(main())
