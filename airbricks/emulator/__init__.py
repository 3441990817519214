"""A local Databricks workspace emulator: Jobs 2.2/2.1, Clusters 2.1/2.0, Files API 2.0 and DBFS 2.0.

The server speaks Databricks' REST shapes and error model so that ``databricks-sdk`` and the Airflow
Databricks provider work against it unchanged, and it runs the jobs of an Asset Bundle for real, one
subprocess per task. Start it with ``airbricks-emulator`` (see :mod:`airbricks.local.emulator_cli`) or, in
Python, with :class:`airbricks.emulator.server.EmulatorServer`. Nothing heavy is imported here.
"""
