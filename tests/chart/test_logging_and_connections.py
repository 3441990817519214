"""Task logs leave the (deleted) worker pods for object storage; connections come from Secrets or AWS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.mark.parametrize(
    ("layering", "bucket"),
    [("base+local", "s3://airbricks-logs/"), ("base+prod", "s3://your-org-airbricks-airflow-logs/")],
)
def test_remote_logging_to_s3(
    layering: str, bucket: str, effective_airflow_values: Callable[[str], dict[str, Any]]
) -> None:
    logging = effective_airflow_values(layering)["config"]["logging"]
    assert logging["remote_logging"] == "True"
    assert logging["remote_base_log_folder"].startswith(bucket)
    assert logging["remote_log_conn_id"] == "aws_logs"


def test_kind_connections_come_from_the_generated_secret(
    effective_airflow_values: Callable[[str], dict[str, Any]],
) -> None:
    values = effective_airflow_values("base+local")
    assert "name: airbricks-connections" in values["extraEnvFrom"]
    assert not [env for env in values["env"] if env["name"].startswith("AIRFLOW_CONN_")]


def test_prod_uses_secrets_manager_and_irsa_for_logs(
    effective_airflow_values: Callable[[str], dict[str, Any]],
) -> None:
    import json

    values = effective_airflow_values("base+prod")
    secrets = values["config"]["secrets"]
    assert secrets["backend"] == "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    kwargs = json.loads(secrets["backend_kwargs"])
    assert kwargs["connections_prefix"] == "airbricks/connections"
    assert kwargs["variables_prefix"] == "airbricks/variables"
    conn = {env["name"]: env["value"] for env in values["env"]}["AIRFLOW_CONN_AWS_LOGS"]
    parsed = json.loads(conn)
    assert parsed["conn_type"] == "aws"
    assert not {"login", "password"} & set(parsed), "IRSA only: no static AWS keys"


def test_secrets_backend_class_exists() -> None:
    """The configured backend is importable from the pinned amazon provider."""
    from airflow.providers.amazon.aws.secrets.secrets_manager import SecretsManagerBackend

    assert SecretsManagerBackend.__name__ == "SecretsManagerBackend"
