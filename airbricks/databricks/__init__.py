"""Airflow hooks, operators, sensors and triggers for Databricks (see docs/DATABRICKS.md).

Import from the submodules (``airbricks.databricks.operators`` ...); this package imports nothing itself so
that DAG files pay only for what they use.
"""
