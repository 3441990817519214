"""Hacker News stories (HN Algolia search API pages): bronze -> silver -> gold transformations.

Every function here is pure (``DataFrame -> DataFrame`` or ``DataFrame -> dict`` for the small summary);
reading and writing live in :mod:`airbricks_jobs.pipeline`.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

HIT_SCHEMA = T.StructType(
    [
        T.StructField("objectID", T.StringType()),
        T.StructField("title", T.StringType()),
        T.StructField("url", T.StringType()),
        T.StructField("author", T.StringType()),
        T.StructField("points", T.LongType()),
        T.StructField("num_comments", T.LongType()),
        T.StructField("created_at", T.StringType()),
        T.StructField("created_at_i", T.LongType()),
        T.StructField("story_text", T.StringType()),
    ]
)

# Explicit schema: inference would turn an empty ``hits`` page into array<string> and break the union.
PAGE_SCHEMA = T.StructType(
    [
        T.StructField("hits", T.ArrayType(HIT_SCHEMA)),
        T.StructField("page", T.LongType()),
        T.StructField("nbPages", T.LongType()),
    ]
)

# Scheme, optional "www.", then the host; regexp rather than parse_url so a malformed URL yields null
# instead of an ANSI-mode error.
_HOST_PATTERN = r"^[A-Za-z][A-Za-z0-9+.\-]*://(?:www\.)?([^/:?#]+)"


def bronze(pages: DataFrame) -> DataFrame:
    """One row per hit of the raw pages, fields as received, plus the page number and source file.

    :param pages: raw pages read with :data:`PAGE_SCHEMA`, with a ``_source_file`` column.
    """
    return pages.select(
        F.col("page").alias("_page"),
        F.col("_source_file"),
        F.explode("hits").alias("hit"),
    ).select("hit.*", "_page", "_source_file")


def silver(bronze_df: DataFrame) -> DataFrame:
    """Clean, typed, de-duplicated stories: one row per ``story_id``.

    Rows without an id or a title are dropped; a story seen on several pages keeps its highest-scored copy.
    """
    created_at = F.coalesce(
        F.timestamp_seconds("created_at_i"),
        F.try_to_timestamp(F.col("created_at")),
    )
    domain = F.lower(F.regexp_extract(F.col("url"), _HOST_PATTERN, 1))
    typed = (
        bronze_df.where(F.col("objectID").isNotNull() & (F.length(F.trim("title")) > 0))
        .select(
            F.col("objectID").cast("long").alias("story_id"),
            F.trim("title").alias("title"),
            F.nullif(F.trim("url"), F.lit("")).alias("url"),
            F.nullif(domain, F.lit("")).alias("domain"),
            F.coalesce(F.nullif(F.trim("author"), F.lit("")), F.lit("[unknown]")).alias("author"),
            F.coalesce(F.col("points"), F.lit(0)).cast("int").alias("points"),
            F.coalesce(F.col("num_comments"), F.lit(0)).cast("int").alias("num_comments"),
            created_at.alias("created_at"),
            F.col("_source_file"),
        )
        .where(F.col("story_id").isNotNull())
    )
    latest_first = Window.partitionBy("story_id").orderBy(
        F.col("points").desc(), F.col("num_comments").desc(), F.col("_source_file").desc()
    )
    return (
        typed.withColumn("_rank", F.row_number().over(latest_first))
        .where(F.col("_rank") == 1)
        .drop("_rank", "_source_file")
    )


def gold_authors(silver_df: DataFrame) -> DataFrame:
    """Per author: stories, total/avg/max points and comments, ordered by total points."""
    return (
        silver_df.groupBy("author")
        .agg(
            F.count("*").alias("stories"),
            F.sum("points").cast("long").alias("total_points"),
            F.round(F.avg("points"), 2).alias("avg_points"),
            F.max("points").alias("max_points"),
            F.sum("num_comments").cast("long").alias("total_comments"),
        )
        .orderBy(F.col("total_points").desc(), F.col("author"))
    )


def gold_domains(silver_df: DataFrame) -> DataFrame:
    """Per linked domain (stories without a URL are ``self``): stories and total points."""
    return (
        silver_df.withColumn("domain", F.coalesce("domain", F.lit("self")))
        .groupBy("domain")
        .agg(F.count("*").alias("stories"), F.sum("points").cast("long").alias("total_points"))
        .orderBy(F.col("stories").desc(), F.col("domain"))
    )


def gold_tables(silver_df: DataFrame) -> dict[str, DataFrame]:
    """The gold tables of this dataset, by table name."""
    return {"authors": gold_authors(silver_df), "domains": gold_domains(silver_df)}


def summary(silver_df: DataFrame, tables: dict[str, DataFrame], top_n: int = 5) -> dict[str, Any]:
    """Small JSON-able summary of the gold result (what the job hands back to Airflow)."""
    totals = silver_df.agg(
        F.count("*").alias("stories"),
        F.countDistinct("author").alias("authors"),
        F.coalesce(F.sum("points"), F.lit(0)).cast("long").alias("total_points"),
        F.coalesce(F.sum("num_comments"), F.lit(0)).cast("long").alias("total_comments"),
    ).first()
    top_story = silver_df.orderBy(F.col("points").desc(), F.col("story_id")).select(
        "story_id", "title", "author", "points", "url"
    )
    top = top_story.first()
    return {
        "stories": int(totals["stories"]),
        "authors": int(totals["authors"]),
        "total_points": int(totals["total_points"]),
        "total_comments": int(totals["total_comments"]),
        "top_authors": [
            {"author": r["author"], "stories": int(r["stories"]), "total_points": int(r["total_points"])}
            for r in tables["authors"].limit(top_n).collect()
        ],
        "top_domains": [
            {"domain": r["domain"], "stories": int(r["stories"])}
            for r in tables["domains"].limit(top_n).collect()
        ],
        "top_story": top.asDict() if top else None,
    }
