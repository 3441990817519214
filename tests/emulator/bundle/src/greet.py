# Databricks notebook source
# ruff: noqa: F821 - dbutils and spark are notebook globals, as on Databricks
# MAGIC %md
# MAGIC Greets someone and returns the greeting as the notebook's exit value.

# COMMAND ----------

dbutils.widgets.text("greeting", "hi")
dbutils.widgets.text("who", "nobody")
dbutils.widgets.text("output_path", "")

# COMMAND ----------

message = f"{dbutils.widgets.get('greeting')}, {dbutils.widgets.get('who')}"
print(message)
dbutils.jobs.taskValues.set("length", len(message))
output_path = dbutils.widgets.get("output_path")
if output_path:
    import pathlib

    target = pathlib.Path(output_path)
    target.mkdir(parents=True, exist_ok=True)
    (target / "greeting.txt").write_text(message)
dbutils.notebook.exit(message)
