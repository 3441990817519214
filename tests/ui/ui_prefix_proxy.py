"""A reverse proxy that serves an upstream under a path prefix, like an ingress rule ``path: /airflow``.

It mimics the chart's ingress (or a port-forward behind a path-routing proxy): requests for
``/<prefix>/...`` are forwarded to the upstream with the prefix stripped; anything outside the prefix is
answered 404, as an ingress with only that rule would. Responses, redirects included, are passed back
unchanged: the proxy rewrites nothing, so the page works only if Airflow itself knows the prefix
(``AIRFLOW__API__BASE_URL`` with the path). With ``prefix=""`` it is a transparent pass-through, the
control that proves the proxy alone breaks nothing.

Hand-written (~60 lines of stdlib) because what it must do is exactly this one rule; a proxy server
dependency (mitmproxy, a real nginx) would be larger than the test it serves.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Hop-by-hop headers (RFC 9110 section 7.6.1) are the proxy's own business, never forwarded.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


class PrefixProxy:
    """Serve ``http://127.0.0.1:<upstream_port>/`` at ``http://127.0.0.1:<port>/<prefix>/``.

    :param upstream_port: port of the upstream HTTP server on 127.0.0.1.
    :param prefix: path prefix without slashes (``"airflow"``); empty for a pass-through.
    """

    def __init__(self, upstream_port: int, prefix: str) -> None:
        self.prefix = f"/{prefix.strip('/')}" if prefix.strip("/") else ""
        self.upstream_port = upstream_port
        self.seen: list[tuple[str, str, int]] = []  # (method, path as the browser sent it, status returned)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="prefix-proxy", daemon=True)

    @property
    def url(self) -> str:
        """The URL a browser opens: the proxy's root plus the prefix."""
        return f"http://127.0.0.1:{self._server.server_address[1]}{self.prefix}/"

    def start(self) -> PrefixProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.prefix and not (
                    self.path == proxy.prefix or self.path.startswith(proxy.prefix + "/")
                ):
                    self._answer(404, [("Content-Type", "text/plain")], b"no ingress rule for this path\n")
                    return
                upstream_path = self.path[len(proxy.prefix) :] or "/"
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Host"] = f"127.0.0.1:{proxy.upstream_port}"
                connection = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                try:
                    connection.request(self.command, upstream_path, body=body or None, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                    kept = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
                    self._answer(response.status, kept, payload)
                finally:
                    connection.close()

            def _answer(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
                proxy.seen.append((self.command, self.path, status))
                self.send_response(status)
                for key, value in headers:
                    if key.lower() != "content-length":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the browser navigated away
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward

            def log_message(self, format: str, *args: object) -> None:
                """Silent: ``seen`` records every request."""

        return Handler
