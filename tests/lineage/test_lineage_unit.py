"""Dataset naming and the chain reader of airbricks.lineage (no Airflow, no servers)."""

from __future__ import annotations

import json

import pytest

from airbricks.lineage import (
    LineageRun,
    chain_from,
    completed_runs,
    dataset_name,
    format_chain,
    lake_layer_uris,
    layer_io,
    read_events,
)


def test_dataset_names_follow_the_openlineage_naming_spec():
    assert dataset_name("s3://airbricks-raw/raw/hn/stories/dt=2026-11-19/") == (
        "s3://airbricks-raw",
        "raw/hn/stories/dt=2026-11-19",
    )
    # The query string (which may hold an API key) never becomes part of the dataset.
    assert dataset_name("https://api.example.com:8443/v1/items?api_key=SECRET&page=2") == (
        "https://api.example.com:8443",
        "/v1/items",
    )
    with pytest.raises(ValueError, match="no scheme"):
        dataset_name("raw/hn/stories/")


def test_lake_layout_matches_the_bundle_job_and_chains_the_layers():
    layers = lake_layer_uris("s3://lake/hn/stories/", "dt=2026-11-19/", ["domains", "authors"])
    assert layers["gold"] == [
        "s3://lake/hn/stories/gold/authors/dt=2026-11-19/",
        "s3://lake/hn/stories/gold/domains/dt=2026-11-19/",
    ]
    io = layer_io("s3://raw/raw/hn/stories/dt=2026-11-19/", layers)
    assert io["bronze"] == (["s3://raw/raw/hn/stories/dt=2026-11-19/"], layers["bronze"])
    assert io["silver"] == (layers["bronze"], layers["silver"])
    assert io["gold"] == (layers["silver"], layers["gold"])


def _event(job: str, run_id: str, inputs: list[str], outputs: list[str], parent: str | None = None) -> dict:
    def ds(uri: str) -> dict:
        namespace, name = dataset_name(uri)
        return {"namespace": namespace, "name": name}

    facets = {"parent": {"run": {"runId": parent}, "job": {"name": "p"}}} if parent else {}
    return {
        "eventType": "COMPLETE",
        "job": {"name": job},
        "run": {"runId": run_id, "facets": facets},
        "inputs": [ds(u) for u in inputs],
        "outputs": [ds(u) for u in outputs],
    }


def test_the_chain_follows_the_innermost_runs_and_skips_their_parent(tmp_path):
    api, raw, bronze, silver = "https://api/x", "s3://r/raw/p/", "s3://l/bronze/", "s3://l/silver/"
    events = [
        {"eventType": "START", "job": {"name": "ingest"}, "run": {"runId": "i"}},
        _event("ingest", "i", [api], [raw]),
        _event("task", "t", [raw], [bronze, silver]),  # the Airflow task around the Databricks tasks
        _event("task.bronze", "b", [raw], [bronze], parent="t"),
        _event("task.silver", "s", [bronze], [silver], parent="t"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    runs = completed_runs(read_events(path))
    assert [r.job for r in chain_from(runs, api)] == ["ingest", "task.bronze", "task.silver"]
    lines = format_chain(runs, api)
    assert lines[0] == "https://api/x"
    assert lines[3] == "  -> task.bronze (run b, child of task t)"
    assert lines[-1] == "s3://l/silver"
    assert read_events(tmp_path / "missing.jsonl") == []


def test_a_broken_chain_stops_where_the_data_stops():
    runs = [
        LineageRun(
            job="ingest", run_id="i", parent_run_id=None, parent_job=None, inputs=["https://a/x"], outputs=[]
        )
    ]
    assert list(chain_from(runs, "https://a/x")) == []
