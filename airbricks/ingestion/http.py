"""HTTP client for API ingestion: connection-based auth, timeouts, retries, secret-free error messages.

Retries use ``tenacity`` rather than urllib3's ``Retry`` because:

* a connection reset or timeout while *reading the body* (after the status line arrived) must be retried
  too; urllib3's ``Retry`` only covers the request up to the response headers;
* a server's ``Retry-After`` must be capped (``retry_after_max_seconds``): urllib3 sleeps for whatever the
  server says, which can park a worker slot for hours;
* each attempt is logged and the final error names the source, the (masked) URL and the status.

``requests`` and ``tenacity`` are imported lazily: this module is imported by DAG parsing via the operator.
"""

from __future__ import annotations

import datetime
import email.utils
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

if TYPE_CHECKING:
    import requests

    from airbricks.ingestion.config import HttpPolicy

log = logging.getLogger(__name__)

#: Caps every wait between HTTP attempts (backoff and Retry-After) when set; for tests and local runs.
MAX_WAIT_ENV = "AIRBRICKS_INGEST_MAX_WAIT_SECONDS"
_MASK = "***"
#: Characters of a response body shown in an error message.
EXCERPT_CHARS = 200
#: Bytes of an error response's body read for its excerpt (the rest is never downloaded).
_ERROR_BODY_BYTES = 4096
# A JSON member or query/form pair whose name says it holds a secret: its value is masked in excerpts even
# when it is not one of ours (an API echoing a session token, an error page showing a key).
_SECRET_MEMBER = re.compile(
    r"""(?P<name>["']?[\w-]*(?:password|passwd|secret|token|api[_-]?key|apikey|authorization|credential)[\w-]*["']?)"""
    r"""(?P<sep>\s*[:=]\s*)(?P<value>"(?:[^"\\]|\\.)*"|'[^']*'|[^\s,&;}"']+)""",
    re.IGNORECASE,
)


class ApiRequestError(RuntimeError):
    """A request failed for good: not retryable, or out of attempts. The message holds no secrets."""

    def __init__(self, message: str, *, status: int | None = None, url: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class RetryableResponse(Exception):
    """Internal: a response whose status is in ``retry_statuses`` (carries Retry-After, if any)."""

    def __init__(self, status: int, reason: str, retry_after: float | None, body: str = "") -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status
        self.retry_after = retry_after
        self.body = body  # describe_body() of what the server said, for the final error only


@dataclass(frozen=True)
class ApiEndpoint:
    """Where and how to call an API; built from an Airflow connection by :func:`endpoint_from_connection`.

    :param source: source name, used in messages.
    :param base_url: scheme://host[:port][/prefix], no trailing slash.
    :param headers: headers sent with every request (auth headers included).
    :param params: query params sent with every request (an API key, if the auth style says so).
    :param secret_params: names of query params whose values are masked in URLs shown to humans.
    :param basic_auth: (login, password) for HTTP basic auth, else ``None``.
    :param secret_values: the connection's secrets (token, key, password): masked as ``***`` wherever an
        error message quotes the API (a response body excerpt, a connection error).
    """

    source: str
    base_url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    secret_params: frozenset[str] = frozenset()
    basic_auth: tuple[str, str] | None = None
    secret_values: frozenset[str] = frozenset()

    def __repr__(self) -> str:  # never print header values (tokens)
        return f"ApiEndpoint(source={self.source!r}, base_url={self.base_url!r})"

    def url_for(self, path: str) -> str:
        return self.base_url + path


def base_url_from_connection(conn: Any) -> str:
    """Build the base URL from a connection: ``host`` (may already hold a scheme), ``schema``, ``port``.

    ``schema`` defaults to ``https``: a token must never travel in clear text by accident.
    """
    host = (conn.host or "").strip()
    if not host:
        raise ValueError(f"connection '{conn.conn_id}' has no host")
    if "://" in host:
        base = host
    else:
        scheme = (conn.schema or "https").strip()
        base = f"{scheme}://{host}"
    if conn.port:
        split = urlsplit(base)
        if split.port is None:
            base = urlunsplit((split.scheme, f"{split.hostname}:{conn.port}", split.path, "", ""))
    return base.rstrip("/")


def endpoint_from_connection(source: str, auth_type: str, conn: Any) -> ApiEndpoint:
    """Turn an Airflow connection into an :class:`ApiEndpoint` for ``auth_type``.

    Fields by auth type (all in the connection ``http_<source>``):

    * ``none``: nothing secret.
    * ``bearer``: ``password`` = token → ``Authorization: Bearer <token>``.
    * ``basic``: ``login`` + ``password``.
    * ``api_key_header``: ``password`` = key; extra ``api_key_header`` = header name (default ``X-API-Key``).
    * ``api_key_query``: ``password`` = key; extra ``api_key_param`` = query param name (default ``api_key``).

    Any auth type may add fixed headers with extra ``headers`` (a mapping).
    """
    extra = conn.extra_dejson or {}
    headers = {str(k): str(v) for k, v in (extra.get("headers") or {}).items()}
    params: dict[str, str] = {}
    secret_params: set[str] = set()
    basic: tuple[str, str] | None = None
    secret = conn.password or ""
    if auth_type != "none" and auth_type != "basic" and not secret:
        raise ValueError(
            f"source '{source}': auth type '{auth_type}' needs the secret in the password field of "
            f"connection '{conn.conn_id}'"
        )
    if auth_type == "bearer":
        headers["Authorization"] = f"Bearer {secret}"
    elif auth_type == "basic":
        basic = (conn.login or "", secret)
    elif auth_type == "api_key_header":
        headers[str(extra.get("api_key_header") or "X-API-Key")] = secret
    elif auth_type == "api_key_query":
        name = str(extra.get("api_key_param") or "api_key")
        params[name] = secret
        secret_params.add(name)
    elif auth_type != "none":
        raise ValueError(f"source '{source}': unknown auth type {auth_type!r}")
    return ApiEndpoint(
        source=source,
        base_url=base_url_from_connection(conn),
        headers=headers,
        params=params,
        secret_params=frozenset(secret_params),
        basic_auth=basic,
        secret_values=frozenset({secret} if secret else ()),
    )


def mask_url(url: str, secret_params: frozenset[str] | set[str] = frozenset()) -> str:
    """Drop userinfo and replace the values of secret query params with ``***``."""
    split = urlsplit(url)
    netloc = split.hostname or ""
    if split.port:
        netloc = f"{netloc}:{split.port}"
    query = urlencode(
        [(k, _MASK if k in secret_params else v) for k, v in parse_qsl(split.query, keep_blank_values=True)],
        safe="*,:<>=",
    )
    return urlunsplit((split.scheme, netloc, split.path, query, ""))


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """A header by case-insensitive name (``HttpResponse.headers`` is a plain dict)."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret (also URL-encoded) and each secret-named member's value masked as ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):  # longest first: a secret may contain another
        if secret:
            text = text.replace(quote(secret, safe=""), _MASK).replace(secret, _MASK)
    return _SECRET_MEMBER.sub(lambda m: f"{m['name']}{m['sep']}{_MASK}", text)


def describe_body(
    body: bytes, content_type: str | None, secrets: Iterable[str] = (), limit: int = EXCERPT_CHARS
) -> str:
    """What an API sent, for an error message: content type, size and a short, secret-masked excerpt.

    e.g. ``content type 'text/html; charset=utf-8', 5321 bytes, starts: <!DOCTYPE html><html>…``. The
    excerpt is one line (whitespace collapsed, control characters as ``?``); secrets are masked before it is
    cut, so a secret straddling the cut cannot leak its first half.
    """
    kind = f"content type {content_type!r}" if content_type else "no content type"
    if not body:
        return f"{kind}, empty body"
    text = body[: limit * 4 + 1024].decode("utf-8", errors="replace")
    text = " ".join(scrub(text, secrets).split())
    text = "".join(char if char.isprintable() else "?" for char in text)
    cut = len(text) > limit or len(body) > limit * 4 + 1024
    shown = text[:limit] + "…" if cut else text
    return f"{kind}, {len(body)} bytes, {'starts' if cut else 'body'}: {shown}"


def parse_retry_after(value: str | None, now: datetime.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
    now = now or datetime.datetime.now(datetime.UTC)
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class HttpResponse:
    """One fully read response: body bytes exactly as received (after content decoding)."""

    url: str  # masked, safe to log and store
    status: int
    body: bytes
    headers: Mapping[str, str]
    links: Mapping[str, Mapping[str, str]]
    attempts: int


class BackoffPolicy:
    """Wait before the next attempt: the server's ``Retry-After`` (capped) or full-jitter backoff.

    Exponential backoff with jitter: ``random(0, min(max, initial * 2**(attempt-1)))`` ("full jitter",
    AWS architecture blog) so that many workers hitting the same 503 do not retry in lockstep.
    """

    def __init__(
        self,
        initial: float,
        maximum: float,
        retry_after_max: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        cap = os.environ.get(MAX_WAIT_ENV, "").strip()
        self.env_cap = float(cap) if cap else None
        self.initial = initial
        self.maximum = maximum
        self.retry_after_max = retry_after_max
        self.rng = rng

    def _capped(self, seconds: float) -> float:
        return min(seconds, self.env_cap) if self.env_cap is not None else seconds

    def backoff_bound(self, attempt: int) -> float:
        """Upper bound of the jittered wait after ``attempt`` (1-based) failed attempts."""
        return self._capped(min(self.maximum, self.initial * 2 ** (attempt - 1)))

    def wait(self, attempt: int, exc: BaseException | None) -> float:
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return self._capped(min(float(retry_after), self.retry_after_max))
        return self.rng() * self.backoff_bound(attempt)


def _retryable_exception_types() -> tuple[type[BaseException], ...]:
    import requests

    return (
        RetryableResponse,
        requests.ConnectionError,  # refused, reset, DNS; ConnectTimeout is a subclass
        requests.Timeout,  # read timeout
        requests.exceptions.ChunkedEncodingError,  # connection dropped while reading the body
        requests.exceptions.ContentDecodingError,  # truncated gzip body
    )


class ApiClient:
    """GET pages from one API with retries. One ``requests.Session`` (connection pooling) per client.

    :param endpoint: base URL + auth, see :func:`endpoint_from_connection`.
    :param policy: timeouts, retry and size limits.
    :param session: optional pre-built session (tests); closed by :meth:`close` only if we created it.
    :param sleep: the sleep function between attempts (tests pass a recorder).
    """

    def __init__(
        self,
        endpoint: ApiEndpoint,
        policy: HttpPolicy,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        import requests

        self.endpoint = endpoint
        self.policy = policy
        self._own_session = session is None
        self.session = session or requests.Session()
        self.session.headers.update(endpoint.headers)
        if endpoint.basic_auth:
            self.session.auth = endpoint.basic_auth
        self.backoff = BackoffPolicy(
            policy.backoff_initial_seconds,
            policy.backoff_max_seconds,
            policy.retry_after_max_seconds,
            rng=rng,
        )
        self._sleep = sleep

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def build_url(self, url: str, params: Mapping[str, str] | None = None) -> str:
        """Absolute ``url`` + ``params`` + auth params; params override same-named ones already in ``url``."""
        split = urlsplit(url)
        extra = {**(params or {}), **self.endpoint.params}
        pairs = [(k, v) for k, v in parse_qsl(split.query, keep_blank_values=True) if k not in extra]
        pairs.extend(extra.items())
        return urlunsplit((split.scheme, split.netloc, split.path, urlencode(pairs), ""))

    def masked(self, url: str) -> str:
        return mask_url(url, self.endpoint.secret_params)

    def get(self, url: str, *, headers: Mapping[str, str] | None = None) -> HttpResponse:
        """GET an absolute URL (already carrying its query), retrying transient failures.

        :raises ApiRequestError: on a non-retryable status, or when attempts are exhausted.
        """
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

        shown = self.masked(url)
        retrying = Retrying(
            stop=stop_after_attempt(self.policy.max_attempts),
            wait=lambda state: self.backoff.wait(
                state.attempt_number, state.outcome.exception() if state.outcome else None
            ),
            retry=retry_if_exception_type(_retryable_exception_types()),
            sleep=self._sleep,
            reraise=True,  # the last attempt's own exception, wrapped below with a clear message
            before_sleep=lambda state: log.warning(
                "%s: GET %s attempt %d/%d failed (%s); retrying in %.2fs",
                self.endpoint.source,
                shown,
                state.attempt_number,
                self.policy.max_attempts,
                self._describe(state.outcome.exception() if state.outcome else None),
                state.next_action.sleep if state.next_action else 0.0,
            ),
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._get_once(url, shown, headers, attempt.retry_state.attempt_number)
        except _retryable_exception_types() as exc:
            status = getattr(exc, "status", None)
            said = f" ({exc.body})" if isinstance(exc, RetryableResponse) and exc.body else ""
            raise ApiRequestError(
                f"{self.endpoint.source}: GET {shown} failed after {self.policy.max_attempts} attempts: "
                f"{self._describe(exc)}{said}",
                status=status,
                url=shown,
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _get_once(
        self, url: str, shown: str, headers: Mapping[str, str] | None, attempt: int
    ) -> HttpResponse:
        response = self.session.get(
            url,
            headers=dict(headers or {}),
            timeout=(self.policy.connect_timeout_seconds, self.policy.read_timeout_seconds),
            stream=True,
        )
        with response:
            status = response.status_code
            if status in self.policy.retry_statuses:
                raise RetryableResponse(
                    status,
                    response.reason or "",
                    parse_retry_after(response.headers.get("Retry-After")),
                    body=self._error_body(response),
                )
            if status >= 400:
                raise ApiRequestError(
                    f"{self.endpoint.source}: GET {shown} failed: HTTP {status} {response.reason or ''} "
                    f"(not retryable; {self._error_body(response)})".replace("  ", " "),
                    status=status,
                    url=shown,
                )
            body = self._read_body(response, shown)
            return HttpResponse(
                url=shown,
                status=status,
                body=body,
                headers=dict(response.headers),
                links=response.links,
                attempts=attempt,
            )

    def _read_body(self, response: requests.Response, shown: str) -> bytes:
        limit = self.policy.max_page_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiRequestError(
                f"{self.endpoint.source}: GET {shown}: page of {declared} bytes exceeds "
                f"max_page_bytes={limit}",
                url=shown,
            )
        buffer = bytearray()
        for chunk in response.iter_content(chunk_size=1024 * 1024):
            buffer += chunk
            if len(buffer) > limit:
                raise ApiRequestError(
                    f"{self.endpoint.source}: GET {shown}: page exceeds max_page_bytes={limit}", url=shown
                )
        return bytes(buffer)

    def describe_body(self, response: HttpResponse) -> str:
        """:func:`describe_body` of a page, masking this endpoint's secrets."""
        return describe_body(response.body, header_value(response.headers, "Content-Type"), self._secrets())

    def _secrets(self) -> set[str]:
        return {
            *self.endpoint.secret_values,
            *(self.endpoint.params.get(n, "") for n in self.endpoint.secret_params),
        }

    def _error_body(self, response: requests.Response) -> str:
        """:func:`describe_body` of an error response, reading at most ``_ERROR_BODY_BYTES`` of it."""
        try:
            head = response.raw.read(_ERROR_BODY_BYTES, decode_content=True) or b""
        except Exception:  # a broken error body must not hide the status
            head = b""
        declared = response.headers.get("Content-Length")
        described = describe_body(head, response.headers.get("Content-Type"), self._secrets())
        if declared and declared.isdigit() and int(declared) > len(head):
            described = described.replace(f", {len(head)} bytes,", f", {declared} bytes,", 1)
        return described

    def _describe(self, exc: BaseException | None) -> str:
        """One-line description of a failed attempt with secret values scrubbed.

        ``requests`` puts the request URL (query included) into connection error messages, so an API key
        sent as a query param would otherwise leak into logs and task failure messages.
        """
        if exc is None:
            return "unknown error"
        if isinstance(exc, RetryableResponse):
            suffix = f", Retry-After {exc.retry_after:g}s" if exc.retry_after is not None else ""
            return f"{exc}{suffix}"
        return scrub(f"{type(exc).__name__}: {exc}", self._secrets())
