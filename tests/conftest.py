"""Session-wide test environment.

Airflow reads its configuration when first imported, so the environment is fixed here, at the top of the
root conftest, before any test module (or plugin) can import Airflow. Each pytest session gets its own
throw-away AIRFLOW_HOME with a SQLite metadata database; DAGs come from the repo's ``dags/`` folder.
With ``AIRBRICKS_TEST_DB=postgres`` (``make reliability``) the metadata database is a PostgreSQL database
instead, on the session's own server (or on ``$AIRBRICKS_POSTGRES_URL``'s), created here before Airflow is
imported.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

from airbricks.local.postgres import TEST_DB_ENV, session_database_url

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="airbricks-test-airflow-")

os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO_ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "False"
# The parsed-sources.yaml cache of this session (airbricks/ingestion/yaml_cache.py), not the user's.
os.environ["AIRBRICKS_SOURCES_CACHE_DIR"] = os.path.join(_AIRFLOW_HOME, "sources-yaml-cache")
if os.environ.get(TEST_DB_ENV) == "postgres":
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = session_database_url("airflow_session")
else:
    os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
# No real AWS credentials may ever be picked up by a test; local servers accept any.
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
os.environ.pop("AWS_PROFILE", None)

pytest_plugins = [
    "airbricks.testing.local_servers",
    "airbricks.testing.databricks",
    "airbricks.testing.postgres",
]


@pytest.fixture(scope="session")
def airflow_home() -> pathlib.Path:
    """The throw-away AIRFLOW_HOME of this test session."""
    return pathlib.Path(_AIRFLOW_HOME)


@pytest.fixture(scope="session")
def airflow_db(airflow_home: pathlib.Path) -> pathlib.Path:
    """The migrated metadata database (SQLite, or PostgreSQL with ``AIRBRICKS_TEST_DB=postgres``), created
    once per session with the real ``airflow`` CLI; the SQLite file's path (unused on PostgreSQL)."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return airflow_home / "airflow.db"
