"""API → S3 raw-zone ingestion.

Light on purpose: DAG files import :mod:`airbricks.ingestion.dag_factory`, which must stay cheap to import.
``requests`` and ``boto3`` are imported only inside the code paths that run in a task.
"""
