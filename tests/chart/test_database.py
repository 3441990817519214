"""Metadata database: bundled PostgreSQL only on kind; RDS through PgBouncer in production."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def test_kind_uses_bundled_postgres_with_generated_password(
    effective_airflow_values: Callable[[str], dict[str, Any]],
) -> None:
    values = effective_airflow_values("base+local")
    assert values["postgresql"]["enabled"] is True
    assert values["postgresql"]["auth"]["existingSecret"] == "airbricks-postgresql"
    assert values["postgresql"]["auth"]["postgresPassword"] is None
    assert values["data"]["metadataSecretName"] == "airbricks-metadata-db"
    assert values["pgbouncer"]["enabled"] is False


def test_prod_uses_external_database_through_pgbouncer(
    effective_airflow_values: Callable[[str], dict[str, Any]],
) -> None:
    values = effective_airflow_values("base+prod")
    assert values["postgresql"]["enabled"] is False
    assert values["data"]["metadataSecretName"] == "airbricks-metadata-db"
    pgbouncer = values["pgbouncer"]
    assert pgbouncer["enabled"] is True
    assert pgbouncer["replicas"] >= 2
    assert pgbouncer["configSecretName"] == "airbricks-pgbouncer-config"
    assert pgbouncer["metricsExporterSidecar"]["statsSecretName"] == "airbricks-pgbouncer-stats"
    assert pgbouncer["podDisruptionBudget"]["enabled"] is True
