# Databricks notebook source
# Test stand-in for databricks/src/medallion_layer.py: same widgets, no Spark. Widgets `fail_layer` /
# `sleep_layer` make the named layer raise / sleep, for the failure and cancellation tests.

# COMMAND ----------

import json
import time

NAMES = (
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
for name in (*NAMES, "fail_layer", "sleep_layer"):
    dbutils.widgets.text(name, "")  # noqa: F821
params = {name: dbutils.widgets.get(name) for name in NAMES}  # noqa: F821
layer = params["layer"]

if dbutils.widgets.get("sleep_layer") == layer:  # noqa: F821
    time.sleep(60)
if dbutils.widgets.get("fail_layer") == layer:  # noqa: F821
    raise ValueError(f"deliberate failure in the {layer} layer of {params['partition_path']}")

result = {**params, "summary": {"stories": 2, "top_authors": [{"author": "alice", "stories": 2}]}}
if layer == "gold":  # like airbricks_jobs.pipeline.run_layer: the gold tables it wrote
    result["tables"] = {"authors": {"rows": 1}, "domains": {"rows": 1}}
dbutils.notebook.exit(json.dumps(result))  # noqa: F821
