"""Parameter-boundary storage mapping: ``s3://`` parameters become local paths mirrored from/to S3.

See docs/EMULATOR.md "Local data access". Spark's S3A jars cannot be installed offline, so instead of
teaching Spark S3, the emulator hands the task a local directory that mirrors the S3 prefix before the task
and syncs changes back after it. Job code stays identical to the code that runs on Databricks.
"""

from __future__ import annotations

import hashlib
import logging
import pathlib
import re
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

_S3_URI = re.compile(r"^s3[an]?://([^/]+)/?(.*)$")


@dataclass
class Mirror:
    """One mapped prefix: where it lives in S3, where locally, and what was downloaded."""

    bucket: str
    prefix: str
    local: pathlib.Path
    downloaded: dict[str, str] = field(default_factory=dict)  # relative path -> md5


class StorageMapper:
    """Maps ``s3://bucket/prefix`` values to ``<storage_dir>/<run>/bucket/prefix`` and syncs them.

    :param endpoint_url: S3 endpoint (e.g. the local moto server). ``None`` disables the mapping.
    :param storage_dir: local root of the mirrors.
    """

    def __init__(self, endpoint_url: str | None, storage_dir: pathlib.Path):
        self.endpoint_url = endpoint_url
        self.storage_dir = storage_dir
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint_url)

    def _s3(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3  # imported only when a run actually maps s3:// parameters

                self._client = boto3.client("s3", endpoint_url=self.endpoint_url)
            return self._client

    def map_value(self, value: Any, mirrors: dict[str, Mirror], run_key: str) -> Any:
        """Return the local path for an ``s3://`` value (registering its mirror), else the value itself.

        Each run gets its own tree (``<storage_dir>/<run_key>/bucket/prefix``) so that concurrent runs never
        see each other's half-written files and leftovers of an earlier run are never uploaded.
        """
        if not self.enabled or not isinstance(value, str):
            return value
        match = _S3_URI.match(value)
        if not match:
            return value
        bucket, prefix = match.group(1), match.group(2)
        local = self.storage_dir / run_key / bucket / prefix
        key = f"{bucket}/{prefix.rstrip('/')}"
        mirrors.setdefault(key, Mirror(bucket, prefix, local))
        text = str(local)
        return text + "/" if value.endswith("/") and not text.endswith("/") else text

    def download(self, mirrors: dict[str, Mirror]) -> None:
        """Copy every object under each mirrored prefix to its local directory."""
        client = self._s3()
        for mirror in mirrors.values():
            paginator = client.get_paginator("list_objects_v2")
            # A value naming one object ("s3://b/x.json") mirrors that object; a prefix mirrors its tree.
            base = mirror.prefix
            for page in paginator.paginate(Bucket=mirror.bucket, Prefix=base):
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key == base.rstrip("/"):
                        target, rel = mirror.local, ""
                    else:
                        if base and not base.endswith("/") and not key.startswith(base.rstrip("/") + "/"):
                            continue  # "raw/a" must not match "raw/ab/..."
                        rel = key[len(base) :].lstrip("/")
                        target = mirror.local / rel
                    if key.endswith("/"):
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    client.download_file(mirror.bucket, key, str(target))
                    mirror.downloaded[rel] = _md5(target)

    def upload(self, mirrors: dict[str, Mirror]) -> dict[str, int]:
        """Upload new/changed files and delete removed ones; returns counts for the run's log."""
        client = self._s3()
        stats = {"uploaded": 0, "deleted": 0}
        for mirror in mirrors.values():
            prefix = mirror.prefix.rstrip("/")
            if mirror.local.is_file():
                if mirror.downloaded.get("") != _md5(mirror.local):
                    client.upload_file(str(mirror.local), mirror.bucket, prefix)
                    stats["uploaded"] += 1
                continue
            present: set[str] = set()
            if mirror.local.is_dir():
                for path in sorted(mirror.local.rglob("*")):
                    if not path.is_file() or any(
                        part.startswith(".") for part in path.relative_to(mirror.local).parts
                    ):
                        continue  # Hadoop's local checksum files (.part-*.crc) are not data
                    rel = path.relative_to(mirror.local).as_posix()
                    present.add(rel)
                    if mirror.downloaded.get(rel) != _md5(path):
                        key = f"{prefix}/{rel}" if prefix else rel
                        client.upload_file(str(path), mirror.bucket, key)
                        stats["uploaded"] += 1
            for rel in set(mirror.downloaded) - present - {""}:
                client.delete_object(Bucket=mirror.bucket, Key=f"{prefix}/{rel}" if prefix else rel)
                stats["deleted"] += 1
        return stats


def _md5(path: pathlib.Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
