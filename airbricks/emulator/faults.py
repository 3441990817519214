"""Fault injection: the same registry is driven from Python (fixture ``.faults``) and over HTTP.

Every fault is "armed" with a count and consumed by the operation it targets, so a test says exactly
how many calls fail and everything afterwards behaves normally again.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from airbricks.emulator.errors import ApiError, invalid

_VERSION_PREFIX = re.compile(r"^/?api/\d+\.\d+/")

# Databricks' codes for the statuses a client is expected to retry.
_HTTP_ERROR_CODES = {
    429: "REQUEST_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    503: "TEMPORARILY_UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def normalize_endpoint(path: str) -> str:
    """``/api/2.2/jobs/runs/get`` and ``jobs/runs/get`` both become ``jobs/runs/get``."""
    return _VERSION_PREFIX.sub("", path.lstrip("/")).strip("/")


@dataclass
class HttpFault:
    endpoint: str  # normalized endpoint ("jobs/runs/get"), a prefix ending in "*", or "*" for all
    status: int
    remaining: int
    retry_after: int
    method: str | None = None

    def matches(self, method: str, endpoint: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.endpoint == "*":
            return True
        if self.endpoint.endswith("*"):
            return endpoint.startswith(self.endpoint[:-1])
        return endpoint == self.endpoint


@dataclass
class ClusterFailure:
    remaining: int
    code: str
    type: str
    message: str
    state: str = "TERMINATED"


@dataclass
class ClusterLoss:
    remaining: int
    after_seconds: float
    code: str
    type: str
    message: str


@dataclass
class RunFailure:
    remaining: int
    kind: str  # FAILED | INTERNAL_ERROR
    message: str
    task_key: str | None = None  # FAILED only: the task that fails (default: the first task that starts)


@dataclass
class _Armed:
    http: list[HttpFault] = field(default_factory=list)
    cluster_start_delay: float | None = None
    cluster_start_failures: list[ClusterFailure] = field(default_factory=list)
    cluster_losses: list[ClusterLoss] = field(default_factory=list)
    run_failures: list[RunFailure] = field(default_factory=list)


class Faults:
    """Thread-safe registry of armed faults. All methods may be called while the server runs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._armed = _Armed()

    # -- arming ---------------------------------------------------------------------------------------
    def http_error(
        self,
        endpoint: str,
        status: int = 429,
        count: int = 1,
        retry_after: int = 1,
        method: str | None = None,
    ) -> None:
        """Answer the next ``count`` calls to ``endpoint`` with ``status`` (429, 500, 502, 503 or 504).

        :param endpoint: ``jobs/runs/get`` (any API version), ``/api/2.1/clusters/get``, a prefix such as
            ``jobs/*``, or ``*`` for every API call.
        :param retry_after: seconds sent in the ``Retry-After`` header.
        :param method: restrict to one HTTP method (``GET``/``POST``...).
        """
        if status not in _HTTP_ERROR_CODES:
            raise invalid(f"status must be one of {sorted(_HTTP_ERROR_CODES)}, got {status!r}")
        if count < 1:
            raise invalid(f"count must be >= 1, got {count!r}")
        endpoint = "*" if endpoint == "*" else normalize_endpoint(endpoint)
        with self._lock:
            self._armed.http.append(HttpFault(endpoint, int(status), int(count), int(retry_after), method))

    def slow_cluster_start(self, seconds: float) -> None:
        """Make every cluster start (all-purpose and job clusters) take ``seconds`` until cleared."""
        with self._lock:
            self._armed.cluster_start_delay = float(seconds)

    def fail_cluster_start(
        self,
        count: int = 1,
        code: str = "CLOUD_PROVIDER_LAUNCH_FAILURE",
        type: str = "CLOUD_FAILURE",
        message: str = "Injected fault: the cloud provider could not launch the instances.",
        state: str = "TERMINATED",
    ) -> None:
        """The next ``count`` cluster starts end in ``state`` (TERMINATED or ERROR) with this reason."""
        if state not in ("TERMINATED", "ERROR"):
            raise invalid(f"state must be TERMINATED or ERROR, got {state!r}")
        with self._lock:
            self._armed.cluster_start_failures.append(ClusterFailure(int(count), code, type, message, state))

    def lose_cluster(
        self,
        count: int = 1,
        after_seconds: float = 0.5,
        code: str = "DRIVER_UNREACHABLE",
        type: str = "CLOUD_FAILURE",
        message: str = "Injected fault: the Spark driver became unreachable.",
    ) -> None:
        """The cluster of the next ``count`` task runs dies ``after_seconds`` into the task."""
        with self._lock:
            self._armed.cluster_losses.append(
                ClusterLoss(int(count), float(after_seconds), code, type, message)
            )

    def fail_runs(
        self,
        count: int = 1,
        kind: str = "FAILED",
        message: str = "Injected fault: the run failed.",
        task_key: str | None = None,
    ) -> None:
        """The next ``count`` runs (or repairs) fail: ``FAILED`` (task error) or ``INTERNAL_ERROR`` (platform
        error). A ``FAILED`` fault fails the first task that starts, or the task ``task_key`` when given (a
        run that does not run that task consumes the fault without failing)."""
        if kind not in ("FAILED", "INTERNAL_ERROR"):
            raise invalid(f"kind must be FAILED or INTERNAL_ERROR, got {kind!r}")
        if task_key is not None and kind != "FAILED":
            raise invalid("task_key applies to kind FAILED only (INTERNAL_ERROR fails the whole run)")
        with self._lock:
            self._armed.run_failures.append(RunFailure(int(count), kind, message, task_key))

    def clear(self) -> None:
        """Disarm everything."""
        with self._lock:
            self._armed = _Armed()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return asdict(self._armed)

    def arm(self, spec: dict[str, Any]) -> None:
        """Arm one fault from its JSON description (the admin endpoint's body).

        ``{"kind": "http_error" | "slow_cluster_start" | "fail_cluster_start" | "lose_cluster" |
        "fail_runs", ...keyword arguments of the method of the same name}``.
        """
        if not isinstance(spec, dict) or "kind" not in spec:
            raise invalid("fault body must be a JSON object with a 'kind' field")
        kinds = {
            "http_error": self.http_error,
            "slow_cluster_start": self.slow_cluster_start,
            "fail_cluster_start": self.fail_cluster_start,
            "lose_cluster": self.lose_cluster,
            "fail_runs": self.fail_runs,
        }
        args = dict(spec)
        kind = args.pop("kind")
        if kind not in kinds:
            raise invalid(f"unknown fault kind {kind!r}; expected one of {sorted(kinds)}")
        try:
            kinds[kind](**args)
        except TypeError as exc:
            raise invalid(f"bad arguments for fault {kind!r}: {exc}") from exc

    # -- consuming (called by the server) -------------------------------------------------------------
    def take_http(self, method: str, path: str) -> ApiError | None:
        endpoint = normalize_endpoint(path)
        with self._lock:
            for fault in self._armed.http:
                if fault.matches(method, endpoint):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._armed.http.remove(fault)
                    code = _HTTP_ERROR_CODES[fault.status]
                    return ApiError(
                        fault.status,
                        code,
                        f"Injected fault: {code} for {method} {endpoint}",
                        headers={"Retry-After": str(fault.retry_after)},
                    )
        return None

    def cluster_start_delay(self, default: float) -> float:
        with self._lock:
            delay = self._armed.cluster_start_delay
        return default if delay is None else delay

    def take_cluster_start_failure(self) -> ClusterFailure | None:
        with self._lock:
            return _take(self._armed.cluster_start_failures)

    def take_cluster_loss(self) -> ClusterLoss | None:
        with self._lock:
            return _take(self._armed.cluster_losses)

    def take_run_failure(self) -> RunFailure | None:
        with self._lock:
            return _take(self._armed.run_failures)


def _take(queue: list) -> Any:
    if not queue:
        return None
    item = queue[0]
    item.remaining -= 1
    if item.remaining <= 0:
        queue.pop(0)
    return item
