"""Every layering validates against the official chart 1.22.0 schema, and a typo is caught."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from chart_support import LAYERINGS, layered_values, merge_values


def _errors(schema: dict[str, Any], values: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(values)
    ]


@pytest.mark.parametrize("layering", sorted(LAYERINGS))
def test_layering_validates_against_official_schema(
    layering: str, strict_schema: dict[str, Any], effective_airflow_values: Callable[[str], dict[str, Any]]
) -> None:
    assert _errors(strict_schema, effective_airflow_values(layering)) == []


@pytest.mark.parametrize("layering", sorted(LAYERINGS))
def test_our_keys_alone_validate(layering: str, strict_schema: dict[str, Any]) -> None:
    """Our files without the chart defaults: catches a key we set with a wrong type that a default hides."""
    assert _errors(strict_schema, layered_values(layering)["airflow"]) == []


@pytest.mark.parametrize(
    ("typo", "expected"),
    [
        pytest.param({"scheduler": {"replicaz": 2}}, "scheduler", id="nested-key"),
        pytest.param({"dags": {"gitSync": {"subpath": "dags"}}}, "dags.gitSync", id="gitsync-key"),
        pytest.param({"exector": "KubernetesExecutor"}, "<root>", id="top-level-key"),
        pytest.param({"triggerer": {"replicas": "two"}}, "triggerer.replicas", id="wrong-type"),
    ],
)
def test_misspelled_key_fails(
    typo: dict[str, Any],
    expected: str,
    strict_schema: dict[str, Any],
    effective_airflow_values: Callable[[str], dict[str, Any]],
) -> None:
    errors = _errors(strict_schema, merge_values(effective_airflow_values("base+local"), typo))
    assert errors, f"schema accepted {typo}"
    assert any(error.startswith(f"{expected}:") for error in errors), errors


def test_official_schema_leaves_root_open(official_schema: dict[str, Any]) -> None:
    """Why the tests close the root: Helm itself would silently ignore `airflow.exector`."""
    assert "additionalProperties" not in official_schema
    assert _errors(official_schema, {"exector": "KubernetesExecutor"}) == []
