"""A local S3 endpoint: moto's server mode on ``127.0.0.1`` and a free port, spoken to over real HTTP.

boto3, ``S3Hook`` and anything else that accepts an ``endpoint_url`` talk to it exactly as they would to
AWS, so the code under test is the code that runs in production. The server runs in a background thread
of the calling process (``moto.server.ThreadedMotoServer``); other processes (Airflow task processes in
``make demo``) reach it over the loopback interface.

moto keeps ONE state per process: every ``S3Server`` started in a process serves the same buckets, objects
and queues, whatever its port. A stage that owns a bucket or queue therefore starts it empty
(``create_bucket(name, empty=True)``, ``notify_manifests``), or a test session's earlier data shows up in it.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.request
from typing import Any

from airbricks.local.processes import BackgroundServer

#: Credentials moto accepts; deliberately not AWS-looking so no scanner takes them for real ones.
LOCAL_ACCESS_KEY_ID = "testing"
LOCAL_SECRET_ACCESS_KEY = "testing"  # noqa: S105 (placeholder, moto accepts any)  # nosec B105
LOCAL_REGION = "us-east-1"


class S3Server(BackgroundServer):
    """moto S3 server on the loopback interface (start/stop/context manager: :class:`BackgroundServer`).

    :param host: interface to bind; loopback by default.
    :param port: port to bind; 0 picks a free one.
    :param quiet: silence the per-request access log werkzeug (moto's HTTP server) writes to stderr.
    """

    description = "S3 server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, quiet: bool = True) -> None:
        super().__init__(host, port)
        self._quiet = quiet
        self._server: Any = None

    def _serve(self) -> int:
        # Imported here: moto is heavy and only needed when a server actually starts.
        from moto.server import ThreadedMotoServer

        if self._quiet:
            # werkzeug logs one INFO line per request on its own logger; errors still show.
            logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=self._host, port=self._port, verbose=False)
        self._server.start()
        return self._server.get_host_and_port()[1]

    def _shutdown(self) -> None:
        self._server.stop()
        self._server = None

    @property
    def endpoint_url(self) -> str:
        """:attr:`url` under the name boto3 and the aws connection give it (``endpoint_url``)."""
        return self.url

    def _boto3_client(self, service: str, **options: Any) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=LOCAL_REGION,
            aws_access_key_id=LOCAL_ACCESS_KEY_ID,
            aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
            **options,
        )

    def client(self) -> Any:
        """A boto3 S3 client bound to this server (placeholder credentials, path-style addressing)."""
        from botocore.config import Config

        return self._boto3_client(
            "s3", config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2})
        )

    def create_bucket(self, name: str, *, empty: bool = False) -> str:
        """Create ``name`` (no error if it already exists); returns the name.

        :param empty: also delete every object already in it (moto's state is per process, see above).
        """
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)
        if empty:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
                keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if keys:  # a page holds at most 1000 keys, DeleteObjects' own limit
                    client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
        return name

    def sqs_client(self) -> Any:
        """A boto3 SQS client bound to this server (moto serves every AWS service on the one port)."""
        return self._boto3_client("sqs")

    def notify_manifests(self, bucket: str, queue_name: str = "airbricks-raw-manifests") -> str:
        """Send ``bucket``'s ``ObjectCreated`` notifications of ``raw/**/_manifest.json`` to a new SQS queue.

        The same configuration as production's (docs/PARTITIONS.md): an S3 QueueConfiguration with a
        prefix ``raw/`` and suffix ``_manifest.json`` filter; moto delivers to its own SQS. Returns the queue
        URL (what ``AIRBRICKS_MANIFEST_QUEUE_URL`` names).
        """
        from airbricks.partitions import MANIFEST_NAME, RAW_ROOT

        sqs = self.sqs_client()
        # A queue of that name may exist in this process already, holding an earlier stack's messages: a new
        # one instead (PurgeQueue would do, but moto, like SQS, allows one purge per queue per 60 s).
        with contextlib.suppress(sqs.exceptions.QueueDoesNotExist):
            sqs.delete_queue(QueueUrl=sqs.get_queue_url(QueueName=queue_name)["QueueUrl"])
        queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        rules = [{"Name": "prefix", "Value": f"{RAW_ROOT}/"}, {"Name": "suffix", "Value": MANIFEST_NAME}]
        self.client().put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {"Key": {"FilterRules": rules}},
                    }
                ]
            },
        )
        return queue_url

    def reset(self) -> None:
        """Forget every bucket and object (moto's ``POST /moto-api/reset``)."""
        url = f"{self.endpoint_url}/moto-api/reset"
        request = urllib.request.Request(url, method="POST", data=b"")  # noqa: S310 - loopback http URL
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback http URL)  # nosec B310
            response.read()

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under ``prefix`` in ``bucket``, sorted."""
        paginator = self.client().get_paginator("list_objects_v2")
        keys = [
            obj["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]
        return sorted(keys)

    def airflow_connection(self) -> dict[str, Any]:
        """The ``aws_default`` connection (Airflow JSON connection format) pointing at this server."""
        return {
            "conn_type": "aws",
            "login": LOCAL_ACCESS_KEY_ID,
            "password": LOCAL_SECRET_ACCESS_KEY,
            "extra": {"endpoint_url": self.endpoint_url, "region_name": LOCAL_REGION},
        }
