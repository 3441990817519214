"""templates/monitoring/ rendered by real Helm (helm-python-sdk): off by default, correct when switched on.

The umbrella's dependency (the official chart archive) is not needed for these templates, so they are
rendered in a copy of the chart holding only Chart.yaml, templates/monitoring/ and files/monitoring/;
tests/chart/ renders the whole umbrella when the archive is present.
"""

from __future__ import annotations

import copy
import json
import pathlib
import shutil
from typing import Any

import pytest
import yaml
from obs_paths import CHART_DIR, DASHBOARD_FILE, RULES_FILE

helm_python = pytest.importorskip(
    "helm_python", reason="helm-python-sdk (requirements-dev.txt) renders charts"
)

RELEASE, NAMESPACE = "airflow", "airbricks"
# Labels and port name of the official chart's StatsD Service (templates/statsd/statsd-service.yaml, 1.22.0).
STATSD_SERVICE_LABELS = {"tier": "airflow", "component": "statsd", "release": RELEASE}
STATSD_SCRAPE_PORT = "statsd-scrape"


@pytest.fixture(scope="module")
def monitoring_chart(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    chart = tmp_path_factory.mktemp("chart") / "airbricks"
    (chart / "templates").mkdir(parents=True)
    shutil.copytree(CHART_DIR / "templates" / "monitoring", chart / "templates" / "monitoring")
    shutil.copytree(CHART_DIR / "files" / "monitoring", chart / "files" / "monitoring")
    metadata = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    metadata.pop("dependencies", None)
    (chart / "Chart.yaml").write_text(yaml.safe_dump(metadata))
    return chart


def _render(chart: pathlib.Path, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    with helm_python.Chart.load(chart) as loaded:
        rendered = loaded.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    objects = {}
    for text in rendered.values():
        for doc in yaml.safe_load_all(text):
            if doc:
                objects[doc["kind"]] = doc
    return objects


def _enabled(values: dict[str, Any]) -> dict[str, Any]:
    values = copy.deepcopy(values)
    for section in values["monitoring"].values():
        section["enabled"] = True
    return values


def test_nothing_is_rendered_by_default(monitoring_chart: pathlib.Path, chart_values: dict[str, Any]) -> None:
    assert _render(monitoring_chart, chart_values) == {}


def test_service_monitor_selects_the_official_statsd_service(
    monitoring_chart: pathlib.Path, chart_values: dict[str, Any]
) -> None:
    values = _enabled(chart_values)
    values["monitoring"]["serviceMonitor"]["labels"] = {"release": "kube-prometheus-stack"}
    monitor = _render(monitoring_chart, values)["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"]["matchLabels"] == STATSD_SERVICE_LABELS
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == STATSD_SCRAPE_PORT
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"


def test_prometheus_rule_spec_is_the_plain_rules_file(
    monitoring_chart: pathlib.Path, chart_values: dict[str, Any]
) -> None:
    rule = _render(monitoring_chart, _enabled(chart_values))["PrometheusRule"]
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())
    # Prometheus templating survives Helm untouched.
    annotations = [r["annotations"]["summary"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert any("{{ $labels.dag_id }}" in text for text in annotations)


def test_dashboard_config_map_carries_the_dashboard_for_the_grafana_sidecar(
    monitoring_chart: pathlib.Path, chart_values: dict[str, Any]
) -> None:
    config_map = _render(monitoring_chart, _enabled(chart_values))["ConfigMap"]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["airbricks-dashboard.json"]) == json.loads(
        DASHBOARD_FILE.read_text()
    )


def test_monitoring_without_the_statsd_exporter_is_refused(
    monitoring_chart: pathlib.Path, chart_values: dict[str, Any]
) -> None:
    values = _enabled(chart_values)
    values["airflow"]["statsd"]["enabled"] = False
    with pytest.raises(Exception, match=r"airflow\.statsd\.enabled=true"):
        _render(monitoring_chart, values)
