"""Airflow DAG raw_manifest_watcher: partitions published by any producer trigger their processing.

An AssetWatcher reads the raw bucket's S3 ObjectCreated notifications of manifest keys from SQS
(``$AIRBRICKS_MANIFEST_QUEUE_URL``); each new manifest becomes the partitioned event of its raw asset, which
the processing DAGs are scheduled on. All logic lives in :mod:`airbricks.ingestion.manifest_watcher`; see
docs/PARTITIONS.md.
"""

from pathlib import Path

# Named so the DAG processor imports them once in its long-lived parent instead of in every parse
# ([dag_processor] parsing_pre_import_modules): the s3:// asset-URI handler (it imports boto3) and the
# common-messaging trigger (it initialises the providers' queue registry on import).
import airflow.providers.amazon.aws.assets.s3
import airflow.providers.common.messaging.triggers.msg_queue  # noqa: F401

from airbricks.ingestion.manifest_watcher import build_manifest_watcher_dag

dag = build_manifest_watcher_dag(Path(__file__).with_name("sources.yaml"))
