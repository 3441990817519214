# Databricks notebook source
# Waits until the file `release_file` exists (at most `max_seconds`, a safety net), then exits: a run that
# stays RUNNING for as long as the test needs its Airflow task deferred.

# COMMAND ----------

import json
import os
import time

dbutils.widgets.text("release_file", "")  # noqa: F821
dbutils.widgets.text("max_seconds", "1800")  # noqa: F821
release = dbutils.widgets.get("release_file")  # noqa: F821
deadline = time.monotonic() + float(dbutils.widgets.get("max_seconds"))  # noqa: F821
while release and not os.path.exists(release) and time.monotonic() < deadline:
    time.sleep(0.5)
dbutils.notebook.exit(json.dumps({"released": bool(release) and os.path.exists(release)}))  # noqa: F821
