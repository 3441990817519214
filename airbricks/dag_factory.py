"""Stable import path for the ingestion DAG factory (see :mod:`airbricks.ingestion.dag_factory`)."""

from airbricks.ingestion.dag_factory import build_dag, build_dags

__all__ = ["build_dag", "build_dags"]
