"""Executor, Airflow version and image: one version everywhere, the tag always set at deploy time."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Callable
from typing import Any

import pytest
from chart_support import CHART_DIR, REPO_ROOT, layered_values

DOCKERFILE = REPO_ROOT / "cicd" / "Dockerfile"


def _base_image_version() -> str:
    match = re.search(r"^FROM\s+apache/airflow:(\d+\.\d+\.\d+)-python3\.11", DOCKERFILE.read_text(), re.M)
    assert match, "cicd/Dockerfile must build FROM apache/airflow:<version>-python3.11"
    return match.group(1)


@pytest.mark.parametrize("layering", ["base+local", "base+prod"])
def test_kubernetes_executor(
    layering: str, effective_airflow_values: Callable[[str], dict[str, Any]]
) -> None:
    values = effective_airflow_values(layering)
    assert values["executor"] == "KubernetesExecutor"
    assert values["redis"]["enabled"] is False
    assert values["flower"]["enabled"] is False


def test_airflow_version_matches_the_image() -> None:
    base = layered_values("base")["airflow"]
    assert base["airflowVersion"] == _base_image_version() == "3.3.2"


def test_requirements_pin_the_same_airflow() -> None:
    pins = (REPO_ROOT / "requirements.txt").read_text()
    assert f"apache-airflow=={_base_image_version()}" in pins.splitlines()


def test_no_default_image_tag_anywhere() -> None:
    for layering in ("base", "base+local", "base+prod"):
        image = layered_values(layering)["airflow"]["images"]["airflow"]
        assert image["tag"] is None, layering
        assert "digest" not in image
    # The chart's own fallback is the upstream image of the same version, never a moving tag.
    assert layered_values("base")["airflow"]["defaultAirflowTag"] == "3.3.2"


def test_image_repository_per_environment() -> None:
    assert layered_values("base")["airflow"]["images"]["airflow"]["repository"] is None
    assert layered_values("base+local")["airflow"]["images"]["airflow"]["repository"] == "airbricks-airflow"
    prod = layered_values("base+prod")["airflow"]["images"]["airflow"]["repository"]
    assert re.fullmatch(r"\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/airbricks-airflow", prod), prod


def _render_guard(tmp_path: pathlib.Path, values: dict[str, Any]) -> str:
    """Render only the umbrella's own templates (no dependency needed) and return the error, if any."""
    import shutil

    import helm_python

    chart_copy = tmp_path / "airbricks"
    shutil.copytree(CHART_DIR, chart_copy, ignore=shutil.ignore_patterns("charts"))
    # Without charts/ Helm renders the parent's templates only, which is all this test needs.
    with helm_python.Chart.load(chart_copy) as chart:
        try:
            chart.render(values, name="airbricks", namespace="airbricks")
        except helm_python.HelmError as error:
            return str(error)
    return ""


@pytest.mark.parametrize(
    ("layering", "tag", "expected_error"),
    [
        ("base", "", "airflow.images.airflow.repository is empty"),
        ("base+prod", "", "airflow.images.airflow.tag is empty"),
        ("base+local", "", "airflow.images.airflow.tag is empty"),
        ("base+prod", "0123abcd", ""),
        ("base+local", "sha-0123abcd", ""),
    ],
)
def test_render_refuses_an_image_without_tag(
    tmp_path: pathlib.Path, layering: str, tag: str, expected_error: str
) -> None:
    values = layered_values(layering, {"airflow": {"images": {"airflow": {"tag": tag or None}}}})
    error = _render_guard(tmp_path, values)
    assert (expected_error in error) if expected_error else error == ""
