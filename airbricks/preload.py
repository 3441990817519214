"""Load, once per DAG processor, what parsing the airbricks DAG files needs (see docs/PERFORMANCE.md).

Airflow 3's DAG processor parses each DAG file in a fresh fork of one long-lived parent process. Before it
forks, the parent imports the ``airflow.*`` modules a file names (``[dag_processor]
parsing_pre_import_modules``), so a parse finds them in memory. Everything else is paid again by every
parse of every file, every ``min_file_process_interval``: the airbricks modules the DAG files import
(pydantic config models, operators, callbacks), the modules Airflow's serialiser imports for every DAG
(dependency detection), and the providers' asset-URI handler discovery.

The chart's ``airflowLocalSettings`` (chart/values.yaml) calls :func:`preload_for_dag_processor`; Airflow
imports its local settings once at start in every process, and only the DAG processor preloads. That is
safe only because these modules come from the image, never from the DAG bundle: a ``git push`` cannot
change them, so the parent's copies are never stale (Airflow pre-imports only ``airflow.*`` for that
reason). A module that fails to preload is logged and left to the parse, which reports the error as an
import error of the DAG file.
"""

from __future__ import annotations

import importlib
import logging
import sys
from collections.abc import Sequence

log = logging.getLogger(__name__)

# What a parse of dags/*.py imports beyond the airflow.* modules the files name themselves.
# tests/dags/test_dag_preload.py fails, naming the module, when a DAG file starts importing one not listed.
DAG_PARSE_MODULES = (
    # airbricks, imported by the DAG files
    "airbricks.databricks.examples",
    "airbricks.databricks.medallion",
    "airbricks.databricks.operators",
    "airbricks.databricks.processing",
    "airbricks.databricks.sensors",
    "airbricks.databricks.workflow",
    "airbricks.ingestion.dag_factory",
    "airbricks.ingestion.operators",
    "airbricks.notifications",
    "airbricks.partitions",
    # Airflow, imported lazily while a DAG is built or serialised
    "airflow.sdk.definitions.decorators",  # @task
    "airflow.providers.standard.operators.trigger_dagrun",  # serialiser: DAG dependency detection
    "airflow.providers.standard.sensors.external_task",  # serialiser: DAG dependency detection
    "airflow.providers.amazon.aws.assets.s3",  # normaliser of s3:// asset URIs (imports boto3)
)


def preload_dag_modules(modules: Sequence[str] = DAG_PARSE_MODULES) -> list[str]:
    """Import ``modules`` and discover the providers' asset-URI handlers; returns the modules that failed."""
    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # the parse imports it again and reports the error against the DAG file
            log.warning("airbricks preload: could not import %s", name, exc_info=True)
            failed.append(name)
    try:  # the first s3:// Asset of every parse would otherwise discover the handlers of every provider
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

        ProvidersManagerTaskRuntime().asset_uri_handlers  # noqa: B018 - the property runs the discovery
    except Exception:
        log.warning("airbricks preload: could not discover asset URI handlers", exc_info=True)
    return failed


def preload_for_dag_processor(argv: Sequence[str] | None = None) -> bool:
    """Preload in ``airflow dag-processor`` only (the scheduler, API server and workers do not parse files
    in forks; they would only pay for the imports). Returns whether it preloaded."""
    args = list(sys.argv if argv is None else argv)
    if args[1:2] != ["dag-processor"]:
        return False
    preload_dag_modules()
    return True
