"""Airflow DAG ingest_github: the `github` source of sources.yaml into the S3 raw zone.

The source is declared in sources.yaml (schedule, datasets, pagination...); this file only selects it, so
the DAG processor parses each source's DAG on its own. See docs/INGESTION.md.
"""

from pathlib import Path

# Building an s3:// Asset loads the Amazon provider's asset-URI handler, which imports boto3 (~0.3 s). Named
# here, the DAG processor imports it once in its long-lived parent, not in every parse of this file.
import airflow.providers.amazon.aws.assets.s3  # noqa: F401

from airbricks.ingestion.dag_factory import build_source_dag

dag = build_source_dag(Path(__file__).with_name("sources.yaml"), "github")
