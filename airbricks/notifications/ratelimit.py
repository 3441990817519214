"""Per-DAG token bucket shared by every worker pod, so a storm of failures sends one summary.

Why not process memory: with the KubernetesExecutor every task runs in its own pod, so an in-process
limiter would see one failure per pod and never limit anything.

Why not an Airflow Variable: a Variable can be read and written from any pod (through the API server),
but there is no compare-and-set, so N pods failing in the same second all read "1 token left" and all
send. The bucket state therefore lives in a store with an atomic conditional write:

- :class:`S3StateStore` (default on a cluster): one small JSON object per DAG, updated with S3 conditional
  writes (``If-None-Match: *`` to create, ``If-Match: <etag>`` to update), which S3 applies atomically.
  It reuses the ``aws_default`` connection and the raw bucket every airbricks deployment already has.
- :class:`FileStateStore` (single host: ``make demo``, a laptop): a JSON file per DAG under an ``flock``.

Losing the race is retried; if the store is unreachable the limiter fails open (sends), because a missed
alert is worse than a duplicate one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import re
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from urllib.parse import urlparse

log = logging.getLogger(__name__)

#: Suppressed events kept in detail in the state (the count keeps going past it).
MAX_KEPT_EVENTS = 50
_CAS_ATTEMPTS = 20
_SAFE_KEY = re.compile(r"[^A-Za-z0-9_.-]")


class StateStore(Protocol):
    """Keyed JSON state with an atomic compare-and-set."""

    def load(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """Return ``(state, version)``; ``(None, None)`` when the key does not exist yet."""
        ...

    def compare_and_set(self, key: str, version: str | None, state: dict[str, Any]) -> bool:
        """Write ``state`` only if the stored version is still ``version`` (None: only if absent)."""
        ...


class FileStateStore:
    """State files in a local directory; correct across processes of one host (``flock``)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = pathlib.Path(directory)

    def _path(self, key: str) -> pathlib.Path:
        return self.directory / f"{_SAFE_KEY.sub('_', key)}.json"

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[pathlib.Path]:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        with open(path.with_suffix(".lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def load(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        with self._locked(key) as path:
            if not path.exists():
                return None, None
            text = path.read_text()
            return json.loads(text), _digest(text)

    def compare_and_set(self, key: str, version: str | None, state: dict[str, Any]) -> bool:
        with self._locked(key) as path:
            current = _digest(path.read_text()) if path.exists() else None
            if current != version:
                return False
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(state, sort_keys=True))
            tmp.replace(path)
            return True


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class S3StateStore:
    """State objects in S3, written with conditional PUTs (atomic compare-and-set on the ETag).

    :param bucket: bucket name.
    :param prefix: key prefix, e.g. ``_airbricks/notifications/``.
    :param aws_conn_id: Airflow connection for S3 (its ``endpoint_url`` extra is honoured).
    """

    def __init__(self, bucket: str, prefix: str = "", aws_conn_id: str | None = "aws_default") -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.aws_conn_id = aws_conn_id
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from airflow.providers.amazon.aws.hooks.s3 import S3Hook

            self._client = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        return self._client

    def _key(self, key: str) -> str:
        return f"{self.prefix}{_SAFE_KEY.sub('_', key)}.json"

    def load(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return None, None
            raise
        return json.loads(response["Body"].read()), response["ETag"]

    def compare_and_set(self, key: str, version: str | None, state: dict[str, Any]) -> bool:
        from botocore.exceptions import ClientError

        condition = {"IfNoneMatch": "*"} if version is None else {"IfMatch": version}
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=json.dumps(state, sort_keys=True).encode(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            # 412: someone else wrote first; 409: a concurrent conditional write is in flight.
            if code in {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}:
                return False
            raise
        return True


def store_from_url(url: str) -> StateStore:
    """``s3://bucket/prefix`` → :class:`S3StateStore`; ``file:///dir`` or a path → :class:`FileStateStore`."""
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"Notification state URL {url!r} has no bucket (expected s3://bucket/prefix)")
        return S3StateStore(parsed.netloc, parsed.path)
    if parsed.scheme in {"", "file"}:
        return FileStateStore(parsed.path or url)
    raise ValueError(
        f"Unsupported notification state URL {url!r}: use s3://bucket/prefix or file:///absolute/dir"
    )


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to do with one event: send it (with a summary of what was held back before) or hold it."""

    send: bool
    suppressed: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    suppressed_count: int = 0
    suppressed_since: float | None = None


class TokenBucket:
    """Token bucket per DAG: ``burst`` notifications at once, then one per ``refill_seconds``.

    Held-back events accumulate in the state; they are released as one summary with the next event that
    gets a token, or by :meth:`drain` (called by the DAG-run failure callback at the end of a storm).
    """

    def __init__(
        self,
        store: StateStore,
        *,
        burst: int = 3,
        refill_seconds: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        if refill_seconds <= 0:
            raise ValueError(f"refill_seconds must be > 0, got {refill_seconds}")
        self.store = store
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.clock = clock

    def _update(self, key: str, change: Callable[[dict[str, Any], float], Decision]) -> Decision:
        for _ in range(_CAS_ATTEMPTS):
            state, version = self.store.load(key)
            now = self.clock()
            state = state or {"tokens": float(self.burst), "updated": now, "suppressed": [], "count": 0}
            elapsed = max(0.0, now - state["updated"])
            state["tokens"] = min(float(self.burst), state["tokens"] + elapsed / self.refill_seconds)
            state["updated"] = now
            decision = change(state, now)
            if self.store.compare_and_set(key, version, state):
                return decision
        raise RuntimeError(f"Could not update notification state {key!r} after {_CAS_ATTEMPTS} attempts")

    def acquire(self, key: str, event: dict[str, Any]) -> Decision:
        """Take a token for ``event``; when none is left the event is recorded for the next summary."""

        def change(state: dict[str, Any], now: float) -> Decision:
            if state["tokens"] >= 1.0:
                state["tokens"] -= 1.0
                return _release(state, send=True)
            if not state["count"]:
                state["since"] = now
            state["count"] += 1
            if len(state["suppressed"]) < MAX_KEPT_EVENTS:
                state["suppressed"].append(event)
            return Decision(send=False)

        return self._update(key, change)

    def drain(self, key: str) -> Decision:
        """Release whatever is held back for ``key`` (no token needed): one summary, or nothing."""
        return self._update(key, lambda state, _now: _release(state, send=bool(state["count"])))

    def swap_flag(self, key: str, flag: str, value: bool) -> bool:
        """Set a boolean ``flag`` in the state of ``key``; return its previous value (False if unset)."""
        previous: list[bool] = []

        def change(state: dict[str, Any], _now: float) -> Decision:
            flags = state.setdefault("flags", {})
            previous.append(bool(flags.get(flag, False)))
            flags[flag] = value
            return Decision(send=False)

        self._update(key, change)
        return previous[-1]


def _release(state: dict[str, Any], *, send: bool) -> Decision:
    decision = Decision(
        send=send,
        suppressed=list(state["suppressed"]),
        suppressed_count=int(state["count"]),
        suppressed_since=state.get("since"),
    )
    state["suppressed"], state["count"] = [], 0
    state.pop("since", None)
    return decision
