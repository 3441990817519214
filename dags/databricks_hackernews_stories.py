"""Airflow DAG databricks_hackernews_stories: a Databricks job run per new hackernews/stories partition.

Declared in sources.yaml (the dataset's ``processing.job``); all logic lives in
:mod:`airbricks.databricks.processing` (every processed dataset's DAG is built the same way; this file
selects one, so the DAG processor parses each on its own); see docs/DATABRICKS.md.
"""

# Named so the DAG processor imports them once in its long-lived parent instead of in every parse
# ([dag_processor] parsing_pre_import_modules): what `from airflow.sdk import task` loads, and the
# s3:// asset-URI handler (it imports boto3).
from pathlib import Path

import airflow.providers.amazon.aws.assets.s3
import airflow.sdk.definitions.decorators  # noqa: F401

from airbricks.databricks.processing import build_processing_dag

dag = build_processing_dag(Path(__file__).with_name("sources.yaml"), "hackernews", "stories")
