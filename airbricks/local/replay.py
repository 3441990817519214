"""API replay server: serves recorded HTTP exchanges over real HTTP, with fault injection.

It stands in for the public APIs the ingestion DAGs read (Hacker News Algolia, GitHub REST) so that tests,
benchmarks and ``make demo`` exercise the real HTTP client code offline and deterministically.

Why the standard library's ``ThreadingHTTPServer`` and not a framework (werkzeug, starlette): the faults
this server must produce (a connection reset in the middle of the headers or of the body) need the raw
socket, which WSGI/ASGI servers deliberately hide. Everything else here is small enough for the stdlib.

Recorded exchanges live in ``<fixtures>/<source>/source.json`` (see ``airbricks/local/fixtures``):

.. code-block:: json

    {"source": "github", "auth": "bearer", "path_prefix": "/repos/", "match_defaults": {"page": "1"},
     "exchanges": [{"method": "GET", "path": "/repos/apache/airflow/issues", "match": {"page": "1"},
                    "status": 200, "headers": {"Content-Type": "application/json; charset=utf-8"},
                    "link": {"next": 2, "last": 2}, "body_file": "issues-page-1.json"}]}

A request matches an exchange on method, path and the query parameters listed in ``match`` (the
pagination parameters); every other parameter (the interval filters, page sizes) is ignored, so any
interval replays. ``link`` makes the server build a GitHub-style ``Link`` header from the request's own
query string, with absolute URLs on this server's base URL.

Admin API (for other processes: the demo, Airflow tasks, a fault-injection suite); JSON in and out:

- ``POST /_replay/faults``   inject a fault (fields of :class:`Fault`), answers the fault with its ``id``
- ``GET  /_replay/faults``   pending faults
- ``GET  /_replay/requests`` every request received (admin requests excluded)
- ``POST /_replay/routes``   add a recorded route (``{"method", "path", "body", ...}``) or a synthetic one
  (``{"synthetic": {"path", "pages", "per_page", "record_bytes", "style"}}``)
- ``POST /_replay/auth``     ``{"source": "github", "token": "..."}`` require a bearer token for a source
- ``POST /_replay/reset``    forget requests, faults, added routes and tokens set at run time
- ``GET  /_replay/health``   liveness
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import socket
import struct
import threading
import time
import urllib.request
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from airbricks.local.processes import BackgroundServer

log = logging.getLogger(__name__)

BUNDLED_FIXTURES = Path(__file__).resolve().parent / "fixtures"
ADMIN_PREFIX = "/_replay/"
JSON_CONTENT_TYPE = "application/json; charset=utf-8"

_FILLER_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
ResetMode = Literal["before", "headers", "body"]
_RESET_MODES = ("before", "headers", "body")


class ReplayConfigError(ValueError):
    """A fixture file, route or fault definition is invalid; the message names what is wrong."""


@dataclasses.dataclass(frozen=True)
class RecordedRequest:
    """One request the replay server received.

    :param method: HTTP method, upper case.
    :param path: URL path without the query string.
    :param query: query parameters; a parameter given several times keeps its last value.
    :param headers: request headers, keys lower-cased (HTTP header names are case-insensitive).
    :param body: request body decoded as UTF-8 (empty for GET).
    :param raw_query: the query string exactly as sent.
    :param time: ``time.time()`` when the request arrived (for retry/backoff timing assertions).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: str = ""
    raw_query: str = ""
    time: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Fault:
    """A fault applied to the next ``times`` requests whose path starts with ``path_prefix``.

    :param path_prefix: e.g. ``/api/v1/search_by_date``; ``/`` matches every replayed request.
    :param status: answer with this HTTP status instead of the recorded response (e.g. 429, 500, 503).
    :param times: how many matching requests the fault applies to.
    :param retry_after: value of a ``Retry-After`` header (seconds) added to the faulty response.
    :param body: replacement body (str, bytes, or a JSON-serialisable value); with no ``status`` it is
        served with 200, which is how truncated JSON or schema drift are simulated.
    :param headers: extra response headers (override the default ``Content-Type: application/json``).
    :param reset_connection: close the socket abruptly (TCP RST): ``"before"`` any byte is sent,
        in the middle of the ``"headers"``, or in the middle of the ``"body"`` (after complete headers
        announcing the full ``Content-Length``). ``True`` means ``"headers"``.
    :param delay: seconds to wait before answering (read-timeout simulation).
    """

    path_prefix: str
    status: int | None = None
    times: int = 1
    retry_after: int | float | str | None = None
    body: Any = None
    headers: dict[str, str] | None = None
    reset_connection: bool | ResetMode = False
    delay: float | None = None
    id: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.path_prefix, str) or not self.path_prefix.startswith("/"):
            raise ReplayConfigError(f"fault path_prefix must start with '/', got {self.path_prefix!r}")
        if not isinstance(self.times, int) or self.times < 1:
            raise ReplayConfigError(f"fault times must be a positive integer, got {self.times!r}")
        if self.status is not None and not (isinstance(self.status, int) and 100 <= self.status <= 599):
            raise ReplayConfigError(f"fault status must be an HTTP status code, got {self.status!r}")
        if self.reset_connection is True:
            self.reset_connection = "headers"
        if self.reset_connection not in (False, None, *_RESET_MODES):
            raise ReplayConfigError(
                f"fault reset_connection must be false, true or one of {_RESET_MODES}, "
                f"got {self.reset_connection!r}"
            )
        if self.delay is not None and (not isinstance(self.delay, int | float) or self.delay < 0):
            raise ReplayConfigError(f"fault delay must be a non-negative number, got {self.delay!r}")

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        if isinstance(self.body, bytes):
            data["body"] = self.body.decode("utf-8", "replace")
        return data


@dataclasses.dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclasses.dataclass
class Route:
    """A recorded exchange: the response served for requests matching method, path and ``match``."""

    method: str
    path: str
    body: bytes
    status: int = 200
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    match: dict[str, str] = dataclasses.field(default_factory=dict)
    match_defaults: dict[str, str] = dataclasses.field(default_factory=dict)
    link: dict[str, int] | None = None
    source: str | None = None

    def matches(self, method: str, path: str, query: Mapping[str, str]) -> bool:
        if method != self.method or path != self.path:
            return False
        return all(
            query.get(name, self.match_defaults.get(name)) == value for name, value in self.match.items()
        )


@dataclasses.dataclass
class SyntheticRoute:
    """Generated pages for benchmarks and pagination tests, deterministic for given parameters.

    :param path: URL path served.
    :param pages: number of pages.
    :param per_page: records per page.
    :param record_bytes: approximate size of one serialised record.
    :param style: ``"hackernews"`` (Algolia shape, ``page`` from 0, ``nbPages``) or ``"github"``
        (top-level array, ``page`` from 1, ``Link`` header).
    """

    path: str
    pages: int
    per_page: int
    record_bytes: int = 256
    style: Literal["hackernews", "github"] = "hackernews"
    CACHE_PAGES: ClassVar[int] = 64
    _cache: dict[int, bytes] = dataclasses.field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.style not in ("hackernews", "github"):
            raise ReplayConfigError(f"synthetic style must be 'hackernews' or 'github', got {self.style!r}")
        for name in ("pages", "per_page", "record_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ReplayConfigError(f"synthetic {name} must be a non-negative integer, got {value!r}")
        if not self.path.startswith("/"):
            raise ReplayConfigError(f"synthetic path must start with '/', got {self.path!r}")

    def respond(self, query: Mapping[str, str], base_url: str) -> _Response:
        first = 0 if self.style == "hackernews" else 1
        raw_page = query.get("page", str(first))
        try:
            page = int(raw_page)
        except ValueError:
            return _json_response(
                400, {"message": f"synthetic route: page must be an integer, got {raw_page!r}"}
            )
        index = page - first
        hits = self._page_json(index) if 0 <= index < self.pages else b"[]"
        if self.style == "github":
            response = _Response(200, {"Content-Type": JSON_CONTENT_TYPE}, hits)
            if index + 1 < self.pages:
                response.headers["Link"] = _link_header(
                    base_url, self.path, query, {"next": page + 1, "last": self.pages}
                )
            return response
        envelope = {
            "page": page,
            "nbPages": self.pages,
            "hitsPerPage": self.per_page,
            "nbHits": self.pages * self.per_page,
            "query": "",
            "params": urlencode(query),
        }
        # The hits are spliced in as cached bytes rather than re-serialised on every request.
        body = b'{"hits":' + hits + b"," + json.dumps(envelope, separators=(",", ":")).encode()[1:]
        return _Response(200, {"Content-Type": JSON_CONTENT_TYPE}, body)

    def _page_json(self, index: int) -> bytes:
        """Serialised records of page ``index`` (0-based), cached: benchmarks re-read the same pages."""
        cached = self._cache.get(index)
        if cached is None:
            first = index * self.per_page
            records = ",".join(self._record_json(n) for n in range(first, first + self.per_page))
            cached = f"[{records}]".encode()
            if len(self._cache) >= self.CACHE_PAGES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = cached
        return cached

    def _record_json(self, n: int) -> str:
        """Record ``n`` as compact JSON, padded to ``record_bytes``.

        Formatted from a template rather than ``json.dumps``: about ten times faster, and every value is
        plain ASCII without characters JSON would escape, so the output is valid JSON all the same.
        """
        created = 1795046400 + n  # 2026-11-19T00:00:00Z (the demo interval) + n seconds: deterministic.
        stamp = _iso(created)
        if self.style == "github":
            head = (
                f'{{"id":{900_000_000 + n},"number":{n + 1},"title":"Synthetic issue {n}","state":"open",'
                f'"user":{{"login":"synthetic-user","id":1}},"labels":[],"created_at":"{stamp}",'
                f'"updated_at":"{stamp}","html_url":"https://example.invalid/issues/{n + 1}","body":"'
            )
            tail = '"}'
        else:
            head = f'{{"objectID":"{n}","title":"'
            tail = (
                f'","url":"https://example.invalid/story/{n}","author":"synthetic_user",'
                f'"points":{n % 500},"num_comments":{n % 50},"created_at":"{stamp}","created_at_i":{created},'
                f'"story_id":{n},"_tags":["story","author_synthetic_user","story_{n}"]}}'
            )
        missing = max(0, self.record_bytes - len(head) - len(tail))
        # Filler differing per record (a rotated alphabet), so that pages do not compress to nothing.
        offset = n % len(_FILLER_ALPHABET)
        filler = f"Synthetic {n} " + _FILLER_ALPHABET[offset:] + _FILLER_ALPHABET * (missing // 36 + 1)
        return head + filler[:missing] + tail


class _ReplayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], replay: ReplayServer) -> None:
        self.replay = replay
        super().__init__(address, _ReplayHandler)


class _ReplayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like the real APIs; every response has a Content-Length.
    server: _ReplayHTTPServer
    server_version = "airbricks-replay"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_GET

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        replay = self.server.replay
        if parts.path.startswith(ADMIN_PREFIX):
            self._send(replay._handle_admin(self.command, parts.path, body))
            return
        request = RecordedRequest(
            method=self.command,
            path=parts.path,
            query=query,
            headers={key.lower(): value for key, value in self.headers.items()},
            body=body.decode("utf-8", "replace"),
            raw_query=parts.query,
            time=time.time(),
        )
        fault = replay._record_and_take_fault(request)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.reset_connection == "before":
            self._abort()
            return
        response = replay._fault_response(fault) if fault is not None else None
        if response is None:
            response = replay._respond(request)
        if fault is not None and fault.reset_connection in ("headers", "body"):
            self._send_broken(response, fault.reset_connection)
            return
        self._send(response)

    def _head_bytes(self, response: _Response) -> bytes:
        reason = (
            HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else ""
        )
        lines = [f"HTTP/1.1 {response.status} {reason}"]
        headers = {"Server": self.server_version, "Date": self.date_time_string(), **response.headers}
        headers["Content-Length"] = str(len(response.body))
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, response: _Response) -> None:
        payload = self._head_bytes(response)
        if self.command != "HEAD":
            payload += response.body
        self.wfile.write(payload)

    def _send_broken(self, response: _Response, where: str) -> None:
        head = self._head_bytes(response)
        if where == "headers":
            self.wfile.write(head[: max(1, len(head) // 2)])
        else:
            self.wfile.write(head + response.body[: len(response.body) // 2])
        # Let the bytes reach the client before the reset, so it sees a truncated message, not nothing.
        time.sleep(0.05)
        self._abort()

    def _abort(self) -> None:
        """Close the socket with a TCP RST (SO_LINGER 0), which clients see as 'connection reset'."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class ReplayServer(BackgroundServer):
    """Replays recorded API exchanges on ``127.0.0.1`` and a free port, in a background thread.

    :param fixtures: fixture directories to load; each is either one source directory (holding
        ``source.json``) or a directory of such source directories. Defaults to the bundled fixtures
        (``hackernews`` and ``github``); pass ``[]`` for an empty server.
    :param tokens: ``{source: token}``: requests to that source's ``path_prefix`` must carry
        ``Authorization: Bearer <token>`` (GitHub's legacy ``token <token>`` scheme is accepted too),
        otherwise they get 401.
    :param host: interface to bind; loopback by default, the server has no business being reachable.
    :param port: port to bind; 0 picks a free one.
    """

    description = "replay server"

    def __init__(
        self,
        fixtures: Iterable[str | Path] | None = None,
        *,
        tokens: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._fixture_dirs = [Path(p) for p in fixtures] if fixtures is not None else [BUNDLED_FIXTURES]
        super().__init__(host, port)
        self._initial_tokens = dict(tokens or {})
        self._lock = threading.Lock()
        self._server: _ReplayHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[Route] = []
        self._synthetic: list[SyntheticRoute] = []
        self._sources: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, str] = {}
        self._faults: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._next_fault_id = 1
        self.reset()

    # ---- lifecycle (start/stop/context manager: BackgroundServer) ---------------------------------
    def _serve(self) -> int:
        self._server = _ReplayHTTPServer((self._host, self._port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="airbricks-replay", kwargs={"poll_interval": 0.1}
        )
        self._thread.daemon = True
        self._thread.start()
        port = self._server.server_address[1]
        log.info("API replay server listening on http://%s:%s", self._host, port)
        return port

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    # ---- configuration -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Back to the state after construction: fixtures reloaded, no faults, no requests recorded."""
        with self._lock:
            self._routes = []
            self._synthetic = []
            self._sources = {}
            self._faults = []
            self._requests = []
            self._tokens = dict(self._initial_tokens)
        for directory in self._fixture_dirs:
            self.load_fixtures(directory)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests = []

    def load_fixtures(self, directory: str | Path) -> list[str]:
        """Load recorded exchanges; returns the names of the sources loaded.

        :param directory: a source directory (with ``source.json``) or a directory of source directories.
        """
        directory = Path(directory)
        if (directory / "source.json").is_file():
            manifests = [directory / "source.json"]
        elif directory.is_dir():
            manifests = sorted(directory.glob("*/source.json"))
        else:
            raise ReplayConfigError(f"fixture directory {directory} does not exist")
        if not manifests:
            raise ReplayConfigError(f"no source.json found in {directory} or its subdirectories")
        return [self._load_manifest(manifest) for manifest in manifests]

    def _load_manifest(self, manifest: Path) -> str:
        try:
            spec = json.loads(manifest.read_text())
        except json.JSONDecodeError as exc:
            raise ReplayConfigError(f"{manifest} is not valid JSON: {exc}") from exc
        try:
            source = spec["source"]
            exchanges = spec["exchanges"]
        except (KeyError, TypeError) as exc:
            raise ReplayConfigError(f"{manifest} must be an object with 'source' and 'exchanges'") from exc
        routes = []
        for position, exchange in enumerate(exchanges):
            where = f"{manifest} exchanges[{position}]"
            if "body_file" in exchange:
                body_path = manifest.parent / exchange["body_file"]
                if not body_path.is_file():
                    raise ReplayConfigError(f"{where}: body_file {body_path} does not exist")
                body = body_path.read_bytes()
            else:
                body = _encode_body(exchange.get("body", b""))
            try:
                routes.append(
                    Route(
                        method=exchange.get("method", "GET").upper(),
                        path=exchange["path"],
                        body=body,
                        status=int(exchange.get("status", 200)),
                        headers=dict(exchange.get("headers", {})),
                        match={k: str(v) for k, v in exchange.get("match", {}).items()},
                        match_defaults={k: str(v) for k, v in spec.get("match_defaults", {}).items()},
                        link=exchange.get("link"),
                        source=source,
                    )
                )
            except KeyError as exc:
                raise ReplayConfigError(f"{where} is missing {exc}") from exc
        with self._lock:
            self._routes = [r for r in self._routes if r.source != source] + routes
            self._sources[source] = {
                "auth": spec.get("auth"),
                "path_prefix": spec.get("path_prefix", "/"),
                "exchanges": len(routes),
            }
        return source

    def add_route(
        self,
        method: str,
        path: str,
        body: Any = b"",
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        match: Mapping[str, str] | None = None,
        link: Mapping[str, int] | None = None,
    ) -> None:
        """Serve ``body`` for ``method path`` (optionally only when query params equal ``match``).

        Routes added later win over earlier ones and over fixtures. A dict/list body is sent as JSON.
        """
        encoded = _encode_body(body)
        route_headers = dict(headers or {})
        if not isinstance(body, str | bytes):
            route_headers.setdefault("Content-Type", JSON_CONTENT_TYPE)
        route = Route(
            method=method.upper(),
            path=path,
            body=encoded,
            status=status,
            headers=route_headers,
            match={k: str(v) for k, v in (match or {}).items()},
            link=dict(link) if link else None,
        )
        with self._lock:
            self._routes.insert(0, route)

    def add_synthetic(
        self,
        path: str,
        *,
        pages: int,
        per_page: int,
        record_bytes: int = 256,
        style: Literal["hackernews", "github"] = "hackernews",
    ) -> SyntheticRoute:
        """Serve generated pages at ``path`` (see :class:`SyntheticRoute`); wins over recorded routes."""
        route = SyntheticRoute(path, pages, per_page, record_bytes, style)
        with self._lock:
            self._synthetic.insert(0, route)
        return route

    def set_token(self, source: str, token: str | None) -> None:
        """Require ``Authorization: Bearer <token>`` for ``source`` (``None`` lifts the requirement)."""
        with self._lock:
            if token is None:
                self._tokens.pop(source, None)
            else:
                self._tokens[source] = token

    def inject(
        self,
        path_prefix: str,
        status: int | None = None,
        times: int = 1,
        retry_after: int | float | str | None = None,
        body: Any = None,
        reset_connection: bool | ResetMode = False,
        delay: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Fault:
        """Apply a fault to the next ``times`` requests under ``path_prefix`` (see :class:`Fault`)."""
        fault = Fault(
            path_prefix=path_prefix,
            status=status,
            times=times,
            retry_after=retry_after,
            body=body,
            headers=dict(headers) if headers else None,
            reset_connection=reset_connection,
            delay=delay,
        )
        if fault.status is None and fault.body is None and not fault.reset_connection and not fault.delay:
            raise ReplayConfigError("a fault needs at least one of status, body, reset_connection, delay")
        with self._lock:
            fault.id = self._next_fault_id
            self._next_fault_id += 1
            self._faults.append(fault)
        return fault

    # ---- observation -------------------------------------------------------------------------------
    def token_for(self, source: str) -> str | None:
        """The bearer token required for ``source``, or None when it is open."""
        with self._lock:
            return self._tokens.get(source)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every replayed request received so far, oldest first (admin API calls are not recorded)."""
        with self._lock:
            return list(self._requests)

    @property
    def faults(self) -> list[Fault]:
        """Faults still pending (with the number of requests they still apply to in ``times``)."""
        with self._lock:
            return [copy.copy(f) for f in self._faults]

    @property
    def sources(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._sources)

    # ---- request handling (called from server threads) -------------------------------------------
    def _record_and_take_fault(self, request: RecordedRequest) -> Fault | None:
        with self._lock:
            self._requests.append(request)
            for fault in self._faults:
                if request.path.startswith(fault.path_prefix):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return copy.copy(fault)
        return None

    def _fault_response(self, fault: Fault) -> _Response | None:
        if fault.status is None and fault.body is None:
            return None  # delay/reset only: the recorded response is (partly) sent.
        status = fault.status or 200
        if fault.body is not None:
            body = _encode_body(fault.body)
        else:
            phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
            body = _encode_body({"message": f"{phrase} (injected by airbricks-replay)"})
        # JSON by default, also for a str body: a truncated JSON document still claims to be JSON.
        headers = {"Content-Type": JSON_CONTENT_TYPE}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        headers.update(fault.headers or {})
        return _Response(status, headers, body)

    def _respond(self, request: RecordedRequest) -> _Response:
        with self._lock:
            synthetic = next((s for s in self._synthetic if s.path == request.path), None)
            route = next(
                (r for r in self._routes if r.matches(request.method, request.path, request.query)), None
            )
            sources = dict(self._sources)
            tokens = dict(self._tokens)
        for source, token in tokens.items():
            prefix = sources.get(source, {}).get("path_prefix", "/")
            if request.path.startswith(prefix) and not _authorized(
                request.headers.get("authorization"), token
            ):
                return _json_response(
                    401,
                    {
                        "message": "Bad credentials",
                        "documentation_url": "https://docs.github.com/rest",
                        "status": "401",
                    },
                )
        if synthetic is not None and request.method == "GET":
            return synthetic.respond(request.query, self.url)
        if route is None:
            return _json_response(
                404,
                {
                    "message": "airbricks-replay: no recorded exchange matches this request",
                    "method": request.method,
                    "path": request.path,
                    "query": request.query,
                    "recorded": self._describe_routes(request.path),
                },
            )
        headers = dict(route.headers)
        if route.link:
            headers["Link"] = _link_header(self.url, route.path, request.query, route.link)
        return _Response(route.status, headers, route.body)

    def _describe_routes(self, path: str) -> list[str]:
        with self._lock:
            return [f"{r.method} {r.path} {r.match}" for r in self._routes if r.path == path][:20]

    def _handle_admin(self, method: str, path: str, body: bytes) -> _Response:
        action = path[len(ADMIN_PREFIX) :].strip("/")
        try:
            payload = json.loads(body) if body else {}
        except json.JSONDecodeError as exc:
            return _json_response(400, {"message": f"request body is not valid JSON: {exc}"})
        try:
            if (method, action) == ("GET", "health"):
                return _json_response(200, {"status": "ok", "sources": sorted(self.sources)})
            if (method, action) == ("GET", "requests"):
                return _json_response(200, [r.to_json() for r in self.requests])
            if (method, action) == ("GET", "faults"):
                return _json_response(200, [f.to_json() for f in self.faults])
            if (method, action) == ("POST", "faults"):
                if not isinstance(payload, dict):
                    raise ReplayConfigError("a fault must be a JSON object")
                allowed = {f.name for f in dataclasses.fields(Fault)} - {"id"}
                unknown = set(payload) - allowed
                if unknown:
                    raise ReplayConfigError(
                        f"unknown fault fields {sorted(unknown)}; allowed: {sorted(allowed)}"
                    )
                if "path_prefix" not in payload:
                    raise ReplayConfigError("a fault needs 'path_prefix'")
                return _json_response(201, self.inject(**payload).to_json())
            if (method, action) == ("POST", "routes"):
                if "synthetic" in payload:
                    self.add_synthetic(**payload["synthetic"])
                else:
                    self.add_route(**payload)
                return _json_response(201, {"status": "added"})
            if (method, action) == ("POST", "auth"):
                self.set_token(payload["source"], payload.get("token"))
                return _json_response(200, {"status": "ok"})
            if (method, action) == ("POST", "reset"):
                self.reset()
                return _json_response(200, {"status": "reset"})
        except (ReplayConfigError, TypeError, KeyError) as exc:
            return _json_response(400, {"message": f"invalid {action} request: {exc}"})
        return _json_response(404, {"message": f"unknown admin endpoint {method} {path}"})


class ReplayAdminClient:
    """Drives a replay server running in another process through its admin API.

    :param url: the server's base URL, e.g. ``http://127.0.0.1:40123``.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ReplayConfigError(f"the replay server URL must be http(s)://..., got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, action: str, payload: Any = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(  # noqa: S310 - the URL is an http:// URL given by the caller
            f"{self.url}{ADMIN_PREFIX}{action}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310  # nosec B310
            return json.loads(response.read())

    def inject(self, path_prefix: str, **fault: Any) -> dict[str, Any]:
        return self._call("POST", "faults", {"path_prefix": path_prefix, **fault})

    def requests(self) -> list[dict[str, Any]]:
        return self._call("GET", "requests")

    def faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "faults")

    def reset(self) -> None:
        self._call("POST", "reset", {})

    def set_token(self, source: str, token: str | None) -> None:
        self._call("POST", "auth", {"source": source, "token": token})

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")


def _authorized(header: str | None, token: str) -> bool:
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    return scheme.lower() in ("bearer", "token") and value.strip() == token


def _encode_body(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


def _json_response(status: int, payload: Any) -> _Response:
    return _Response(status, {"Content-Type": JSON_CONTENT_TYPE}, _encode_body(payload))


def _link_header(base_url: str, path: str, query: Mapping[str, str], link: Mapping[str, int]) -> str:
    """GitHub-style ``Link`` header: the request's own query with ``page`` replaced, per relation."""
    parts = []
    for rel, page in link.items():
        url = f"{base_url}{path}?{urlencode({**query, 'page': str(page)})}"
        parts.append(f'<{url}>; rel="{rel}"')
    return ", ".join(parts)


def _iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
