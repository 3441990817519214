"""Shared helpers of the benchmarks: statistics, an isolated Airflow environment, machine facts, the
result hand-off from a benchmark's child process and the end of every benchmark's ``main()``."""

from __future__ import annotations

import atexit
import datetime
import json
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from airbricks.ingestion.yaml_cache import CACHE_DIR_ENV
from airbricks.local.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY

REPO = pathlib.Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
#: Prefix of the stdout line on which a benchmark's child process hands its result (JSON) to the parent.
RESULT_MARK = "BENCH-RESULT "


def print_child_result(result: Any) -> None:
    """In a benchmark's child process: hand ``result`` to the parent (see :func:`child_result`)."""
    print(RESULT_MARK + json.dumps(result, default=str), flush=True)


def child_result(child: subprocess.CompletedProcess[str], what: str) -> Any:
    """The result the finished ``child`` handed over last; raises naming ``what`` when it handed none."""
    for line in reversed(child.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    raise RuntimeError(f"{what} child failed ({child.returncode}):\n{child.stderr[-4000:]}")


def finish(result: dict[str, Any], json_path: pathlib.Path | None, *, text: str | None = None) -> int:
    """The end of a benchmark's ``main()``: write ``result`` to ``json_path`` (``--json``) when given, print
    ``text`` (default: the result as JSON), and return the exit status: 0 when the targets are met (a
    result that states none, like ``--db`` analysis of a past demo, counts as met)."""
    if json_path:
        json_path.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2) if text is None else text)
    return 0 if result.get("met", True) else 1


def summary(values: Sequence[float], digits: int = 4) -> dict[str, Any]:
    """Median and spread of repeated measurements (spread = min..max, and the interquartile range)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no measurements")
    if len(ordered) >= 4:
        q1, _, q3 = statistics.quantiles(ordered, n=4)
    else:
        q1, q3 = ordered[0], ordered[-1]
    return {
        "median": round(statistics.median(ordered), digits),
        "min": round(ordered[0], digits),
        "max": round(ordered[-1], digits),
        "iqr": round(q3 - q1, digits),
        "n": len(ordered),
    }


_default_home: str | None = None


def _shared_home() -> str:
    """One throw-away AIRFLOW_HOME per benchmark process, removed when it exits."""
    global _default_home
    if _default_home is None:
        _default_home = tempfile.mkdtemp(prefix="airbricks-bench-airflow-")
        atexit.register(shutil.rmtree, _default_home, ignore_errors=True)
    return _default_home


def airflow_env(home: str | None = None) -> dict[str, str]:
    """Environment for a child process running Airflow code: throw-away AIRFLOW_HOME, repo on the path.

    No database is needed for parsing or for running operator code directly; the SQLite URL only keeps
    Airflow from looking anywhere else.
    """
    home = home or _shared_home()
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        # The parsed-sources.yaml cache starts empty with the home: a parse benchmark's warm-up fills it.
        CACHE_DIR_ENV: os.path.join(home, "sources-yaml-cache"),
        # The local S3 server's placeholders: no real AWS credential can ever be picked up.
        "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
    }
    env.pop("AWS_PROFILE", None)
    return env


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU, memory, load, versions, date."""
    cpu_model = platform.processor() or ""
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total = None
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = f"{int(line.split()[1]) // 1024} MiB"
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "memory": mem_total,
        "load_average_1_5_15": _load(),
        "python": sys.version.split()[0],
        "versions": {
            name: _version(name)
            for name in (
                "apache-airflow",
                "apache-airflow-task-sdk",
                "apache-airflow-providers-amazon",
                "apache-airflow-providers-databricks",
                "boto3",
                "moto",
                "pyspark",
            )
        },
    }
