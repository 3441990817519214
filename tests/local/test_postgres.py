"""The per-session PostgreSQL server: a real ``initdb`` + ``pg_ctl`` cluster, migrated and used by Airflow."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from airbricks.local.postgres import PostgresServer, wait_accepting


def test_airflow_migrates_onto_a_fresh_database_and_it_survives_a_restart(
    postgres_server: PostgresServer, postgres_url: str, tmp_path
) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_url}
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=env
    )
    engine = create_engine(postgres_url, pool_pre_ping=True)  # as Airflow does: a restart drops the pool
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM dag_run")).scalar_one() == 0
            version = conn.execute(text("SELECT version()")).scalar_one()
        assert version.startswith("PostgreSQL")
        postgres_server.restart()
        wait_accepting(postgres_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


@pytest.mark.skipif(os.geteuid() != 0, reason="the as-root path only applies when the session runs as root")
def test_as_root_the_server_runs_unprivileged(postgres_server: PostgresServer) -> None:
    pid = int((postgres_server.data_dir / "postmaster.pid").read_text().split()[0])
    assert os.stat(f"/proc/{pid}").st_uid != 0
