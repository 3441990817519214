"""sources.yaml validation: good config loads, bad config fails naming the source and the field."""

from __future__ import annotations

import copy
import datetime
import json
import pathlib

import pytest
import yaml

from airbricks.ingestion.config import (
    CursorPagination,
    LinkHeaderPagination,
    PageNumberPagination,
    SourceConfigError,
    load_sources,
    parse_sources,
)
from airbricks.partitions import raw_bucket

SOURCES_YAML = pathlib.Path(__file__).resolve().parents[2] / "dags" / "sources.yaml"

MINIMAL = {
    "defaults": {"owner": "team-a", "start_date": "2026-11-01", "tags": ["ingestion"]},
    "sources": {
        "api": {
            "schedule": "@daily",
            "tags": ["api"],
            "datasets": {
                "items": {
                    "path": "/items",
                    "pagination": {"style": "cursor", "cursor_param": "c", "cursor_path": "meta.next"},
                }
            },
        }
    },
}


def _with(path: str, value) -> dict:
    """MINIMAL with one value replaced; ``path`` is dotted from the top (sources.api....)."""
    doc = copy.deepcopy(MINIMAL)
    *parents, last = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return doc


def test_repo_sources_yaml_is_valid_and_matches_the_replay_fixtures():
    sources = {s.name: s for s in load_sources(SOURCES_YAML)}
    assert set(sources) >= {"hackernews", "github"}
    hn = sources["hackernews"].datasets["stories"]
    assert hn.path == "/api/v1/search_by_date"
    assert hn.records_path == "hits"
    assert hn.required_fields == ("objectID", "title", "created_at_i")
    assert hn.pagination == PageNumberPagination(
        style="page_number", page_param="page", start_page=0, total_pages_path="nbPages"
    )
    assert "{{ data_interval_start.int_timestamp }}" in hn.query_params["numericFilters"]
    gh = sources["github"]
    assert gh.auth.type == "bearer"
    assert gh.http_conn_id == "http_github"
    assert gh.datasets["issues"].pagination == LinkHeaderPagination(style="link_header")
    assert gh.datasets["issues"].required_fields == ("id", "number", "title", "updated_at")
    for source in sources.values():
        assert source.task.retries >= 2
        assert source.owner != "airflow"


def test_defaults_merge_and_tags_accumulate():
    (source,) = parse_sources(MINIMAL)
    assert source.owner == "team-a"
    assert source.tags == ("ingestion", "api")
    assert source.start_date == datetime.date(2026, 11, 1)
    assert source.http_conn_id == "http_api"
    assert source.dag_id == "ingest_api"
    assert isinstance(source.datasets["items"].pagination, CursorPagination)
    assert source.task.on_failure_callback == "airbricks.notifications.on_task_failure"


def test_yaml_scalars_become_query_strings():
    (source,) = parse_sources(_with("sources.api.datasets.items.query_params", {"n": 100, "flag": True}))
    assert source.datasets["items"].query_params == {"n": "100", "flag": "true"}


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("sources.api.task", {"retries": 1}, "task.retries"),
        ("sources.api.owner", "airflow", "owner"),
        ("sources.api.datasets.items.pagination", {"style": "pages"}, "datasets.items.pagination"),
        (
            "sources.api.datasets.items.pagination",
            {"style": "cursor"},
            "datasets.items.pagination.cursor.cursor_param",
        ),
        ("sources.api.datasets.items.path", "https://evil.example/items", "datasets.items.path"),
        ("sources.api.datasets.items.unknown_key", 1, "datasets.items.unknown_key"),
        ("sources.api.http", {"retry_statuses": [200]}, "http.retry_statuses"),
        ("sources.api.task", {"on_failure_callback": "not a path"}, "task.on_failure_callback"),
        ("sources.api.datasets", {}, "datasets"),
        ("sources.api.datasets", {"Bad-Name": {"path": "/x"}}, "datasets"),
    ],
)
def test_invalid_field_is_named_with_its_source(path, value, field):
    with pytest.raises(SourceConfigError) as info:
        parse_sources(_with(path, value), origin="sources.yaml")
    message = str(info.value)
    assert "source 'api'" in message
    assert f"field '{field}" in message, message


def test_every_broken_source_is_reported_at_once():
    doc = _with("sources.api.owner", "airflow")
    doc["sources"]["other"] = {"schedule": "@daily"}  # no datasets
    with pytest.raises(SourceConfigError) as info:
        parse_sources(doc)
    assert "source 'api'" in str(info.value)
    assert "source 'other': field 'datasets'" in str(info.value)


def test_unknown_top_level_key_and_invalid_yaml(tmp_path):
    with pytest.raises(SourceConfigError, match="unknown top-level keys"):
        parse_sources({**MINIMAL, "source": {}})
    bad = tmp_path / "sources.yaml"
    bad.write_text("sources: [unclosed")
    with pytest.raises(SourceConfigError, match="not valid YAML"):
        load_sources(bad)


def test_a_yaml_syntax_error_names_file_line_and_column_and_says_it_breaks_every_source(tmp_path):
    """A syntax error cannot be pinned to one source: each source's DAG reports the same precise error."""
    from airbricks.ingestion.dag_factory import build_source_dag

    file = tmp_path / "sources.yaml"
    file.write_text(
        "defaults:\n  owner: team\n  start_date: 2026-01-01\nsources:\n"
        "  good:\n    schedule: '@daily'\n    datasets: {d: {path: /d}}\n"
        "  broken:\n    schedule: '@daily'\n     datasets: {d: {path: /d}}\n"  # line 10: one space too many
    )
    messages = set()
    for name in ("good", "broken"):
        with pytest.raises(SourceConfigError) as info:
            build_source_dag(file, name)
        messages.add(str(info.value))
    (message,) = messages  # the same message from every source's DAG file
    assert message.startswith(
        f"{file}:10:6: not valid YAML: did not find expected key (while parsing a block mapping at line 9, "
        "column 5)."
    )
    assert "every source in it (every ingest_<source> DAG) fails to import until this is fixed" in message


def test_env_overrides_apply_on_top_of_every_source(monkeypatch, tmp_path):
    file = tmp_path / "sources.yaml"
    file.write_text(yaml.safe_dump(_with("sources.api.http", {"backoff_max_seconds": 30})))
    monkeypatch.setenv("AIRBRICKS_INGEST_OVERRIDES", json.dumps({"http": {"backoff_max_seconds": 0.05}}))
    (source,) = load_sources(file)
    assert source.http.backoff_max_seconds == 0.05
    monkeypatch.setenv("AIRBRICKS_INGEST_OVERRIDES", "{not json")
    with pytest.raises(SourceConfigError, match="AIRBRICKS_INGEST_OVERRIDES is not valid JSON"):
        load_sources(file)


def test_bucket_env(monkeypatch):
    monkeypatch.delenv("AIRBRICKS_RAW_BUCKET", raising=False)
    assert raw_bucket() == "airbricks-raw"
    monkeypatch.setenv("AIRBRICKS_RAW_BUCKET", "my-raw")
    assert raw_bucket() == "my-raw"
