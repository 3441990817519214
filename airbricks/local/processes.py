"""Process helpers for the local stack: free ports, readiness polls, process groups that leave no orphans,
the lifecycle of the servers that run in a background thread of the calling process, and what the command
lines of those servers share (``--host``/``--port``, serving until SIGINT/SIGTERM)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, ClassVar, Self


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it); bind soon after."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    interval: float = 0.5,
    what: str,
    alive: Callable[[], bool] | None = None,
) -> None:
    """Poll ``check`` until it returns true.

    :param check: returns true when the awaited condition holds; exceptions count as "not yet".
    :param timeout: seconds before giving up with ``TimeoutError`` naming ``what``.
    :param interval: seconds between polls.
    :param what: human description used in the error message.
    :param alive: optional; when it returns false the wait stops at once (e.g. the process died).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: S110 - any failure of a readiness probe means "not ready yet"
            pass
        if alive is not None and not alive():
            raise RuntimeError(f"gave up waiting for {what}: the process it depends on has exited")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """True when ``GET url`` answers 2xx. Only ``http(s)://`` URLs are accepted."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"http_ok needs an http(s) URL, got {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked above)  # nosec B310
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def server_parser(prog: str, description: str, *, default_port: int) -> argparse.ArgumentParser:
    """The argument parser of a local server's command line, with its ``--host`` and ``--port``."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: loopback only)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=default_port,
        help=f"TCP port; 0 picks a free one (default {default_port})",
    )
    return parser


def wait_for_stop_signal() -> None:
    """Block until SIGINT (Ctrl-C) or SIGTERM: how a local server's command line serves until stopped."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


class BackgroundServer:
    """A local HTTP server serving from a daemon thread of this process, on ``host`` and ``port``.

    ``start()`` and ``stop()`` are idempotent, the server is a context manager (started on enter, stopped
    on exit), and :attr:`port` / :attr:`url` tell where it listens once started. Subclasses implement
    :meth:`_serve` and :meth:`_shutdown`.

    :param host: interface to bind; loopback by default.
    :param port: port to bind; 0 picks a free one.
    """

    #: what the server is, for error messages ("the S3 server is not started ...").
    description: ClassVar[str] = "server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._bound_port: int | None = None

    def _serve(self) -> int:
        """Start serving in a background thread; return the port actually bound."""
        raise NotImplementedError

    def _shutdown(self) -> None:
        """Stop serving and release the port."""
        raise NotImplementedError

    def start(self) -> Self:
        if self._bound_port is None:
            self._bound_port = self._serve()
        return self

    def stop(self) -> None:
        if self._bound_port is not None:
            self._shutdown()
            self._bound_port = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError(f"the {self.description} is not started; call start() first")
        return self._bound_port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:40123`` (no trailing slash)."""
        return f"http://{self._host}:{self.port}"


class ProcessGroup:
    """A subprocess started in its own session, so it and every descendant can be stopped together.

    :param command: argv to run.
    :param env: full environment of the process.
    :param log_path: file receiving stdout and stderr.
    :param cwd: working directory.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> None:
        self.command = list(command)
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ProcessGroup:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # noqa: S603 - argv built by this package, no shell
            self.command,
            env=self.env,
            cwd=self.cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # own process group: stop() reaches every descendant
        )
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(
        self,
        grace_seconds: float = 20.0,
        *,
        leader_signal: signal.Signals | None = None,
        leader_grace_seconds: float = 20.0,
    ) -> int | None:
        """Stop the leader and every descendant; returns the leader's exit code (None if never started).

        :param grace_seconds: after SIGTERM to the whole group, seconds before SIGKILL.
        :param leader_signal: if set, first send this signal to the leader alone and give it
            ``leader_grace_seconds`` to shut its children down in order (``airflow standalone`` does
            that on SIGINT, and keeps logging while it does).
        :param leader_grace_seconds: see ``leader_signal``.
        """
        if self.process is None:
            return None
        pgid = self.process.pid  # start_new_session=True: the leader's pid is the group id
        steps: list[tuple[Callable[[], None], float]] = []
        if leader_signal is not None:
            steps.append((lambda: self._signal_leader(leader_signal), leader_grace_seconds))
        steps.append((lambda: _signal_group(pgid, signal.SIGTERM), grace_seconds))
        for send, grace in steps:
            send()
            if self._wait_group_gone(pgid, grace):
                break
        else:
            _signal_group(pgid, signal.SIGKILL)
        try:
            code = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def _signal_leader(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    def _wait_group_gone(self, pgid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.process is not None:
                self.process.poll()  # reap the leader, so a zombie does not keep the group "alive"
            if not _group_exists(pgid):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_exists(pgid: int) -> bool:
    """True while any process of the group is alive (the caller must reap the leader: zombies count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
