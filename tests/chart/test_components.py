"""API server, scheduler, dag-processor and triggerer run with requests/limits and disruption budgets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

COMPONENTS = ("apiServer", "scheduler", "dagProcessor", "triggerer")
# Every container the chart runs for us, as the values path holding its `resources`.
RESOURCE_PATHS = (
    ("apiServer",),
    ("scheduler",),
    ("scheduler", "logGroomerSidecar"),
    ("dagProcessor",),
    ("dagProcessor", "logGroomerSidecar"),
    ("triggerer",),
    ("triggerer", "logGroomerSidecar"),
    ("workers", "kubernetes"),
    ("dags", "gitSync"),
    ("migrateDatabaseJob",),
    ("createUserJob",),
    ("cleanup",),
    ("pgbouncer",),
    ("pgbouncer", "metricsExporterSidecar"),
)


@pytest.mark.parametrize("layering", ["base+local", "base+prod"])
@pytest.mark.parametrize("component", COMPONENTS)
def test_component_enabled_with_pdb(
    layering: str, component: str, effective_airflow_values: Callable[[str], dict[str, Any]]
) -> None:
    values = effective_airflow_values(layering)[component]
    assert values.get("enabled", True) is True
    assert values["replicas"] >= (2 if layering == "base+prod" else 1)
    assert values["podDisruptionBudget"] == {"enabled": True, "config": {"maxUnavailable": 1}}


@pytest.mark.parametrize("layering", ["base+local", "base+prod"])
@pytest.mark.parametrize("path", RESOURCE_PATHS, ids=lambda path: ".".join(path))
def test_requests_and_limits(
    layering: str, path: tuple[str, ...], effective_airflow_values: Callable[[str], dict[str, Any]]
) -> None:
    values: Any = effective_airflow_values(layering)
    for key in path:
        values = values[key]
    resources = values["resources"]
    for bound in ("requests", "limits"):
        assert set(resources[bound]) == {"cpu", "memory"}, (path, bound)


def test_bundled_postgres_has_resources(effective_airflow_values: Callable[[str], dict[str, Any]]) -> None:
    resources = effective_airflow_values("base+local")["postgresql"]["primary"]["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_triggerer_needs_no_volume(effective_airflow_values: Callable[[str], dict[str, Any]]) -> None:
    assert effective_airflow_values("base+prod")["triggerer"]["persistence"]["enabled"] is False
