# Databricks notebook source
# MAGIC %md
# MAGIC # airbricks medallion layer
# MAGIC
# MAGIC Runs one layer (`bronze`, `silver` or `gold`) of one dataset for one raw partition. The job passes
# MAGIC `dataset` and `layer` as task parameters and `partition_path`, `partition_key`, `partition_date`,
# MAGIC `partition_folder`, `output_root`, `interval_start`, `interval_end` as job parameters (Airflow sets
# MAGIC them with `run-now`). The notebook ends with `dbutils.notebook.exit(<json summary>)`, which Airflow
# MAGIC reads back with `jobs/runs/get-output`.

# COMMAND ----------

import json

from airbricks_jobs.pipeline import run_layer

PARAMETER_NAMES = (
    "dataset",
    "layer",
    "partition_path",
    "partition_key",
    "partition_date",
    "partition_folder",
    "output_root",
    "interval_start",
    "interval_end",
)
for name in PARAMETER_NAMES:
    dbutils.widgets.text(name, "")  # noqa: F821 - dbutils is a notebook global on Databricks
parameters = {name: dbutils.widgets.get(name) for name in PARAMETER_NAMES}  # noqa: F821

# COMMAND ----------

result = run_layer(spark, **parameters)  # noqa: F821 - spark is a notebook global on Databricks
print(json.dumps(result, indent=2, default=str))

# COMMAND ----------

dbutils.notebook.exit(json.dumps(result, default=str))  # noqa: F821
