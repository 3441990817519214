"""GitHub issues and pull requests (REST ``/repos/{owner}/{repo}/issues`` pages): medallion transformations.

Every function here is pure; reading and writing live in :mod:`airbricks_jobs.pipeline`.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

# A raw page is a JSON array of issues; Spark's multi-line JSON reader makes one row per element.
ISSUE_SCHEMA = T.StructType(
    [
        T.StructField("id", T.LongType()),
        T.StructField("number", T.LongType()),
        T.StructField("title", T.StringType()),
        T.StructField("state", T.StringType()),
        T.StructField("user", T.StructType([T.StructField("login", T.StringType())])),
        T.StructField("labels", T.ArrayType(T.StructType([T.StructField("name", T.StringType())]))),
        T.StructField("comments", T.LongType()),
        T.StructField("created_at", T.StringType()),
        T.StructField("updated_at", T.StringType()),
        T.StructField("closed_at", T.StringType()),
        T.StructField("html_url", T.StringType()),
        T.StructField("pull_request", T.StructType([T.StructField("url", T.StringType())])),
    ]
)
PAGE_SCHEMA = ISSUE_SCHEMA


def bronze(pages: DataFrame) -> DataFrame:
    """One flat row per issue/PR as received: nested user and labels flattened, PR flag derived.

    :param pages: raw pages read with :data:`PAGE_SCHEMA`, with a ``_source_file`` column.
    """
    return pages.select(
        "id",
        "number",
        "title",
        "state",
        F.col("user.login").alias("user_login"),
        F.transform(F.coalesce("labels", F.array()), lambda label: label["name"]).alias("label_names"),
        "comments",
        "created_at",
        "updated_at",
        "closed_at",
        "html_url",
        F.col("pull_request").isNotNull().alias("is_pull_request"),
        "_source_file",
    )


def silver(bronze_df: DataFrame) -> DataFrame:
    """Typed and de-duplicated: one row per issue ``id``, the most recently updated copy wins."""
    typed = bronze_df.where(F.col("id").isNotNull()).select(
        "id",
        "number",
        F.trim("title").alias("title"),
        F.lower(F.coalesce("state", F.lit("unknown"))).alias("state"),
        F.when(F.col("is_pull_request"), F.lit("pull_request")).otherwise(F.lit("issue")).alias("kind"),
        F.coalesce("user_login", F.lit("[unknown]")).alias("author"),
        F.array_distinct(F.coalesce("label_names", F.array().cast("array<string>"))).alias("labels"),
        F.coalesce("comments", F.lit(0)).cast("int").alias("comments"),
        F.try_to_timestamp(F.col("created_at")).alias("created_at"),
        F.try_to_timestamp(F.col("updated_at")).alias("updated_at"),
        F.try_to_timestamp(F.col("closed_at")).alias("closed_at"),
        "html_url",
        "_source_file",
    )
    newest_first = Window.partitionBy("id").orderBy(
        F.col("updated_at").desc_nulls_last(), F.col("_source_file").desc()
    )
    return (
        typed.withColumn("_rank", F.row_number().over(newest_first))
        .where(F.col("_rank") == 1)
        .drop("_rank", "_source_file")
    )


def gold_labels(silver_df: DataFrame) -> DataFrame:
    """Per label (``(none)`` for unlabelled): open/closed issues and pull requests."""
    labels = F.when(F.size("labels") > 0, F.col("labels")).otherwise(F.array(F.lit("(none)")))
    exploded = silver_df.select(F.explode(labels).alias("label"), "state", "kind")
    issue = F.col("kind") == "issue"
    return (
        exploded.groupBy("label")
        .agg(
            F.count("*").alias("items"),
            F.sum((issue & (F.col("state") == "open")).cast("int")).alias("open_issues"),
            F.sum((issue & (F.col("state") == "closed")).cast("int")).alias("closed_issues"),
            F.sum((F.col("kind") == "pull_request").cast("int")).alias("pull_requests"),
        )
        .orderBy(F.col("items").desc(), F.col("label"))
    )


def gold_authors(silver_df: DataFrame) -> DataFrame:
    """Per author: issues and pull requests opened."""
    return (
        silver_df.groupBy("author")
        .agg(
            F.count("*").alias("items"),
            F.sum((F.col("kind") == "issue").cast("int")).alias("issues"),
            F.sum((F.col("kind") == "pull_request").cast("int")).alias("pull_requests"),
        )
        .orderBy(F.col("items").desc(), F.col("author"))
    )


def gold_tables(silver_df: DataFrame) -> dict[str, DataFrame]:
    """The gold tables of this dataset, by table name."""
    return {"labels": gold_labels(silver_df), "authors": gold_authors(silver_df)}


def summary(silver_df: DataFrame, tables: dict[str, DataFrame], top_n: int = 5) -> dict[str, Any]:
    """Small JSON-able summary of the gold result (what the job hands back to Airflow)."""
    by_kind_state = {
        f"{r['kind']}:{r['state']}": int(r["n"])
        for r in silver_df.groupBy("kind", "state").agg(F.count("*").alias("n")).collect()
    }
    return {
        "items": sum(by_kind_state.values()),
        "issues": sum(n for key, n in by_kind_state.items() if key.startswith("issue:")),
        "pull_requests": sum(n for key, n in by_kind_state.items() if key.startswith("pull_request:")),
        "open_issues": by_kind_state.get("issue:open", 0),
        "by_kind_state": dict(sorted(by_kind_state.items())),
        "top_labels": [
            {"label": r["label"], "items": int(r["items"])} for r in tables["labels"].limit(top_n).collect()
        ],
        "top_authors": [
            {"author": r["author"], "items": int(r["items"])}
            for r in tables["authors"].limit(top_n).collect()
        ],
    }
