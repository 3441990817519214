"""The values files layer as documented: base first, one environment file, lists set in one place only."""

from __future__ import annotations

from typing import Any

import pytest
from chart_support import CHART_DIR, LAYERINGS, load_yaml

ENVIRONMENT_FILES = ("values-local.yaml", "values-prod.yaml")


def _list_paths(values: Any, prefix: str = "") -> set[str]:
    """Dotted paths of every list in a values tree (Helm replaces lists instead of merging them)."""
    if isinstance(values, dict):
        found: set[str] = set()
        for key, value in values.items():
            found |= _list_paths(value, f"{prefix}.{key}" if prefix else key)
        return found
    return {prefix} if isinstance(values, list) else set()


def test_layerings_are_the_documented_three() -> None:
    assert LAYERINGS == {
        "base": ("values.yaml",),
        "base+local": ("values.yaml", "values-local.yaml"),
        "base+prod": ("values.yaml", "values-prod.yaml"),
        "base+local+local-dags": ("values.yaml", "values-local.yaml", "values-local-dags.yaml"),
    }
    for name in ("values.yaml", *ENVIRONMENT_FILES):
        assert (CHART_DIR / name).is_file(), name


@pytest.mark.parametrize("environment_file", ENVIRONMENT_FILES)
def test_no_list_is_set_in_both_base_and_environment(environment_file: str) -> None:
    """A list in both files would silently drop the base entries (e.g. base env vars lost on kind)."""
    base_lists = _list_paths(load_yaml(CHART_DIR / "values.yaml"))
    overlap = base_lists & _list_paths(load_yaml(CHART_DIR / environment_file))
    assert overlap == set()


@pytest.mark.parametrize("name", ["values.yaml", *ENVIRONMENT_FILES])
def test_everything_is_under_the_airflow_subchart_key(name: str) -> None:
    """The umbrella passes `airflow:` to the official chart; other top-level keys are the umbrella's own."""
    values = load_yaml(CHART_DIR / name)
    assert "airflow" in values
    assert set(values) <= {"airflow", "global", "monitoring"}


def test_statsd_is_left_to_the_observability_component() -> None:
    for name in ("values.yaml", *ENVIRONMENT_FILES):
        values = load_yaml(CHART_DIR / name)
        assert "statsd" not in values, f"{name}: top-level statsd belongs to the observability component"
