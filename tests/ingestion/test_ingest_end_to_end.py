"""``ingest_interval`` end to end over real HTTP (replay server) into real S3 (moto server), no Airflow."""

from __future__ import annotations

import datetime
import json
import pathlib

import pytest

from airbricks.ingestion.config import load_sources
from airbricks.ingestion.http import ApiEndpoint, ApiRequestError
from airbricks.ingestion.ingest import ingest_interval
from airbricks.ingestion.pagination import PageValidationError
from airbricks.ingestion.raw_zone import read_manifest

pytestmark = pytest.mark.integration

SOURCES = {
    s.name: s for s in load_sources(pathlib.Path(__file__).resolve().parents[2] / "dags" / "sources.yaml")
}
HN = SOURCES["hackernews"]
HN_PATH = "/api/v1/search_by_date"
BUCKET = "ingest-test"
PREFIX = "raw/hackernews/stories/dt=2026-11-19/"
FAST_HTTP = HN.http.model_copy(update={"backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.02})


@pytest.fixture
def s3(s3_server):
    s3_server.reset()
    s3_server.create_bucket(BUCKET)
    return s3_server


def _ingest(replay, s3, run_id="run-1", day=19, **kwargs):
    sleeps: list[float] = []
    result = ingest_interval(
        source="hackernews",
        dataset="stories",
        config=HN.datasets["stories"],
        endpoint=ApiEndpoint("hackernews", replay.url),
        http_policy=kwargs.pop("http_policy", FAST_HTTP),
        s3=s3.client(),
        bucket=BUCKET,
        interval_start=datetime.datetime(2026, 11, day, tzinfo=datetime.UTC),
        interval_end=datetime.datetime(2026, 11, day + 1, tzinfo=datetime.UTC),
        run_id=run_id,
        sleep=sleeps.append,
        **kwargs,
    )
    return result, sleeps


def _snapshot(s3, prefix="raw/") -> dict[str, bytes]:
    client = s3.client()
    return {k: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in s3.list_keys(BUCKET, prefix)}


def _parts(snapshot: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in snapshot.items() if not k.endswith("_manifest.json")}


def test_success_publishes_pages_as_received(replay_server, s3):
    result, _ = _ingest(replay_server, s3)
    fixtures = pathlib.Path(__file__).resolve().parents[2] / "airbricks" / "local" / "fixtures" / "hackernews"
    snapshot = _snapshot(s3)
    for page in range(3):
        expected = (fixtures / f"search_by_date-page-{page}.json").read_bytes()
        assert snapshot[f"{PREFIX}part-{page + 1:05d}.json"] == expected  # byte-exact raw zone
    manifest = read_manifest(s3.client(), BUCKET, PREFIX)
    assert result.as_dict() == {
        "source": "hackernews",
        "dataset": "stories",
        "partition_key": "2026-11-19",
        "grain": "day",
        "partition": f"s3://{BUCKET}/{PREFIX}",
        "manifest_key": PREFIX + "_manifest.json",
        "pages": 3,
        "records": manifest["records"],
        "bytes": manifest["bytes"],
        "interval_start": "2026-11-19T00:00:00+00:00",
        "interval_end": "2026-11-20T00:00:00+00:00",
    }
    assert manifest["records"] == sum(len(json.loads(snapshot[p["key"]])["hits"]) for p in manifest["parts"])


def test_rerun_is_idempotent(replay_server, s3):
    _ingest(replay_server, s3, run_id="run-1")
    first = _snapshot(s3)
    _ingest(replay_server, s3, run_id="run-2")
    second = _snapshot(s3)
    assert _parts(second) == _parts(first)
    m1, m2 = (json.loads(s[PREFIX + "_manifest.json"]) for s in (first, second))
    assert m2["run_id"] == "run-2"
    for m in (m1, m2):
        m.pop("run_id"), m.pop("created_at")
    assert m1 == m2


def test_shorter_rerun_removes_stale_pages(replay_server, s3):
    replay_server.add_synthetic(HN_PATH, pages=5, per_page=3, style="hackernews")
    assert _ingest(replay_server, s3)[0].pages == 5
    replay_server.reset()
    replay_server.add_synthetic(HN_PATH, pages=2, per_page=3, style="hackernews")
    assert _ingest(replay_server, s3, run_id="run-2")[0].pages == 2
    assert sorted(_snapshot(s3)) == [
        PREFIX + "_manifest.json",
        PREFIX + "part-00001.json",
        PREFIX + "part-00002.json",
    ]


@pytest.mark.faults
@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "retry_after": 1},
        {"status": 503, "times": 2},
        {"reset_connection": "body"},
        {"reset_connection": "before"},
    ],
    ids=["429-retry-after", "503-twice", "reset-mid-body", "reset-before-response"],
)
def test_transient_faults_end_in_the_same_partition(replay_server, s3, fault):
    _ingest(replay_server, s3, run_id="clean")
    clean = _parts(_snapshot(s3))
    s3.reset()
    s3.create_bucket(BUCKET)
    replay_server.clear_requests()
    replay_server.inject(HN_PATH, **fault)
    _, sleeps = _ingest(replay_server, s3, run_id="faulty")
    assert _parts(_snapshot(s3)) == clean
    assert len(sleeps) == fault.get("times", 1)
    if "retry_after" in fault:
        assert sleeps == [1.0]
    assert len(replay_server.requests) == 3 + fault.get("times", 1)


@pytest.mark.faults
def test_bad_page_publishes_nothing_and_keeps_previous_partition(replay_server, s3):
    _ingest(replay_server, s3, run_id="good")
    _ingest(replay_server, s3, run_id="good", day=20)
    before = _snapshot(s3)
    replay_server.add_route("GET", HN_PATH, b'{"hits": [{"objectID": "1"', match={"page": "2"})
    with pytest.raises(
        PageValidationError, match=r"hackernews/stories: page 3 \(http://.*page=2\) is not valid JSON"
    ):
        _ingest(replay_server, s3, run_id="bad")
    assert _snapshot(s3) == before  # this interval's previous partition and the other interval untouched
    assert s3.list_keys(BUCKET, "raw/_staging/") == []


def test_first_bad_run_leaves_no_partition_at_all(replay_server, s3):
    replay_server.add_route("GET", HN_PATH, {"hits": [{"objectID": "1", "title": "t"}]}, match={"page": "1"})
    with pytest.raises(PageValidationError, match=r"page 2 .* misses required field\(s\) \['created_at_i'\]"):
        _ingest(replay_server, s3)
    assert s3.list_keys(BUCKET) == []


@pytest.mark.faults
def test_exhausted_retries_publish_nothing(replay_server, s3):
    replay_server.inject(HN_PATH, status=503, times=100)
    with pytest.raises(ApiRequestError, match=r"hackernews: GET .*page=0 failed after 5 attempts: HTTP 503"):
        _ingest(replay_server, s3)
    assert s3.list_keys(BUCKET) == []


def test_rendered_params_override_config(replay_server, s3):
    _ingest(replay_server, s3, query_params={"tags": "story", "numericFilters": "x>1", "hitsPerPage": "5"})
    assert {r.query["hitsPerPage"] for r in replay_server.requests} == {"5"}
    assert {r.query["numericFilters"] for r in replay_server.requests} == {"x>1"}
