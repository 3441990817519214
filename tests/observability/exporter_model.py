"""The parts of the Prometheus StatsD exporter's behaviour the mappings rely on, to test them offline.

No statsd_exporter binary can be installed here (it is neither on PyPI nor in Debian bookworm), so the
tests apply the mapping rules with this model of its documented semantics (statsd_exporter README,
"Metric Mapping and Configuration" and "Tagging Extensions"):

- a line is ``name[,tag=value...]:value|type`` (InfluxDB-style tags, parsed by default);
- ``c`` is a counter, ``g`` a gauge, ``ms``/``h``/``d`` an observer (timers in ms become seconds);
- a glob ``*`` matches one dot-free part of the name, ``$1``/``${1}`` in ``name``/``labels`` refer to it;
- ``match_metric_type`` restricts a rule to counter / gauge / observer;
- tags become labels next to the rule's own labels.

The model is deliberately strict where the real exporter is lenient: the tests require that exactly one
rule matches each emitted metric, so rule order can never matter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_TYPES = {"c": "counter", "g": "gauge", "ms": "observer", "h": "observer", "d": "observer"}
PROMETHEUS_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
PROMETHEUS_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class StatsdEvent:
    name: str
    tags: dict[str, str]
    value: float
    metric_type: str  # counter | gauge | observer


@dataclass(frozen=True)
class PrometheusSample:
    name: str
    labels: dict[str, str]
    value: float
    metric_type: str
    observer: str | None  # histogram | summary for observers


def parse_line(line: str) -> StatsdEvent:
    """One StatsD line with InfluxDB-style tags, e.g. ``airflow.ti.finish,dag_id=d,state=failed:1|c``."""
    head, _, rest = line.partition(":")
    value_text, _, type_part = rest.partition("|")
    statsd_type = type_part.split("|")[0]
    name, *tag_parts = head.split(",")
    tags = dict(part.split("=", 1) for part in tag_parts)
    value = float(value_text)
    if statsd_type == "ms":
        value /= 1000.0
    return StatsdEvent(name=name, tags=tags, value=value, metric_type=_TYPES[statsd_type])


def glob_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "^" + ".".join(re.escape(p).replace(r"\*", "([^.]+)") for p in pattern.split(".")) + "$"
    )


def _substitute(template: str, groups: tuple[str, ...]) -> str:
    def group(match: re.Match[str]) -> str:
        return groups[int(match.group(1) or match.group(2)) - 1]

    return re.sub(r"\$\{(\d+)\}|\$(\d+)", group, template)


def matching_rules(mappings: list[dict[str, Any]], name: str, metric_type: str) -> list[dict[str, Any]]:
    found = []
    for rule in mappings:
        if rule.get("match_type", "glob") != "glob":
            raise AssertionError(f"model only handles glob rules, got {rule}")
        wanted = rule.get("match_metric_type")
        if wanted and wanted != metric_type:
            continue
        if glob_regex(rule["match"]).match(name):
            found.append(rule)
    return found


def apply(mappings: list[dict[str, Any]], event: StatsdEvent) -> PrometheusSample:
    """The Prometheus sample the exporter makes of ``event``; fails unless exactly one rule matches."""
    rules = matching_rules(mappings, event.name, event.metric_type)
    assert len(rules) == 1, f"{event.name} ({event.metric_type}) matched {len(rules)} rules: {rules}"
    rule = rules[0]
    groups = glob_regex(rule["match"]).match(event.name).groups()  # type: ignore[union-attr]
    labels = {key: _substitute(str(value), groups) for key, value in (rule.get("labels") or {}).items()}
    labels.update(event.tags)
    observer = rule.get("observer_type", "summary") if event.metric_type == "observer" else None
    return PrometheusSample(
        _substitute(rule["name"], groups), labels, event.value, event.metric_type, observer
    )


def expand(mappings: list[dict[str, Any]], emitted: dict[str, str]) -> set[str]:
    """Prometheus series names the rules make of ``emitted`` ({statsd name: counter|gauge|observer}).

    Histograms also give ``_bucket``/``_sum``/``_count``, summaries ``_sum``/``_count``.
    """
    names: set[str] = set()
    for statsd_name, metric_type in emitted.items():
        if not matching_rules(mappings, statsd_name, metric_type):
            continue  # unmapped: the exporter names it itself; dashboards and rules do not use those
        sample = apply(mappings, StatsdEvent(statsd_name, {}, 0.0, metric_type))
        names.add(sample.name)
        if sample.observer == "histogram":
            names.update(f"{sample.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        elif sample.observer == "summary":
            names.update(f"{sample.name}{suffix}" for suffix in ("_sum", "_count"))
    return names


_PROMQL_METRIC = re.compile(r"\b((?:airflow|airbricks)_[a-zA-Z0-9_:]+)")


def promql_metrics(expr: str) -> set[str]:
    """Metric names used in a PromQL expression (all airbricks/Airflow metrics share these prefixes)."""
    return set(_PROMQL_METRIC.findall(expr))
