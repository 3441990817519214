"""``airbricks-replay``: run the API replay server standalone (for manual runs, other processes, benchmarks).

Examples::

    airbricks-replay --port 8089
    airbricks-replay --fixtures ./my-fixtures --token-from-env github=GITHUB_TOKEN
    airbricks-replay --synthetic /bench/items:hackernews:pages=200,per_page=1000,record_bytes=512

Faults are injected at run time through the admin API, e.g.::

    curl -X POST localhost:8089/_replay/faults \\
         -d '{"path_prefix": "/api/v1/", "status": 429, "retry_after": 2}'
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from airbricks.local.processes import server_parser, wait_for_stop_signal
from airbricks.local.replay import BUNDLED_FIXTURES, ReplayConfigError, ReplayServer


def _parse_synthetic(spec: str) -> tuple[str, dict[str, object]]:
    """``PATH:STYLE:pages=N,per_page=M,record_bytes=B`` -> (path, kwargs)."""
    try:
        path, style, options = spec.split(":", 2)
        kwargs: dict[str, object] = {"style": style}
        for item in options.split(","):
            key, value = item.split("=", 1)
            kwargs[key.strip()] = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--synthetic {spec!r}: expected PATH:STYLE:pages=N,per_page=M[,record_bytes=B]"
        ) from exc
    return path, kwargs


def build_parser() -> argparse.ArgumentParser:
    parser = server_parser(
        "airbricks-replay",
        "Serve recorded API exchanges over HTTP with fault injection (admin API: /_replay/).",
        default_port=0,
    )
    parser.add_argument(
        "--fixtures",
        action="append",
        default=None,
        help=f"fixture directory (repeatable); default: the bundled ones in {BUNDLED_FIXTURES}",
    )
    parser.add_argument(
        "--token-from-env",
        action="append",
        default=[],
        metavar="SOURCE=ENV_VAR",
        help="require 'Authorization: Bearer <token>' for SOURCE, the token read from ENV_VAR "
        "(tokens are never taken on the command line, where `ps` would show them)",
    )
    parser.add_argument(
        "--synthetic",
        action="append",
        default=[],
        type=_parse_synthetic,
        metavar="PATH:STYLE:pages=N,per_page=M[,record_bytes=B]",
        help="serve generated pages at PATH; STYLE is hackernews or github",
    )
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    tokens: dict[str, str] = {}
    for item in args.token_from_env:
        source, sep, variable = item.partition("=")
        if not sep or not os.environ.get(variable):
            print(
                f"airbricks-replay: --token-from-env {item!r}: environment variable is unset", file=sys.stderr
            )
            return 2
        tokens[source] = os.environ[variable]
    try:
        server = ReplayServer(args.fixtures, tokens=tokens, host=args.host, port=args.port)
        for path, kwargs in args.synthetic:
            server.add_synthetic(path, **kwargs)  # type: ignore[arg-type]
    except (ReplayConfigError, TypeError) as exc:
        print(f"airbricks-replay: {exc}", file=sys.stderr)
        return 2
    with server:
        print(
            f"airbricks-replay listening on {server.url} (sources: {', '.join(sorted(server.sources))})",
            flush=True,
        )
        wait_for_stop_signal()
    return 0


if __name__ == "__main__":
    sys.exit(main())
