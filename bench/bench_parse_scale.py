"""DAG parsing at scale: 10, 100 and 300 generated sources in ``sources.yaml``, one DAG file each.

    python -m bench.bench_parse_scale [--sources 10 100 300] [--rounds 3]

For each count N a throw-away DAG folder gets a ``sources.yaml`` whose ``defaults`` are the repo's and whose
N sources are copies of the repo's ``github`` source under new names, and one ``ingest_<name>.py`` per source
(a copy of ``dags/ingest_github.py`` naming it): how the folder looks when N sources are onboarded.
Parsing is the real DAG-processor path of :mod:`bench.bench_parse` (long-lived parent with the chart's local
settings, forked ``_parse_file`` per file, CPU time of the parsing child):

* ``loop_cpu_seconds``: one DAG-processor loop, every file of the folder parsed once (after a warm-up loop);
* ``worst_ratio``: median CPU of the first, middle and last generated file (``--rounds`` interleaved rounds)
  against the trivial one-task DAG file of the same run; the worst of the three.

Target: the loop grows linearly with N (per-file cost independent of N), and every file ≤ 1.25x trivial at
the largest N.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import sys
import tempfile
from typing import Any

import yaml

if __package__ in (None, ""):
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.bench_parse import TARGET_RATIO, TRIVIAL_DAG, _measure_processor
from bench.common import DAGS, airflow_env, summary

TEMPLATE_SOURCE = "github"


def generate_folder(folder: pathlib.Path, count: int, dags: pathlib.Path = DAGS) -> list[pathlib.Path]:
    """Write ``sources.yaml`` with ``count`` copies of the template source and one DAG file per source."""
    document = yaml.safe_load((dags / "sources.yaml").read_text())
    template = document["sources"][TEMPLATE_SOURCE]
    document["sources"] = {f"gen{i:03d}": template for i in range(count)}
    folder.mkdir(parents=True, exist_ok=True)
    # no anchors/aliases: every source written out in full, as people write them
    (folder / "sources.yaml").write_text(yaml.dump(document, Dumper=_NoAliases, sort_keys=False))
    dag_template = (dags / f"ingest_{TEMPLATE_SOURCE}.py").read_text()
    selector = f'"{TEMPLATE_SOURCE}")'
    if selector not in dag_template:
        raise RuntimeError(f"dags/ingest_{TEMPLATE_SOURCE}.py no longer selects its source with {selector}")
    files = []
    for name in document["sources"]:
        path = folder / f"ingest_{name}.py"
        path.write_text(dag_template.replace(selector, f'"{name}")'))
        files.append(path)
    return files


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def linear_fit_error(points: dict[int, float]) -> float | None:
    """Largest relative deviation of ``points`` from the line through the origin fitted by least squares.

    Per-file cost independent of N means loop(N) = c * N: 0 is exactly that, 0.2 a point 20 % off it.
    """
    usable = [(x, y) for x, y in points.items() if x > 0]
    if len(usable) < 2:
        return None
    c = sum(x * y for x, y in usable) / sum(x * x for x, _ in usable)
    return max(abs(y - c * x) / (c * x) for x, y in usable)


def run(counts: tuple[int, ...] = (10, 100, 300), rounds: int = 3) -> dict[str, Any]:
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="airbricks-bench-parse-scale-"))
    rows = []
    try:
        trivial = workdir / "trivial" / "bench_trivial_dag.py"
        trivial.parent.mkdir()
        trivial.write_text(TRIVIAL_DAG)
        env = airflow_env(str(workdir / "airflow-home"))
        env.pop("PYTHONDONTWRITEBYTECODE", None)  # as in bench_parse: the image has compiled bytecode
        for count in counts:
            print(f"bench | parse_scale: {count} sources", flush=True)
            files = generate_folder(workdir / f"dags-{count}", count)
            loop = _measure_processor([str(f) for f in files], 1, env)
            loop_cpu = sum(loop["samples"][str(f)]["cpu"][0] for f in files)
            sample = [files[0], files[len(files) // 2], files[-1]]
            sampled = _measure_processor([str(trivial), *map(str, dict.fromkeys(sample))], rounds, env)
            base = summary(sampled["samples"][str(trivial)]["cpu"])["median"]
            ratios = {
                pathlib.Path(path).name: round(summary(s["cpu"])["median"] / base, 3)
                for path, s in sampled["samples"].items()
                if path != str(trivial)
            }
            rows.append(
                {
                    "sources": count,
                    "loop_cpu_seconds": round(loop_cpu, 2),
                    "cpu_ms_per_file": round(1000 * loop_cpu / count, 1),
                    "trivial_cpu_ms": round(1000 * base, 1),
                    "ratios": ratios,
                    "worst_ratio": max(ratios.values()),
                }
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    worst_at_largest = max(rows, key=lambda r: r["sources"])["worst_ratio"]
    fit = linear_fit_error({r["sources"]: r["loop_cpu_seconds"] for r in rows})
    return {
        "target": f"loop linear in N; every file <= {TARGET_RATIO}x trivial at N = {max(counts)}",
        "rows": rows,
        "linear_fit_error": None if fit is None else round(fit, 3),
        "worst_ratio_at_largest": worst_at_largest,
        "met": worst_at_largest <= TARGET_RATIO and fit is not None and fit <= 0.25,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, nargs="+", default=[10, 100, 300])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=pathlib.Path, help="also write the result as JSON here")
    args = parser.parse_args()
    result = run(tuple(args.sources), args.rounds)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
