"""Reading and writing around the pure transformations: one call per medallion task.

``run_layer`` is what the job's notebook calls. It reads only through ``spark.read`` and writes only
through ``DataFrame.write`` on paths derived from the job parameters, so the same code runs on a Databricks
job cluster (``s3://`` / ``/Volumes`` paths) and on the local emulator (which maps ``s3://`` parameters to
local folders before the task starts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from airbricks_jobs import github, hackernews
from airbricks_jobs.params import JobParameterError, LayerParams, join_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

MANIFEST_NAME = "_manifest.json"
RAW_FILE_GLOB = "part-*.json"
_MAX_SMALL_FILE_BYTES = 1024 * 1024


class RawPartitionError(RuntimeError):
    """The raw partition cannot be trusted (no manifest yet) or cannot be read."""


@dataclass(frozen=True)
class Dataset:
    """A dataset pipeline: its raw page schema and its transformation module."""

    name: str
    module: ModuleType


DATASETS: dict[str, Dataset] = {
    "hackernews_stories": Dataset("hackernews_stories", hackernews),
    "github_issues": Dataset("github_issues", github),
}


def _dataset(name: str) -> Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise JobParameterError(
            f"task parameter 'dataset' is {name!r}; known datasets: {sorted(DATASETS)}"
        ) from None


def _read_small_file(spark: SparkSession, path: str) -> str | None:
    """Text of one small file, ``None`` if it does not exist.

    Spark's DataFrame readers silently skip files whose name starts with ``_`` (``_manifest.json`` reads as
    zero rows, even when named explicitly), so the manifest is read with ``dbutils.fs`` where the cluster has
    it (Databricks, including Databricks Connect and serverless, and the local emulator), else (plain pyspark:
    unit tests) with the session's Hadoop FileSystem.
    """
    try:
        from pyspark.dbutils import DBUtils
    except ImportError:
        return _read_small_file_hadoop(spark, path)
    fs = DBUtils(spark).fs
    parent, _, name = path.rstrip("/").rpartition("/")
    try:
        names = {entry.name for entry in fs.ls(parent)}
    except Exception as err:  # Databricks wraps java.io.FileNotFoundException in its own error types
        if "FileNotFound" in f"{type(err).__name__}: {err}":
            return None
        raise
    if name not in names:
        return None
    return str(fs.head(path, _MAX_SMALL_FILE_BYTES))


def _read_small_file_hadoop(spark: SparkSession, path: str) -> str | None:
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(hadoop_path):
        return None
    stream = fs.open(hadoop_path)
    try:
        return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream)).decode("utf-8")
    finally:
        stream.close()


def read_manifest(spark: SparkSession, partition_path: str) -> dict[str, Any]:
    """Read the partition's ``_manifest.json``; ingestion writes it last, so without it nothing is trusted."""
    manifest_path = partition_path.rstrip("/") + "/" + MANIFEST_NAME
    text = _read_small_file(spark, manifest_path)
    if text is None:
        raise RawPartitionError(
            f"raw partition {partition_path!r} has no {MANIFEST_NAME}: ingestion has not finished it "
            "(or the path is wrong), refusing to process a partial partition"
        )
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as err:
        raise RawPartitionError(f"{manifest_path!r} is not valid JSON: {err}") from err
    if not isinstance(manifest, dict):
        raise RawPartitionError(f"{manifest_path!r} must hold a JSON object")
    return manifest


def read_raw_pages(spark: SparkSession, partition_path: str, schema: Any) -> DataFrame:
    """The raw page files (``part-*.json``, one JSON document each) of a partition, with their file name."""
    from pyspark.sql import functions as F

    return (
        spark.read.schema(schema)
        .option("multiLine", True)
        .option("mode", "FAILFAST")
        .option("pathGlobFilter", RAW_FILE_GLOB)
        .json(partition_path)
        .withColumn("_source_file", F.col("_metadata.file_name"))
    )


def _write(df: DataFrame, path: str) -> int:
    # Overwrite the partition folder: re-running an interval replaces its output instead of adding to it.
    df.write.mode("overwrite").parquet(path)
    return df.sparkSession.read.parquet(path).count()


def run_layer(
    spark: SparkSession,
    *,
    dataset: str,
    layer: str,
    partition_path: str,
    partition_key: str,
    partition_date: str,
    partition_folder: str,
    output_root: str,
    interval_start: str = "",
    interval_end: str = "",
) -> dict[str, Any]:
    """Run one medallion layer of one dataset for one raw partition and return a JSON-able summary.

    :param spark: the Spark session (the notebook's ``spark``).
    :param dataset: key of :data:`DATASETS`, e.g. ``hackernews_stories``.
    :param layer: ``bronze`` (raw pages -> flat records), ``silver`` (clean/dedupe/types) or ``gold``.
    :param partition_path: the raw partition ``s3://.../dt=YYYY-MM-DD/[hr=HH/]`` (read by bronze).
    :param partition_key: its Airflow partition key (carried into the summary).
    :param partition_date: its date ``YYYY-MM-DD`` (the summary's ``dt``).
    :param partition_folder: ``dt=YYYY-MM-DD/[hr=HH/]``, the folder of every layer's output.
    :param output_root: folder holding ``bronze/``, ``silver/`` and ``gold/<table>/`` of this dataset.
    :param interval_start: ISO start of the ingested interval (carried into the summary).
    :param interval_end: ISO end of the ingested interval (carried into the summary).
    """
    params = LayerParams(
        dataset=dataset,
        layer=layer,
        partition_path=partition_path,
        partition_key=partition_key,
        partition_date=partition_date,
        partition_folder=partition_folder,
        output_root=output_root,
        interval_start=interval_start,
        interval_end=interval_end,
    )
    module = _dataset(dataset).module
    result: dict[str, Any] = {
        "dataset": dataset,
        "layer": layer,
        "dt": params.partition_date,
        "partition_key": params.partition_key,
        "interval_start": interval_start or None,
        "interval_end": interval_end or None,
    }
    if layer == "bronze":
        manifest = read_manifest(spark, partition_path)
        pages = read_raw_pages(spark, partition_path, module.PAGE_SCHEMA)
        rows = _write(module.bronze(pages), params.layer_path("bronze"))
        manifest_records = manifest.get("records")
        result.update(rows=rows, manifest_records=manifest_records)
        if isinstance(manifest_records, int) and manifest_records != rows:
            # Not fatal: the manifest counts records the ingestion accepted, the pages hold all it received.
            result["warning"] = f"manifest lists {manifest_records} records, raw pages hold {rows}"
    elif layer == "silver":
        bronze_df = spark.read.parquet(params.layer_path("bronze"))
        result["rows"] = _write(module.silver(bronze_df), params.layer_path("silver"))
    else:
        silver_df = spark.read.parquet(params.layer_path("silver"))
        tables = module.gold_tables(silver_df)
        result["tables"] = {}
        for name, df in tables.items():
            path = params.layer_path("gold", name)
            # Gold tables are small aggregates: one file each keeps them cheap to read downstream.
            result["tables"][name] = {"path": path, "rows": _write(df.coalesce(1), path)}
        result["summary"] = module.summary(silver_df, tables)
    return result


__all__ = ["DATASETS", "RawPartitionError", "join_path", "read_manifest", "read_raw_pages", "run_layer"]
