"""A tiny HTTP-aware TCP fault proxy, put between boto3 (``S3Hook``) and the moto S3 server.

Why a proxy rather than stopping moto: a fault has to hit one precise request (the upload of a part, the
``PUT`` of ``_manifest.json``) in the middle of a real Airflow task, and the S3 client must see what it sees
when S3 really fails: refused connections and connections reset by the peer. Stopping the in-process moto
server cannot be timed to a request, and moto keeps its buckets in process globals anyway. The proxy is a
real TCP listener on its own port; it parses only the *request* side (request line, headers, a
``Content-Length`` or chunked body) to know which request a rule applies to, and pipes responses back raw.

No library does this: toxiproxy needs its own binary/daemon, mitmproxy is a large dependency for ~150 lines.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import struct
import threading
import time
from collections.abc import Callable


@dataclasses.dataclass
class Rule:
    """Act on requests whose method equals ``method`` and whose path matches ``path_regex``.

    :param action: ``"reset"`` - reset the client connection instead of forwarding (TCP RST);
        ``"down"`` - reset it and take the whole endpoint down for ``down_seconds`` (connections refused).
    :param times: how many matching requests the rule applies to; None = every one until removed.
    :param skip: matching requests let through before the rule applies (to hit the n-th one).
    """

    method: str
    path_regex: str
    action: str = "reset"
    times: int | None = 1
    down_seconds: float = 0.0
    hits: int = 0
    skip: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        return method == self.method and re.search(self.path_regex, path) is not None


class FaultProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream_host:upstream_port``, applying :class:`Rule` s.

    ``requests`` logs ``(method, path, outcome)`` for every request seen, outcome ``forwarded``, ``reset``
    or ``down``; ``refused`` counts connections refused while down.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rules: list[Rule] = []
        self.requests: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._port = 0
        self._stopping = False
        self._connections: set[socket.socket] = set()
        self._up_timer: threading.Timer | None = None

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        self._stopping = False
        self._listen()
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._up_timer is not None:
            self._up_timer.cancel()
        self._close_listener()
        self._reset_all()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def add_rule(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear_rules(self) -> None:
        with self._lock:
            self.rules.clear()

    @property
    def is_down(self) -> bool:
        return self._listener is None

    def down(self, seconds: float | None = None) -> None:
        """Endpoint down: the port refuses connections and open ones are reset; back up after ``seconds``."""
        self._close_listener()
        self._reset_all()
        if seconds is not None:
            self._up_timer = threading.Timer(seconds, self.up)
            self._up_timer.daemon = True
            self._up_timer.start()

    def up(self) -> None:
        if self._listener is None and not self._stopping:
            self._listen()

    # ---- internals -----------------------------------------------------------------------------
    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._port))  # same port after a restart: clients keep their URL
        listener.listen(64)
        self._port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _reset_all(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            _reset(conn)

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # listener closed: endpoint down or proxy stopped
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=30)
        except OSError:
            _reset(client)
            return
        with self._lock:
            self._connections.update((client, upstream))
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        reader = client.makefile("rb")
        try:
            while True:
                request = _read_request(reader)
                if request is None:
                    break
                method, path, raw = request
                rule = self._take_rule(method, path)
                if rule is None:
                    self.requests.append((method, path, "forwarded"))
                    upstream.sendall(raw)
                    continue
                self.requests.append((method, path, rule.action))
                _reset(client)
                _reset(upstream)
                if rule.action == "down":
                    self.down(rule.down_seconds or None)
                break
        except OSError:
            pass
        finally:
            with self._lock:
                self._connections.difference_update((client, upstream))
            with contextlib.suppress(OSError):
                reader.close()
            for sock in (client, upstream):
                with contextlib.suppress(OSError):
                    sock.close()

    def _take_rule(self, method: str, path: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    if rule.skip > 0:
                        rule.skip -= 1
                        return None
                    rule.hits += 1
                    return rule
        return None


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer sees ECONNRESET, as when a load balancer or S3 drops it."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)


def _read_request(reader) -> tuple[str, str, bytes] | None:
    """One HTTP/1.1 request from the client: (method, path, raw bytes), or None at end of stream."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        line = reader.readline(65536)
        if not line:
            return None
        head += line
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _read_chunked(reader.readline, reader.read)
    elif headers.get("content-length"):
        body = reader.read(int(headers["content-length"]))
    return method, target.split("?", 1)[0], head + body


def _read_chunked(readline: Callable[[int], bytes], read: Callable[[int], bytes]) -> bytes:
    raw = b""
    while True:
        size_line = readline(65536)
        raw += size_line
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers up to the empty line
                trailer = readline(65536)
                raw += trailer
                if trailer in (b"\r\n", b""):
                    return raw
        raw += read(size + 2)


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()
