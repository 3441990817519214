# Databricks notebook source
# ruff: noqa: F821 - dbutils and spark are notebook globals, as on Databricks
# MAGIC %md
# MAGIC Which Spark the task got: the session's class and the application id of the JVM behind it.

# COMMAND ----------

import json

from pyspark.sql import SparkSession

session = SparkSession.builder.getOrCreate()
rows = spark.range(10).selectExpr("sum(id) AS total").collect()
dbutils.notebook.exit(
    json.dumps(
        {
            "session": type(session).__module__,
            "app_id": spark.conf.get("spark.app.id"),
            "total": rows[0]["total"],
        }
    )
)
