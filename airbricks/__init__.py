"""airbricks: Airflow 3 on Kubernetes orchestrating Databricks.

Reusable pieces live here; ``dags/`` only declares DAGs. Nothing in this package does work at import
time, so importing it from a DAG file costs the DAG processor nothing.
"""

__version__ = "0.1.0"
