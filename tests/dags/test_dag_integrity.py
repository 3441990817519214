"""DAG integrity: every file in ``dags/`` parses, does no network/DB work at import, and follows the rules.

Generic on purpose: it covers DAG files added later by any component. The parse runs in a fresh
subprocess (clean module state, nothing cached from other tests) in which sockets, DNS and database
connections raise *and are recorded* before the DAG files are imported, so an import-time call is caught
even when the DAG file swallows the exception.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"

_PARSE_WITH_IO_BLOCKED = textwrap.dedent(
    """
    import json, socket, sqlite3, sys

    from airflow.dag_processing.dagbag import DagBag  # Airflow itself may set up its ORM; DAG files may not
    import sqlalchemy.engine.base

    violations = []

    def blocked(what):
        def raiser(*args, **kwargs):
            violations.append(what)
            raise RuntimeError(f"{what} attempted while parsing DAG files (no I/O at import time)")
        return raiser

    socket.socket.connect = blocked("socket.connect")
    socket.socket.connect_ex = blocked("socket.connect_ex")
    socket.create_connection = blocked("socket.create_connection")
    socket.getaddrinfo = blocked("socket.getaddrinfo")
    sqlite3.connect = blocked("sqlite3.connect")
    sqlalchemy.engine.base.Engine.connect = blocked("sqlalchemy Engine.connect")
    sqlalchemy.engine.base.Engine.raw_connection = blocked("sqlalchemy Engine.raw_connection")

    bag = DagBag(dag_folder=sys.argv[1])
    dags = []
    for dag_id, dag in bag.dags.items():
        dags.append({
            "dag_id": dag_id,
            "fileloc": dag.fileloc,
            "tags": sorted(dag.tags or []),
            "tasks": [
                {"task_id": t.task_id, "owner": t.owner, "retries": t.retries} for t in dag.tasks
            ],
        })
    print("@@RESULT@@" + json.dumps({
        "import_errors": {str(k): str(v) for k, v in bag.import_errors.items()},
        "files": sorted(str(s.file) for s in bag.dagbag_stats),
        "dags": dags,
        "violations": violations,
    }))
    """
)


@pytest.fixture(scope="module")
def parsed() -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _PARSE_WITH_IO_BLOCKED, str(DAGS)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@RESULT@@")]
    assert proc.returncode == 0, f"DAG parse subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    assert marker, f"DAG parse subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(marker[-1].removeprefix("@@RESULT@@"))


def test_every_dag_file_imports_without_errors(parsed):
    assert parsed["import_errors"] == {}


def test_no_network_or_database_access_at_import_time(parsed):
    assert parsed["violations"] == []


def test_every_dag_file_in_dags_was_parsed(parsed):
    # Airflow's safe mode only parses files mentioning both "airflow" and "dag"; those must all be seen.
    python_files = {
        p.name
        for p in DAGS.rglob("*.py")
        if {"airflow", "dag"} <= {w for w in ("airflow", "dag") if w in p.read_text().lower()}
    }
    parsed_files = {pathlib.Path(f).name for f in parsed["files"]}
    assert python_files <= parsed_files, f"not parsed: {python_files - parsed_files}"


def test_dag_ids_are_unique_across_files(parsed):
    ids = [d["dag_id"] for d in parsed["dags"]]
    assert len(ids) == len(set(ids))
    # A duplicate in another file shows up as an import error, which the first test already rejects.


def test_ingestion_dags_are_registered(parsed):
    ids = {d["dag_id"] for d in parsed["dags"]}
    assert {"ingest_hackernews", "ingest_github"} <= ids


def test_every_dag_has_owner_tags_and_retries(parsed):
    problems = []
    for dag in parsed["dags"]:
        where = f"{dag['dag_id']} ({pathlib.Path(dag['fileloc']).name})"
        if not dag["tags"]:
            problems.append(f"{where}: no tags")
        for task in dag["tasks"]:
            if not task["owner"] or task["owner"].lower() == "airflow":
                problems.append(f"{where}.{task['task_id']}: owner is {task['owner']!r}, set a real team")
            if task["retries"] < 2:
                problems.append(f"{where}.{task['task_id']}: retries={task['retries']} (< 2)")
    assert problems == []


def test_the_guard_really_catches_import_time_io(tmp_path):
    """The blocked-I/O harness itself must fail a DAG file that opens a connection at import."""
    bad = tmp_path / "bad_dag.py"
    bad.write_text(
        "import socket\n"
        "from airflow.sdk import DAG\n"
        "try:\n"
        "    socket.create_connection(('example.com', 80), timeout=1)\n"
        "except Exception:\n"
        "    pass  # a DAG file swallowing the error must still be caught\n"
        "with DAG('bad_dag', schedule=None, tags=['x']):\n"
        "    pass\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", _PARSE_WITH_IO_BLOCKED, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    marker = [line for line in proc.stdout.splitlines() if line.startswith("@@RESULT@@")]
    assert marker, proc.stderr
    assert json.loads(marker[-1].removeprefix("@@RESULT@@"))["violations"] == ["socket.create_connection"]


def test_every_source_has_its_dag_file_and_every_dag_file_its_source():
    """A source declared in sources.yaml without dags/ingest_<source>.py never shows up in Airflow, with no
    error anywhere: this is where it is caught."""
    from airbricks.ingestion.dag_factory import source_file_mismatches

    assert source_file_mismatches(DAGS) == []


def test_the_source_file_check_names_both_the_source_and_the_file(tmp_path):
    import shutil

    import yaml

    for file in [DAGS / "sources.yaml", *DAGS.glob("ingest_*.py")]:
        shutil.copy(file, tmp_path / file.name)
    document = yaml.safe_load((tmp_path / "sources.yaml").read_text())
    document["sources"]["books"] = document["sources"]["github"]  # a new source, its DAG file forgotten
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    # ...and a DAG file copied for a source nobody declared
    orphan = (DAGS / "ingest_github.py").read_text().replace('"github")', '"films")')
    (tmp_path / "ingest_films.py").write_text(orphan)

    from airbricks.ingestion.dag_factory import source_file_mismatches

    assert source_file_mismatches(tmp_path) == [
        f"{tmp_path}/ingest_films.py selects source 'films', which {tmp_path}/sources.yaml does not declare "
        f"(declared: hackernews, github, books): add 'films' under 'sources:' or delete "
        f"{tmp_path}/ingest_films.py",
        f"{tmp_path}/sources.yaml: source 'books' has no DAG file {tmp_path}/ingest_books.py: copy "
        f"{tmp_path}/ingest_github.py to {tmp_path}/ingest_books.py and change the source name in its last "
        'line to "books"',
    ]
    # A copy whose last line still names the source it was copied from is named too.
    (tmp_path / "ingest_books.py").write_text((DAGS / "ingest_github.py").read_text())
    (tmp_path / "ingest_films.py").unlink()
    assert source_file_mismatches(tmp_path) == [
        f"{tmp_path}/sources.yaml: source 'books': {tmp_path}/ingest_books.py selects source 'github' "
        'instead; change the source name in its last line to "books"'
    ]
