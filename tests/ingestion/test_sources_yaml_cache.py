"""The parsed-sources.yaml cache: same documents and errors as parsing, one source read per DAG file."""

from __future__ import annotations

import datetime
import pathlib
import pickle

import pytest
import yaml

from airbricks.ingestion import yaml_cache
from airbricks.ingestion.config import SourceConfigError, load_source, load_sources
from airbricks.ingestion.yaml_cache import CACHE_DIR_ENV, read_document

SOURCES_YAML = pathlib.Path(__file__).resolve().parents[2] / "dags" / "sources.yaml"


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> pathlib.Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR_ENV, str(directory))
    return directory


class CountingParse:
    """The YAML parse :func:`read_document` falls back to, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, content: bytes):
        self.calls += 1
        return yaml.safe_load(content)


def test_a_second_read_of_the_same_content_parses_nothing_and_returns_the_same_document(cache_dir):
    content = SOURCES_YAML.read_bytes()
    parse = CountingParse()
    first = read_document(content, parse)
    whole = read_document(content, parse)
    one = read_document(content, parse, only="github")
    assert parse.calls == 1
    assert whole == first == yaml.safe_load(content)
    assert isinstance(whole["defaults"]["start_date"], datetime.date)  # YAML types survive
    # one source: every name still declared, in order, only the asked one filled in
    assert list(one["sources"]) == list(first["sources"])
    assert one["sources"]["github"] == first["sources"]["github"]
    assert one["sources"]["hackernews"] is None
    assert one["defaults"] == first["defaults"]


def test_an_edited_file_is_parsed_again(cache_dir, tmp_path):
    file = tmp_path / "sources.yaml"
    file.write_text(SOURCES_YAML.read_text())
    assert load_source(file, "github").schedule == "@daily"
    file.write_text(SOURCES_YAML.read_text().replace('schedule: "@daily"', 'schedule: "@hourly"'))
    assert load_source(file, "github").schedule == "@hourly"
    assert {s.name: s.schedule for s in load_sources(file)} == {"hackernews": "@hourly", "github": "@hourly"}


def test_invalid_yaml_is_never_cached_and_raises_the_same_error_every_time(cache_dir, tmp_path):
    file = tmp_path / "sources.yaml"
    file.write_text("sources:\n  github:\n    schedule: [unclosed\n")
    errors = []
    for _ in range(2):
        with pytest.raises(SourceConfigError, match="not valid YAML") as raised:
            load_source(file, "github")
        errors.append(str(raised.value))
    assert errors[0] == errors[1]
    assert f"{file}:" in errors[0]
    assert not cache_dir.exists() or not any(p for p in cache_dir.iterdir() if not p.name.startswith("."))


def test_a_cached_file_still_reports_a_missing_source_and_field_errors(cache_dir, tmp_path):
    file = tmp_path / "sources.yaml"
    file.write_text(SOURCES_YAML.read_text().replace("retries: 3", "retries: 1"))
    for _ in range(2):  # first read fills the cache, the second is served by it
        with pytest.raises(
            SourceConfigError, match=r"no source 'books' under 'sources' \(declared: hackernews, github\)"
        ):
            load_source(file, "books")
        with pytest.raises(SourceConfigError, match=r"source 'github': field 'task\.retries'"):
            load_source(file, "github")


def test_a_cache_entry_holding_anything_but_yaml_data_is_not_loaded(cache_dir):
    content = SOURCES_YAML.read_bytes()
    parse = CountingParse()
    read_document(content, parse)
    (entry,) = [p for p in cache_dir.iterdir() if not p.name.startswith(".")]
    (entry / "head.pickle").write_bytes(pickle.dumps(pathlib.Path("/etc/passwd")))  # a class, not YAML data
    assert read_document(content, parse) == yaml.safe_load(content)
    assert parse.calls == 2  # refused, parsed again


def test_without_a_writable_cache_directory_the_file_is_parsed(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_DIR_ENV, str(blocker / "cache"))  # cannot be created under a file
    parse = CountingParse()
    assert read_document(SOURCES_YAML.read_bytes(), parse)["sources"]
    assert read_document(SOURCES_YAML.read_bytes(), parse)["sources"]
    assert parse.calls == 2
    monkeypatch.setenv(CACHE_DIR_ENV, "off")
    assert yaml_cache.cache_root() is None


def test_only_the_newest_contents_are_kept(cache_dir):
    for i in range(yaml_cache.KEEP + 3):
        read_document(f"sources: {{s{i}: {{}}}}\n".encode(), CountingParse())
    assert len([p for p in cache_dir.iterdir() if not p.name.startswith(".")]) == yaml_cache.KEEP
