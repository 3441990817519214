"""Airflow DAG databricks_github_issues: a Databricks job run per new github/issues partition.

All logic lives in :mod:`airbricks.databricks.processing` (the DAG of every processed dataset is built
the same way; this file selects one); see docs/DATABRICKS.md.
"""

# Named so the DAG processor imports them once in its long-lived parent instead of in every parse
# ([dag_processor] parsing_pre_import_modules): what `from airflow.sdk import task` loads, and the
# s3:// asset-URI handler (it imports boto3).
import airflow.providers.amazon.aws.assets.s3
import airflow.sdk.definitions.decorators  # noqa: F401

from airbricks.databricks.processing import build_processing_dag, processed_dataset

dag = build_processing_dag(processed_dataset("github", "issues"))
