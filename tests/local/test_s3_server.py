"""The local S3 server (moto server mode) over real HTTP, and the Airflow connections pointing at it."""

from __future__ import annotations

import json
import secrets

import pytest
import requests

from airbricks.local.connections import airflow_conn_env
from airbricks.local.replay import ReplayServer
from airbricks.local.s3 import S3Server

pytestmark = pytest.mark.integration


def test_bucket_create_put_get_over_http(s3_server: S3Server) -> None:
    assert s3_server.endpoint_url.startswith("http://127.0.0.1:")
    bucket = s3_server.create_bucket("local-s3-roundtrip")
    assert s3_server.create_bucket(bucket) == bucket  # idempotent
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="raw/a/dt=2026-11-19/part-00001.json", Body=b'{"x": 1}\n')
    body = client.get_object(Bucket=bucket, Key="raw/a/dt=2026-11-19/part-00001.json")["Body"].read()
    assert body == b'{"x": 1}\n'
    assert s3_server.list_keys(bucket, "raw/") == ["raw/a/dt=2026-11-19/part-00001.json"]
    # Real HTTP: a plain GET of the listing answers S3's XML.
    listing = requests.get(f"{s3_server.endpoint_url}/{bucket}?list-type=2", timeout=5)
    assert listing.status_code == 200
    assert "part-00001.json" in listing.text


def test_reset_forgets_buckets_and_objects(s3_server: S3Server) -> None:
    s3_server.create_bucket("local-s3-reset")
    s3_server.client().put_object(Bucket="local-s3-reset", Key="k", Body=b"v")
    s3_server.reset()
    names = [b["Name"] for b in s3_server.client().list_buckets()["Buckets"]]
    assert "local-s3-reset" not in names


def test_servers_of_one_process_share_state_so_an_owner_starts_its_bucket_and_queue_empty(
    s3_server: S3Server,
) -> None:
    """moto's state is per process: a second server shows the first one's objects and queued messages.

    A stage that owns a bucket (``make demo``'s raw and lake buckets) creates it with ``empty=True`` and
    ``notify_manifests`` purges its queue, so a stack started late in a test session sees no earlier data.
    """
    bucket = s3_server.create_bucket("local-s3-owned")
    client = s3_server.client()
    for n in range(3):
        client.put_object(Bucket=bucket, Key=f"raw/x/dt=2026-11-{19 + n}/_manifest.json", Body=b"{}")
    queue_url = s3_server.notify_manifests(bucket, queue_name="local-s3-owned-queue")
    client.put_object(Bucket=bucket, Key="raw/x/dt=2026-11-22/_manifest.json", Body=b"{}")
    with S3Server() as second:
        assert second.list_keys(bucket, "raw/") == s3_server.list_keys(bucket, "raw/")  # shared
        sqs = second.sqs_client()
        waiting = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])
        assert int(waiting["Attributes"]["ApproximateNumberOfMessages"]) >= 1
        assert second.create_bucket(bucket, empty=True) == bucket
        assert second.list_keys(bucket) == []
        queue_url = second.notify_manifests(bucket, queue_name="local-s3-owned-queue")
        assert queue_url.startswith(second.endpoint_url)
        assert queue_url.endswith("/local-s3-owned-queue")
        # Only S3's own s3:TestEvent for the new configuration, none of the earlier manifests.
        stale = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        assert not [m["Body"] for m in stale if "_manifest.json" in m["Body"]]
        # Still notifying: a new manifest reaches the (purged) queue.
        second.client().put_object(Bucket=bucket, Key="raw/x/dt=2026-11-23/_manifest.json", Body=b"{}")
        answer = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = answer.get("Messages", [])
        assert any("2026-11-23" in m["Body"] for m in messages)  # the key is URL-encoded (dt%3D)


def test_start_stop_context_manager_frees_the_port() -> None:
    with S3Server() as server:
        url = server.endpoint_url
        assert requests.get(f"{url}/moto-api/", timeout=5).status_code == 200
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/moto-api/", timeout=2)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.endpoint_url


def test_airflow_conn_env_drives_real_hooks(
    s3_server: S3Server, replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = secrets.token_hex(16)
    replay_server.set_token("github", token)
    env = airflow_conn_env(s3_server, replay_server)
    assert set(env) == {
        "AIRFLOW_CONN_AWS_DEFAULT",
        "AIRFLOW_CONN_HTTP_GITHUB",
        "AIRFLOW_CONN_HTTP_HACKERNEWS",
    }
    assert json.loads(env["AIRFLOW_CONN_HTTP_GITHUB"])["password"] == token
    assert "password" not in json.loads(env["AIRFLOW_CONN_HTTP_HACKERNEWS"])
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.providers.http.hooks.http import HttpHook

    s3_server.create_bucket("local-s3-hook")
    hook = S3Hook(aws_conn_id="aws_default")
    hook.load_string("hello", key="from-hook.txt", bucket_name="local-s3-hook", replace=True)
    assert s3_server.list_keys("local-s3-hook") == ["from-hook.txt"]

    response = HttpHook(method="GET", http_conn_id="http_hackernews").run(
        "/api/v1/search_by_date", data={"page": "1"}
    )
    assert response.json()["page"] == 1
    assert replay_server.requests[-1].query["page"] == "1"
