"""DAG parse cost: every file in ``dags/`` against a trivial one-task DAG file, measured in the same run.

    python -m bench.bench_parse [--rounds 7] [--fresh-rounds 5]

Two ways of parsing, both reported:

* ``processor`` (the target applies here): the way Airflow 3's DAG processor parses. One long-lived parent
  imports the DAG processor (as ``airflow dag-processor`` does), runs the ``airflow_local_settings.py`` the
  chart mounts (``airflowLocalSettings`` in chart/values.yaml: it preloads what our DAG files need, see
  airbricks/preload.py) and ``gc.freeze()``-s; each parse is the
  real :class:`airflow.dag_processing.processor.DagFileProcessorProcess` — the parent pre-imports the
  ``airflow.*`` modules the file names (``[dag_processor] parsing_pre_import_modules``), forks, and the child
  runs the real ``_parse_file`` (``BundleDagBag`` + serialisation) and sends the result back over the
  supervisor's socket. One warm-up parse of every file first, so the parent holds what a running DAG
  processor holds after its first loop. ``processor_bare`` is the same without the chart's local settings
  (a deployment that does not use our chart values): every parse imports the ``airbricks`` modules itself.
* ``fresh``: a new interpreter per parse (``python -c``: import Airflow, ``_parse_file``), i.e. what
  ``airflow dags list-import-errors``/CI checks pay. Airflow's own import dominates it.

Files are parsed in interleaved rounds (trivial, file 1, file 2, ..., trivial, ...), so load from other
processes hits every file alike. For each parse both wall time and CPU time (user+sys of the parsing
process, from ``getrusage(RUSAGE_CHILDREN)``) are recorded. Parsing is single-threaded and CPU-bound, so on
an idle machine CPU time equals wall time; on a shared machine CPU time is the figure that is not inflated
by other tenants, and the target is checked on it (wall time is reported next to it).

Target: every file ≤ 1.25x the trivial file (processor mode, median CPU time).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``bench`` importable
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.common import DAGS, REPO, airflow_env, child_result, finish, print_child_result, summary

TARGET_RATIO = 1.25

TRIVIAL_DAG = '''"""A trivial one-task DAG: the floor every DAG file is compared with (airflow dag)."""

import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG(dag_id="bench_trivial", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
    EmptyOperator(task_id="noop")
'''

CHART_VALUES = REPO / "chart" / "values.yaml"


def chart_local_settings() -> str:
    """The ``airflow_local_settings.py`` our chart mounts into every Airflow container."""
    import yaml

    values = yaml.safe_load(CHART_VALUES.read_text())
    return values["airflow"].get("airflowLocalSettings") or ""


def run_chart_local_settings() -> None:
    """Do what Airflow does with the chart's local settings when ``airflow dag-processor`` starts."""
    sys.argv = ["airflow", "dag-processor"]
    code = compile(chart_local_settings(), "airflow_local_settings.py", "exec")
    exec(code, {"__name__": "airflow_local_settings"})  # noqa: S102 - our own chart's settings file


# Runs in a fresh interpreter: the same work the DAG processor's child does, minus the fork.
FRESH_PARSE = """
import os, pathlib, sys
os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "client"
import structlog
from airflow.dag_processing.processor import DagFileParseRequest, _parse_file
path = pathlib.Path(sys.argv[1])
result = _parse_file(
    DagFileParseRequest(file=str(path), bundle_path=path.parent, bundle_name="bench", callback_requests=[]),
    structlog.get_logger(),
)
if result is None or result.import_errors or not result.serialized_dags:
    sys.exit(f"parse of {path} failed: {result and result.import_errors}")
"""


# Runs with ``-X importtime``: the parent's pre-imports first, then the parse; what is imported after the
# marker is what every forked parse of this file pays for.
EXPLAIN_PARSE = """
import os, pathlib, sys
import structlog
from airflow.dag_processing.processor import DagFileParseRequest, _parse_file, _pre_import_airflow_modules
import airflow.cli.commands.dag_processor_command, airflow.dag_processing.manager
import airflow.jobs.dag_processor_job_runner, airflow.providers.standard.operators.empty, airflow.sdk
from bench.bench_parse import run_chart_local_settings
path = pathlib.Path(sys.argv[1])
others = sys.argv[2:]
run_chart_local_settings()
for other in others + [str(path)]:  # steady state: the parent pre-imported every file's airflow.*
    _pre_import_airflow_modules(other, structlog.get_logger())
print("BENCH-PARSE-STARTS", file=sys.stderr, flush=True)
os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "client"
_parse_file(
    DagFileParseRequest(file=str(path), bundle_path=path.parent, bundle_name="bench", callback_requests=[]),
    structlog.get_logger(),
)
"""


def explain(path: str, top: int = 12, folder: pathlib.Path | None = None) -> list[dict[str, Any]]:
    """Top-level modules a forked parse of ``path`` imports (not pre-imported by the parent), slowest first.

    The parent is in its steady state: it pre-imported the ``airflow.*`` imports of every file of ``folder``
    (default: the file's folder). Uses ``python -X importtime``; times are cumulative per top-level import.
    """
    others = sorted(str(p) for p in (folder or pathlib.Path(path).parent).glob("*.py"))
    child = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", EXPLAIN_PARSE, path, *others],
        capture_output=True,
        text=True,
        env=airflow_env(),
        check=False,
    )
    if child.returncode != 0:
        raise RuntimeError(f"explain of {path} failed:\n{child.stderr[-4000:]}")
    after = child.stderr.split("BENCH-PARSE-STARTS", 1)[-1]
    rows = []
    for line in after.splitlines():
        if not line.startswith("import time:"):
            continue
        _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if not cumulative.isdigit():
            continue
        depth = (len(line.split("|")[2]) - len(line.split("|")[2].lstrip())) // 2
        if depth <= 1:  # modules the parse imports directly (depth 0 = from the DAG file's own code)
            rows.append({"module": name, "cumulative_ms": round(int(cumulative) / 1000, 1)})
    return sorted(rows, key=lambda row: -row["cumulative_ms"])[:top]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- processor mode (runs in its own child process, see main) ------------------------------------------
def _processor_child(files: list[str], rounds: int, local_settings: bool) -> dict[str, Any]:
    import gc
    import uuid

    # What `airflow dag-processor` has imported before it starts parsing (CLI command, job runner, manager).
    import airflow.cli.commands.dag_processor_command
    import airflow.dag_processing.manager
    import airflow.jobs.dag_processor_job_runner  # noqa: F401
    import structlog

    if local_settings:
        run_chart_local_settings()
    from airflow.dag_processing.processor import DagFileProcessorProcess
    from airflow.sdk.api.client import Client

    client = Client(base_url=None, token="", dry_run=True)  # parsing our DAGs makes no API calls
    log = structlog.get_logger()

    def parse_once(path: str) -> tuple[float, float, int]:
        file = pathlib.Path(path)
        cpu0, wall0 = _children_cpu(), time.perf_counter()
        with open(os.devnull, "wb") as devnull:
            proc = DagFileProcessorProcess.start(
                id=uuid.uuid4(),
                path=file,
                bundle_path=file.parent,
                bundle_name="bench",
                dag_file_rel_path=file.name,
                callbacks=[],
                logger=log,
                logger_filehandle=devnull,
                client=client,
            )
            while not proc.is_ready:
                proc._service_subprocess(max_wait_time=0.01)
        wall, cpu = time.perf_counter() - wall0, _children_cpu() - cpu0
        result = proc.parsing_result
        if result is None or result.import_errors or not result.serialized_dags:
            raise RuntimeError(f"parse of {path} failed: {result and result.import_errors}")
        return wall, cpu, len(result.serialized_dags)

    dag_counts = {path: parse_once(path)[2] for path in files}  # warm-up: the parent's steady state
    gc.freeze()  # as DagFileProcessorManager does before it starts forking
    samples: dict[str, dict[str, list[float]]] = {path: {"wall": [], "cpu": []} for path in files}
    for _ in range(rounds):
        for path in files:
            wall, cpu, _n = parse_once(path)
            samples[path]["wall"].append(wall)
            samples[path]["cpu"].append(cpu)
    return {"samples": samples, "dags": dag_counts}


def _measure_processor(
    files: list[str], rounds: int, env: dict[str, str], local_settings: bool = True
) -> dict[str, Any]:
    bare = [] if local_settings else ["--bare"]
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bench_parse",
            "--processor-child",
            *bare,
            "--rounds",
            str(rounds),
            *files,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    return child_result(child, "processor-mode")


def _measure_fresh(files: list[str], rounds: int, env: dict[str, str]) -> dict[str, Any]:
    samples: dict[str, dict[str, list[float]]] = {path: {"wall": [], "cpu": []} for path in files}
    for round_number in range(rounds + 1):  # round 0 warms the bytecode cache, not measured
        for path in files:
            cpu0, wall0 = _children_cpu(), time.perf_counter()
            child = subprocess.run(
                [sys.executable, "-c", FRESH_PARSE, path],
                capture_output=True,
                text=True,
                env=env,
                check=False,
            )
            wall, cpu = time.perf_counter() - wall0, _children_cpu() - cpu0
            if child.returncode != 0:
                raise RuntimeError(f"fresh parse of {path} failed:\n{child.stderr[-4000:]}")
            if round_number == 0:
                continue
            samples[path]["wall"].append(wall)
            samples[path]["cpu"].append(cpu)
    return {"samples": samples}


def _ratios(raw: dict[str, Any], trivial: str, files: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    base = {kind: summary(raw["samples"][trivial][kind])["median"] for kind in ("wall", "cpu")}
    for path in [trivial, *files]:
        entry: dict[str, Any] = {}
        for kind in ("wall", "cpu"):
            stats = summary(raw["samples"][path][kind])
            entry[f"{kind}_s"] = stats
            entry[f"{kind}_ratio"] = round(stats["median"] / base[kind], 3)
        out[path] = entry
    folder: dict[str, Any] = {}
    for kind in ("wall", "cpu"):
        total = sum(out[path][f"{kind}_s"]["median"] for path in files)
        folder[f"{kind}_s"] = round(total, 4)
        folder[f"{kind}_ratio"] = round(total / (base[kind] * len(files)), 3)
    out["__folder__"] = folder
    return out


def run(rounds: int = 7, fresh_rounds: int = 5, dags: pathlib.Path = DAGS) -> dict[str, Any]:
    """Measure every ``dags/*.py`` in both modes; returns the JSON-able result with pass/fail."""
    workdir = tempfile.mkdtemp(prefix="airbricks-bench-parse-")
    try:
        trivial_dir = pathlib.Path(workdir, "trivial")
        trivial_dir.mkdir()
        trivial = str(trivial_dir / "bench_trivial_dag.py")
        pathlib.Path(trivial).write_text(TRIVIAL_DAG)
        files = sorted(str(path) for path in dags.glob("*.py") if not path.name.startswith("_"))
        env = airflow_env(str(pathlib.Path(workdir, "airflow-home")))
        # Bytecode caching on: in the image, airbricks is an installed wheel whose .pyc exist, so a parse
        # must not pay for compiling it (PYTHONDONTWRITEBYTECODE=1 would make every parse compile every
        # airbricks module from source). The warm-up parse writes the (git-ignored) __pycache__ entries.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        processor_raw = _measure_processor([trivial, *files], rounds, env)
        bare_raw = _measure_processor([trivial, *files], rounds, env, local_settings=False)
        fresh_raw = _measure_fresh([trivial, *files], fresh_rounds, env) if fresh_rounds else None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    def named(table: dict[str, Any]) -> dict[str, Any]:
        return {
            ("trivial" if key == trivial else pathlib.Path(key).name if key != "__folder__" else "folder"): v
            for key, v in table.items()
        }

    processor = named(_ratios(processor_raw, trivial, files))
    for name, count in named(processor_raw["dags"]).items():
        processor[name]["dags"] = count
        # A file defining n DAGs serialises n DAGs: the per-DAG ratio says whether each DAG is cheap.
        processor[name]["cpu_ratio_per_dag"] = round(processor[name]["cpu_ratio"] / max(1, count), 3)
    result: dict[str, Any] = {
        "target": f"every DAG file <= {TARGET_RATIO}x the trivial DAG file (processor mode, median CPU time)",
        "target_ratio": TARGET_RATIO,
        "processor": processor,
        "processor_bare": named(_ratios(bare_raw, trivial, files)),
        "fresh": named(_ratios(fresh_raw, trivial, files)) if fresh_raw else None,
    }
    misses = {
        name: entry["cpu_ratio"]
        for name, entry in processor.items()
        if name not in ("trivial", "folder") and entry["cpu_ratio"] > TARGET_RATIO
    }
    result["misses"] = misses
    # For each file over the target: what its forked parse imports that the parent did not pre-import.
    result["explain"] = {name: explain(str(dags / name), top=6) for name in misses}
    result["met"] = not misses
    return result


def format_table(result: dict[str, Any]) -> str:
    lines = [
        f"{'file':<36} {'DAGs':>4} {'proc CPU ms':>11} {'x':>6} {'proc wall ms':>12} {'x':>6}"
        f" {'bare CPU ms':>11} {'x':>6} {'fresh CPU ms':>12} {'x':>6}"
    ]
    fresh = result.get("fresh") or {}
    bare = result.get("processor_bare") or {}
    for name, entry in result["processor"].items():
        f, b = fresh.get(name, {}), bare.get(name, {})
        lines.append(
            f"{name:<36} {entry.get('dags', ''):>4} "
            f"{_ms(entry['cpu_s']):>11} {entry['cpu_ratio']:>6.2f} {_ms(entry['wall_s']):>12} "
            f"{entry['wall_ratio']:>6.2f} {_ms(b['cpu_s']) if b else '-':>11} "
            f"{b.get('cpu_ratio', float('nan')):>6.2f} {_ms(f['cpu_s']) if f else '-':>12} "
            f"{f.get('cpu_ratio', float('nan')):>6.2f}"
        )
    return "\n".join(lines)


def _ms(value: Any) -> str:
    seconds = value["median"] if isinstance(value, dict) else value
    return f"{seconds * 1000:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds in processor mode")
    parser.add_argument(
        "--fresh-rounds", type=int, default=5, help="rounds in fresh-interpreter mode (0: skip)"
    )
    parser.add_argument("--json", type=pathlib.Path, help="also write the result as JSON here")
    parser.add_argument(
        "--dags", type=pathlib.Path, default=DAGS, help="DAG folder to measure (default dags/)"
    )
    parser.add_argument("--explain", metavar="DAG_FILE", help="list what a forked parse of this file imports")
    parser.add_argument("--processor-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.processor_child:
        print_child_result(_processor_child(args.files, args.rounds, local_settings=not args.bare))
        return 0
    if args.explain:
        for row in explain(args.explain):
            print(f"{row['cumulative_ms']:>9.1f} ms  {row['module']}")
        return 0
    result = run(args.rounds, args.fresh_rounds, args.dags.resolve())
    verdict = json.dumps({"met": result["met"], "misses": result["misses"]})
    return finish(result, args.json, text=f"{format_table(result)}\n{verdict}")


if __name__ == "__main__":
    sys.exit(main())
