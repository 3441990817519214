"""Airflow DAGs ingesting the API sources declared in sources.yaml into the S3 raw zone.

One DAG per source (``ingest_<source>``). Add sources in sources.yaml, not here; see docs/INGESTION.md.
"""

from pathlib import Path

# Building any s3:// Asset makes Airflow load every provider's asset-URI handler, and the Amazon one imports
# boto3 (~0.3 s per parse). Naming the module here lets the DAG processor import it once in its long-lived
# parent process ([dag_processor] parsing_pre_import_modules) instead of in every parse subprocess.
import airflow.providers.amazon.aws.assets.s3  # noqa: F401

from airbricks.ingestion.dag_factory import build_dags

globals().update(build_dags(Path(__file__).with_name("sources.yaml")))
