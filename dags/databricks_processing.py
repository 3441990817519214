"""Airflow processing DAGs (one per raw dataset): on each ingestion asset event, run its Databricks job.

All logic lives in :mod:`airbricks.databricks.processing`; see docs/DATABRICKS.md. (The words "airflow"
and "dag" in this docstring are what the DAG processor's safe mode looks for before parsing a file.)
"""

# Named so the DAG processor imports it once in its parent ([dag_processor] parsing_pre_import_modules)
# instead of in every parse: what `from airflow.sdk import task` loads (the standard provider's decorators).
import airflow.sdk.definitions.decorators  # noqa: F401

from airbricks.databricks.processing import DATASETS, build_processing_dag

for _spec in DATASETS:
    globals()[_spec.dag_id] = build_processing_dag(_spec)
