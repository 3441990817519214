"""The emulator's contract tests load their own small bundle (tests/emulator/bundle)."""

from __future__ import annotations

import pathlib

import pytest

BUNDLE = pathlib.Path(__file__).parent / "bundle"


@pytest.fixture
def databricks_bundle_dir() -> pathlib.Path:
    return BUNDLE


@pytest.fixture
def sdk(databricks_emulator):
    """A databricks-sdk WorkspaceClient on the emulator, with short retry budgets."""
    return databricks_emulator.client(retry_timeout_seconds=30)


@pytest.fixture(scope="module")
def moto_s3_url():
    """A real S3 endpoint (moto server on a free port) for the storage-mapping tests."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    port = server._server.server_port  # port 0 was resolved by werkzeug
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3(moto_s3_url):
    import boto3

    client = boto3.client("s3", endpoint_url=moto_s3_url, region_name="us-east-1")
    client.create_bucket(Bucket="contract-bucket")
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="contract-bucket"):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket="contract-bucket", Key=obj["Key"])
    client.delete_bucket(Bucket="contract-bucket")
