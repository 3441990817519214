"""What Airflow and airbricks emit: documented names, Stats call sites in the installed source."""

from __future__ import annotations

import functools
import pathlib
import re
from typing import Any

from exporter_model import expand

from airbricks import metrics

DATA_DIR = pathlib.Path(__file__).parent / "data"
DOCUMENTED_FILE = DATA_DIR / "airflow-3.3.2-metrics.txt"
STATSD_PREFIX = "airflow."
_TYPE = {"counter": "counter", "gauge": "gauge", "timer": "observer"}


@functools.cache
def documented() -> dict[str, str]:
    """{name: counter|gauge|timer} from the embedded copy of Airflow 3.3.2's documented metrics."""
    entries: dict[str, str] = {}
    for line in DOCUMENTED_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            metric_type, name = line.split()
            entries[name] = metric_type
    return entries


def airflow_source_root() -> pathlib.Path:
    import airflow

    return pathlib.Path(airflow.__file__).parent


@functools.cache
def stats_call_patterns() -> list[re.Pattern[str]]:
    """First arguments of every ``stats.incr/decr/gauge/timing/timer`` call in the installed Airflow source.

    f-string names (``f"ti.{state}"``) become patterns with one dot-free part per placeholder. Executors
    build their gauge names with ``_get_metric_name("executor.open_slots")``, counted as call sites too.
    """
    call = re.compile(
        r"\b(?:[Ss]tats\.(?:incr|decr|gauge|timing|timer)|_get_metric_name)\(\s*(f?)(['\"])([^'\"]+)\2"
    )
    patterns: set[str] = set()
    for path in airflow_source_root().rglob("*.py"):
        text = path.read_text(errors="replace")
        for is_fstring, _, name in call.findall(text):
            pattern = re.escape(name)
            if is_fstring:
                pattern = re.sub(r"\\\{[^}]*\\\}", "[^.]+", pattern)
            patterns.add(f"^{pattern}$")
    return [re.compile(pattern) for pattern in sorted(patterns)]


def emitted_by_source(name: str) -> bool:
    return any(pattern.match(name) for pattern in stats_call_patterns())


def airflow_emitted() -> dict[str, str]:
    """{``airflow.<name>``: counter|gauge|observer} for every documented name without placeholders."""
    return {
        f"{STATSD_PREFIX}{name}": _TYPE[metric_type]
        for name, metric_type in documented().items()
        if "{" not in name
    }


def airbricks_emitted() -> dict[str, str]:
    return {f"{STATSD_PREFIX}{name}": metric_type for name, metric_type in metrics.METRIC_TYPES.items()}


def mapped_series(mappings: list[dict[str, Any]]) -> set[str]:
    """Prometheus series the exporter produces, through our rules, from everything emitted."""
    return expand(mappings, {**airflow_emitted(), **airbricks_emitted()})
