"""Static secrets come from Kubernetes Secrets; no credential is ever written in a values file."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chart_support import CHART_DIR, layered_values, load_yaml

STATIC_SECRETS = {
    "fernetKeySecretName": "airbricks-fernet-key",
    "apiSecretKeySecretName": "airbricks-api-secret-key",
    "jwtSecretName": "airbricks-jwt-secret",
}
INLINE_SECRET_VALUES = ("fernetKey", "apiSecretKey", "jwtSecret", "webserverSecretKey")


def _strings(values: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(values, dict):
        for key, value in values.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(values, list):
        for index, value in enumerate(values):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(values, str):
        yield path, values


@pytest.mark.parametrize("layering", ["base", "base+local", "base+prod"])
def test_static_secrets_are_secret_references(layering: str) -> None:
    values = layered_values(layering)["airflow"]
    for key, secret in STATIC_SECRETS.items():
        assert values[key] == secret
    for key in INLINE_SECRET_VALUES:
        assert values.get(key) is None, f"{key} must never be set inline"


@pytest.mark.parametrize("name", ["values.yaml", "values-local.yaml", "values-prod.yaml"])
def test_no_credentials_in_values_files(name: str) -> None:
    """No password, key or token value: every secret-looking key holds a reference or nothing."""
    suspicious_key = re.compile(r"(password|passwd|secret|token|accessKey|private)", re.I)
    # Names of Secrets and references into them are fine; jwtSecret & co are caught by the test above.
    allowed_leaf = re.compile(r"(SecretName|KeySecret|credentialsSecret|existingSecret)$")
    allowed_path = re.compile(r"\.(secretKeyRef|secretKeys)\.")
    for path, value in _strings(load_yaml(CHART_DIR / name)):
        leaf = path.rsplit(".", 1)[-1]
        allowed = allowed_leaf.search(leaf) or allowed_path.search(path)
        if suspicious_key.search(leaf) and not allowed and value:
            if "${" in value:  # a shell reference read from a Secret at runtime
                continue
            pytest.fail(f"{name}: {path} looks like a credential value: {value!r}")
        assert not re.search(r"AKIA[0-9A-Z]{16}", value), f"{name}: {path} holds an AWS access key"
        assert "aws_secret_access_key" not in value.lower(), path


@pytest.mark.parametrize("layering", ["base+local", "base+prod"])
def test_chart_sample_admin_user_is_blanked(
    layering: str, effective_airflow_values: Callable[[str], dict[str, Any]]
) -> None:
    user = effective_airflow_values(layering)["createUserJob"]["defaultUser"]
    assert user["username"] != "admin"
    assert user["password"] != "admin"


def test_local_login_comes_from_a_generated_secret() -> None:
    job = layered_values("base+local")["airflow"]["createUserJob"]
    assert job["enabled"] is True
    refs = {env["name"]: env["valueFrom"]["secretKeyRef"] for env in job["env"]}
    assert refs["AIRBRICKS_UI_PASSWORD"] == {"name": "airbricks-ui-login", "key": "password"}
    command = " ".join(job["args"])
    assert '--password "${AIRBRICKS_UI_PASSWORD}"' in command


def test_prod_has_sso_and_no_create_user_job() -> None:
    values = layered_values("base+prod")["airflow"]
    assert values["createUserJob"]["enabled"] is False
    config = values["apiServer"]["apiServerConfig"]
    assert "AUTH_TYPE = AUTH_OAUTH" in config
    assert "os.environ[" in config
    secret_refs = {env["valueFrom"]["secretKeyRef"]["name"] for env in values["apiServer"]["env"]}
    assert secret_refs == {"airbricks-oidc"}
