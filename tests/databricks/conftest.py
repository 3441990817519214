"""Fixtures of the Databricks tests: a local SparkSession and the bundle's job code on sys.path."""

from __future__ import annotations

import logging
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BUNDLE_SRC = REPO_ROOT / "databricks" / "src"
if str(BUNDLE_SRC) not in sys.path:
    # On Databricks (and on the emulator) the notebook's folder, databricks/src, is on sys.path.
    sys.path.insert(0, str(BUNDLE_SRC))


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local[1] SparkSession for the whole session: starting a JVM costs seconds, reuse it."""
    pyspark_sql = pytest.importorskip("pyspark.sql", reason="pyspark is not installed in this venv")
    session = (
        pyspark_sql.SparkSession.builder.master("local[1]")
        .appName("airbricks-tests")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "512m")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    # py4j logs "Closing down clientserver connection" from __del__ at interpreter exit, after pytest
    # has closed the captured streams; nothing below WARNING from it is useful here.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    yield session
    session.stop()
