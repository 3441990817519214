# Databricks notebook source
# ruff: noqa: F821 - dbutils and spark are notebook globals, as on Databricks
# The same code runs on Databricks: paths arrive as parameters, Spark reads and writes them.
dbutils.widgets.text("input_path", "")
dbutils.widgets.text("output_path", "")

# COMMAND ----------

df = spark.read.json(dbutils.widgets.get("input_path"))
df.write.mode("overwrite").parquet(dbutils.widgets.get("output_path"))
dbutils.notebook.exit(str(df.count()))
