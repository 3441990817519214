"""Retry-After aware waits, idempotency tokens and partition resolution (pure logic, no server)."""

from __future__ import annotations

import types
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import aiohttp
import pytest
import requests
from airflow.sdk import Asset
from tenacity import RetryCallState, Retrying, wait_exponential, wait_fixed

from airbricks.databricks.hooks import AirbricksDatabricksHook, normalise_endpoint
from airbricks.databricks.processing import job_parameters_from_events
from airbricks.databricks.retry import (
    idempotency_token,
    parse_retry_after,
    retry_after_from_exception,
    wait_retry_after,
)
from airbricks.partitions import RawPartition


def _http_error(status: int, retry_after: str | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return requests.HTTPError(f"{status}", response=response)


def _state(exception: BaseException, attempt: int = 1) -> RetryCallState:
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exception), exception, None))
    return state


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), ("0", 0.0), (" 2.5 ", 2.5), ("-3", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_parse_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date():
    now = datetime(2026, 11, 21, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0


def test_wait_uses_retry_after_on_429_and_503_only():
    wait = wait_retry_after(wait_fixed(1.5), max_wait=60)
    assert wait(_state(_http_error(429, "7"))) == 7.0
    assert wait(_state(_http_error(503, "4"))) == 4.0
    # Other statuses, or no usable header: the fallback back-off.
    assert wait(_state(_http_error(500, "7"))) == 1.5
    assert wait(_state(_http_error(429))) == 1.5
    assert wait(_state(_http_error(503, "garbage"))) == 1.5
    assert wait(_state(requests.ConnectionError("refused"))) == 1.5


def test_wait_caps_a_huge_retry_after():
    wait = wait_retry_after(wait_fixed(1), max_wait=30)
    assert wait(_state(_http_error(429, "86400"))) == 30


def test_wait_reads_aiohttp_errors_too():
    error = aiohttp.ClientResponseError(
        request_info=None, history=(), status=429, message="slow down", headers={"Retry-After": "3"}
    )
    assert retry_after_from_exception(error) == 3.0
    assert wait_retry_after(wait_fixed(1))(_state(error)) == 3.0


def test_hook_installs_the_retry_after_wait_in_every_call_path(monkeypatch):
    hook = AirbricksDatabricksHook(retry_limit=4, retry_delay=0.5)
    wait = hook.retry_args["wait"]
    assert isinstance(wait, wait_retry_after)
    assert wait(_state(_http_error(429, "9"))) == 9.0
    # Without Retry-After the provider's exponential back-off is kept (min=retry_delay, max=2**limit).
    assert 0.5 <= wait(_state(_http_error(500), attempt=1)) <= 16
    # Both the sync and the async retry objects are built from retry_args.
    assert hook._get_retry_object().wait is wait
    assert hook._a_get_retry_object().wait is wait
    custom = AirbricksDatabricksHook(retry_args={"wait": wait_exponential(min=2, max=3)})
    assert isinstance(custom.retry_args["wait"], wait_retry_after)
    assert custom.retry_args["wait"](_state(_http_error(503, "1"))) == 1.0


def test_endpoint_normalisation():
    assert normalise_endpoint("/api/2.1/clusters/get") == "2.1/clusters/get"
    assert normalise_endpoint("2.0/fs/files/Volumes/a") == "2.0/fs/files/Volumes/a"
    with pytest.raises(ValueError, match="empty"):
        normalise_endpoint(" /api/ ")


def test_file_status_request_picks_files_api_or_dbfs():
    request = AirbricksDatabricksHook.file_status_request
    assert request("/Volumes/main/raw/landing/a b.json") == (
        "HEAD",
        "2.0/fs/files/Volumes/main/raw/landing/a%20b.json",
        None,
    )
    assert request("/Volumes/main/raw/landing/")[1] == "2.0/fs/directories/Volumes/main/raw/landing"
    assert request("dbfs:/tmp/x") == ("GET", "2.0/dbfs/get-status", {"path": "/tmp/x"})
    with pytest.raises(ValueError, match="must be /Volumes"):
        request("relative/path")


def test_idempotency_token_is_stable_per_task_of_a_dag_run_and_fits_the_api():
    token = idempotency_token("dag", "manual__2026-11-20T00:00:00+00:00", "run_job")
    assert token == idempotency_token("dag", "manual__2026-11-20T00:00:00+00:00", "run_job")
    assert len(token) == 64
    assert token.isalnum()
    others = {
        idempotency_token("dag", "manual__2026-11-21T00:00:00+00:00", "run_job"),
        idempotency_token("dag", "manual__2026-11-20T00:00:00+00:00", "other_task"),
        idempotency_token("dag", "manual__2026-11-20T00:00:00+00:00", "run_job", 1),
        idempotency_token("dag", "manual__2026-11-20T00:00:00+00:00", "run_job", salt="clear=1"),
        idempotency_token("dag2", "manual__2026-11-20T00:00:00+00:00", "run_job"),
    }
    assert token not in others
    assert len(others) == 5
    # Long ids still give 64 characters.
    assert len(idempotency_token("d" * 250, "r" * 250, "t" * 250)) == 64


class _Events(dict):
    """The shape of ``triggering_asset_events``: a mapping of Asset -> events with ``.extra``."""


def _event(extra, timestamp="2026-11-21T01:00:00+00:00"):
    return types.SimpleNamespace(extra=extra, timestamp=timestamp)


def _params(events, params=None):
    return job_parameters_from_events(
        events,
        bucket="raw",
        source="hackernews",
        dataset="stories",
        params=params or {},
        output_root="s3://lake/hn/",
    )


def test_job_parameters_one_per_event_sorted_and_deduplicated():
    asset = Asset("s3://raw/raw/hackernews/stories")
    other = Asset("s3://raw/raw/github/issues")
    day = RawPartition.from_key("hackernews", "stories", "2026-11-20")
    events = _Events(
        {
            asset: [
                _event(day.to_extra("raw")),
                # What ingestion emitted before partition keys: the URI alone (no trailing slash here).
                _event({"partition": "s3://raw/raw/hackernews/stories/dt=2026-11-19", "records": 3}),
                _event({**day.to_extra("raw"), "records": 5}),
            ],
            other: [_event({"partition": "s3://raw/raw/github/issues/dt=2026-11-20/"})],
        }
    )
    params = _params(events)
    assert [p["partition_key"] for p in params] == ["2026-11-19", "2026-11-20"]
    assert params[1] == {**day.job_parameters("raw"), "output_root": "s3://lake/hn/"}


def test_hour_partitions_are_processed_with_their_hr_folder():
    hour = RawPartition.from_key("hackernews", "stories", "2026-11-20T05")
    events = _Events({Asset("s3://raw/raw/hackernews/stories"): [_event(hour.to_extra("raw"))]})
    [params] = _params(events)
    assert params["partition_path"] == "s3://raw/raw/hackernews/stories/dt=2026-11-20/hr=05/"
    assert params["partition_folder"] == "dt=2026-11-20/hr=05/"
    assert (params["interval_start"], params["interval_end"]) == (
        "2026-11-20T05:00:00+00:00",
        "2026-11-20T06:00:00+00:00",
    )
    # The old URI-only extra in the hr= form is accepted too (the regex before RawPartition refused it).
    old = _Events({Asset("s3://raw/raw/hackernews/stories"): [_event({"partition": hour.uri("raw")})]})
    assert _params(old) == [params]


def test_job_parameters_from_params_for_manual_runs_and_clear_errors():
    uri = "s3://raw/raw/hackernews/stories"
    [manual] = _params(_Events(), {"partition_key": "2026-11-20"})
    assert manual["partition_path"] == "s3://raw/raw/hackernews/stories/dt=2026-11-20/"
    with pytest.raises(ValueError, match="nothing to process"):
        _params(None, {"partition_key": ""})
    with pytest.raises(ValueError, match=r"no usable raw partition.*neither 'partition_key' nor 'partition'"):
        _params(_Events({Asset(uri): [_event({"records": 1})]}))
    with pytest.raises(ValueError, match="not in the raw bucket 'raw'"):
        _params(
            _Events({Asset(uri): [_event({"partition": "s3://other/raw/hackernews/stories/dt=2026-11-20/"})]})
        )
    with pytest.raises(ValueError, match="names a partition of github/issues"):
        _params(_Events({Asset(uri): [_event({"partition": "s3://raw/raw/github/issues/dt=2026-11-20/"})]}))
    with pytest.raises(ValueError, match=r"param partition_key: .*'2026-11-20T5'"):
        _params(_Events(), {"partition_key": "2026-11-20T5"})


def test_a_run_of_one_partition_key_processes_exactly_that_partition():
    # A PartitionedAssetTimetable run (or a REST trigger with partition_key) carries its key: a rerun of
    # one interval re-processes that partition only, whatever else the events or the conf name.
    asset = Asset("s3://raw/raw/hackernews/stories")
    days = [RawPartition.from_key("hackernews", "stories", f"2026-11-{d}") for d in (18, 19, 20)]
    events = _Events({asset: [_event(day.to_extra("raw")) for day in days]})
    only = job_parameters_from_events(
        events,
        bucket="raw",
        source="hackernews",
        dataset="stories",
        params={"partition_key": "2026-11-18"},
        output_root="s3://lake/hn/",
        partition_key="2026-11-19",
    )
    assert [p["partition_key"] for p in only] == ["2026-11-19"]
    [without_events] = job_parameters_from_events(
        None,
        bucket="raw",
        source="hackernews",
        dataset="stories",
        params={},
        output_root="s3://lake/hn/",
        partition_key="2026-11-20T05",
    )
    assert without_events["partition_folder"] == "dt=2026-11-20/hr=05/"
