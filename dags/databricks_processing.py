"""Airflow processing DAGs (one per raw dataset): on each ingestion asset event, run its Databricks job.

All logic lives in :mod:`airbricks.databricks.processing`; see docs/DATABRICKS.md. (The words "airflow"
and "dag" in this docstring are what the DAG processor's safe mode looks for before parsing a file.)
"""

from airbricks.databricks.processing import DATASETS, build_processing_dag

for _spec in DATASETS:
    globals()[_spec.dag_id] = build_processing_dag(_spec)
