"""Fixtures for the umbrella chart tests (chart/), in the style of the official chart's own tests."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from chart_support import DEPLOY_TIME_TAG, layered_values, load_yaml, merge_values, require_reference


@pytest.fixture(scope="session")
def official_schema() -> dict[str, Any]:
    """The official schema exactly as Helm applies it (root object open)."""
    return json.loads((require_reference() / "values.schema.json").read_text())


@pytest.fixture(scope="session")
def strict_schema(official_schema: dict[str, Any]) -> dict[str, Any]:
    """The official schema with its root closed: Helm ignores a misspelled top-level key, our tests do not."""
    schema = copy.deepcopy(official_schema)
    schema["additionalProperties"] = False
    return schema


@pytest.fixture(scope="session")
def official_defaults() -> dict[str, Any]:
    return load_yaml(require_reference() / "values.yaml")


@pytest.fixture(scope="session")
def effective_airflow_values(official_defaults: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    """What the airflow subchart really receives for a layering: its defaults coalesced with ours."""

    def _effective(layering: str) -> dict[str, Any]:
        ours = layered_values(layering, {"airflow": {"images": {"airflow": {"tag": DEPLOY_TIME_TAG}}}})
        return merge_values(official_defaults, ours["airflow"])

    return _effective
