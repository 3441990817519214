"""Restrictive security contexts, IRSA on the service accounts that touch AWS, network policies in prod."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

AWS_SERVICE_ACCOUNTS = {
    ("workers", "kubernetes"): "airbricks-airflow-workers",
    ("triggerer",): "airbricks-airflow-workers",
    ("scheduler",): "airbricks-airflow-control-plane",
    ("dagProcessor",): "airbricks-airflow-control-plane",
    ("apiServer",): "airbricks-airflow-control-plane",
}


def _at(values: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        values = values[key]
    return values


@pytest.mark.parametrize("layering", ["base+local", "base+prod"])
def test_default_security_contexts(
    layering: str, effective_airflow_values: Callable[[str], dict[str, Any]]
) -> None:
    contexts = effective_airflow_values(layering)["securityContexts"]
    assert contexts["pod"]["runAsNonRoot"] is True
    assert contexts["pod"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = contexts["containers"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}
    git_sync = effective_airflow_values(layering)["dags"]["gitSync"]["securityContexts"]["container"]
    assert git_sync["allowPrivilegeEscalation"] is False
    assert git_sync["capabilities"] == {"drop": ["ALL"]}


def test_irsa_role_on_every_aws_service_account(effective_airflow_values: Callable[[str], Any]) -> None:
    values = effective_airflow_values("base+prod")
    for path, role in AWS_SERVICE_ACCOUNTS.items():
        annotations = _at(values, path)["serviceAccount"]["annotations"]
        assert annotations["eks.amazonaws.com/role-arn"].endswith(f":role/{role}"), path


def test_no_irsa_on_kind(effective_airflow_values: Callable[[str], Any]) -> None:
    values = effective_airflow_values("base+local")
    for path in AWS_SERVICE_ACCOUNTS:
        assert "eks.amazonaws.com/role-arn" not in (_at(values, path)["serviceAccount"]["annotations"] or {})


def test_network_policies_in_prod_only(effective_airflow_values: Callable[[str], Any]) -> None:
    assert effective_airflow_values("base+prod")["networkPolicies"]["enabled"] is True
    assert effective_airflow_values("base+local")["networkPolicies"]["enabled"] is False


@pytest.mark.parametrize("layering", ["base+local", "base+prod"])
@pytest.mark.parametrize("component", ["dagProcessor", "migrateDatabaseJob", "pgbouncer", "statsd"])
def test_no_kubernetes_api_token_where_the_api_is_not_called(
    effective_airflow_values: Callable[[str], Any], layering: str, component: str
) -> None:
    service_account = effective_airflow_values(layering)[component]["serviceAccount"]
    assert service_account["automountServiceAccountToken"] is False, component


@pytest.mark.parametrize("component", ["scheduler", "triggerer", "apiServer"])
def test_token_kept_where_the_kubernetes_api_is_called(
    effective_airflow_values: Callable[[str], Any], component: str
) -> None:
    # scheduler: launches task pods; triggerer: polls deferred pods; apiServer: reads running pods' logs.
    service_account = effective_airflow_values("base+prod")[component]["serviceAccount"]
    assert service_account.get("automountServiceAccountToken", True) is True, component
