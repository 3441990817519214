"""Helpers for the umbrella chart tests (chart/): values layering, the reference schema, offline rendering.

Values are layered the way `helm upgrade -f values.yaml -f values-<env>.yaml` layers them (maps merge, lists
and scalars replace) on top of the official chart defaults, then validated against the official
values.schema.json of chart 1.22.0 (found by ``reference_chart.official_chart_reference``). The real chart
archive is only needed by test_render.py.
"""

from __future__ import annotations

import copy
import pathlib
import shutil
from collections import Counter
from typing import Any

import yaml
from reference_chart import official_chart_reference, packaged_chart

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "chart"
AIRFLOW_CHART_ARCHIVE_NAME = "airflow-1.22.0.tgz"
LAYERINGS: dict[str, tuple[str, ...]] = {
    "base": ("values.yaml",),
    "base+local": ("values.yaml", "values-local.yaml"),
    "base+prod": ("values.yaml", "values-prod.yaml"),
    # kind's optional local-dags mode (AIRBRICKS_LOCAL_DAGS=1 make kind-up)
    "base+local+local-dags": ("values.yaml", "values-local.yaml", "values-local-dags.yaml"),
}
# The image tag is always passed with --set at deploy time; tests pass a fake git SHA the same way.
DEPLOY_TIME_TAG = "0123456789abcdef0123456789abcdef01234567"
KUBERNETES_VERSION = "1.33"
RELEASE = "airbricks"
NAMESPACE = "airbricks"


def merge_values(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Helm's coalescing of two values files: nested maps merge, everything else (lists too) replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_values(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_yaml(path: pathlib.Path) -> dict[str, Any]:
    with path.open() as handle:
        return yaml.safe_load(handle) or {}


def layered_values(layering: str, *extra: dict[str, Any]) -> dict[str, Any]:
    """The umbrella values of one layering (what the user passes with -f), plus optional --set dicts."""
    values: dict[str, Any] = {}
    for name in LAYERINGS[layering]:
        values = merge_values(values, load_yaml(CHART_DIR / name))
    for override in extra:
        values = merge_values(values, override)
    return values


def require_reference() -> pathlib.Path:
    """The official chart's schema + defaults directory, or a loud failure (never a silent skip)."""
    return official_chart_reference()


def airflow_chart_archive() -> pathlib.Path | None:
    return packaged_chart()


def prepare_chart(work_dir: pathlib.Path, archive: pathlib.Path) -> pathlib.Path:
    """A copy of chart/ with the official chart archive in its charts/ (never the checkout's own)."""
    chart_copy = work_dir / "airbricks"
    if not chart_copy.exists():
        shutil.copytree(CHART_DIR, chart_copy, ignore=shutil.ignore_patterns("charts"))
        (chart_copy / "charts").mkdir()
        shutil.copy(archive, chart_copy / "charts" / AIRFLOW_CHART_ARCHIVE_NAME)
    return chart_copy


def render_chart(
    work_dir: pathlib.Path, archive: pathlib.Path, values: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """Render the umbrella chart with the real official chart as its dependency, offline (helm-python-sdk).

    A copy is rendered so that a chart archive given through AIRBRICKS_AIRFLOW_CHART_TGZ never lands in
    the checkout. Returns (template path, object) pairs, NOTES.txt excluded (Helm does not apply it).
    """
    import helm_python  # imported here: the native library is only needed by render tests

    chart_copy = prepare_chart(work_dir, archive)
    with helm_python.Chart.load(chart_copy) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects: list[tuple[str, dict[str, Any]]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend((path, doc) for doc in yaml.safe_load_all(text) if doc)
    return objects


def kinds(objects: list[tuple[str, dict[str, Any]]]) -> Counter[str]:
    return Counter(obj["kind"] for _, obj in objects)
