"""A throw-away PostgreSQL server for Airflow's metadata DB: ``initdb`` + ``pg_ctl`` in a temporary directory.

No system service is involved: the server listens on ``127.0.0.1`` on a free port (no Unix socket), trusts
loopback connections, and lives in its own data directory, so it starts the same way on a new machine, in CI
and next to other sessions. PostgreSQL refuses to run as root; when this process is root the server runs as
``nobody`` (``setpriv``) in a data directory it owns.

Pointing at an existing server instead: set ``AIRBRICKS_POSTGRES_URL`` (a SQLAlchemy URL of a role that may
create databases, e.g. ``postgresql+psycopg2://airflow@db.example:5432/postgres``, password from libpq's
``PGPASSWORD`` or ``~/.pgpass``); :func:`session_database_url` then creates a fresh database there and
nothing is started.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import URL, make_url

from airbricks.local.processes import free_port

EXISTING_SERVER_ENV = "AIRBRICKS_POSTGRES_URL"
TEST_DB_ENV = "AIRBRICKS_TEST_DB"  # "postgres": a pytest session's own Airflow metadata DB is PostgreSQL too
DRIVER = "postgresql+psycopg2"
_BINARIES = ("initdb", "pg_ctl")
_UNPRIVILEGED_USER = "nobody"


class PostgresUnavailable(RuntimeError):
    """The PostgreSQL server binaries are not installed (the message says how to install them)."""


def find_binary(name: str) -> str:
    """Path of a PostgreSQL server binary: on PATH, else Debian's versioned ``/usr/lib/postgresql/*/bin``."""
    found = shutil.which(name)
    if found:
        return found
    versioned = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version_key)
    if versioned:
        return versioned[-1]
    raise PostgresUnavailable(
        f"PostgreSQL's {name!r} is not installed (looked on PATH and in /usr/lib/postgresql/*/bin): "
        "run `make system-packages` (Debian package postgresql), or set "
        f"{EXISTING_SERVER_ENV} to a server of yours"
    )


def _version_key(path: str) -> int:
    version = Path(path).parts[-3]
    return int(version) if version.isdigit() else 0


class PostgresServer:
    """One PostgreSQL cluster in ``base_dir`` (created if needed), served on a free loopback port.

    :param base_dir: directory holding the data directory and the server log; temporary if None
        (removed again by :meth:`stop` with ``remove=True``).
    :param max_connections: the server's ``max_connections`` (Airflow's components each keep a pool).
    """

    def __init__(self, base_dir: Path | None = None, *, max_connections: int = 300) -> None:
        self._binaries = {name: find_binary(name) for name in _BINARIES}
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="airbricks-postgres-"))
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "postgres.log"
        self.port = free_port()
        self.max_connections = max_connections
        self._run_as = _unprivileged_ids() if os.geteuid() == 0 else None

    # ---- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> PostgresServer:
        """``initdb`` (first time only), then ``pg_ctl start`` and wait until it accepts connections."""
        if self._run_as is not None:
            uid, gid = self._run_as
            os.chown(self.base_dir, uid, gid)
            self.base_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").is_file():
            self._run(
                [
                    self._binaries["initdb"],
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ],
                what="initdb",
            )
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_path), "-o", self._server_options())
        return self

    def stop(self, *, mode: str = "fast", remove: bool = False) -> None:
        """``pg_ctl stop -m <mode>`` (``fast`` disconnects clients, ``immediate`` is a crash); idempotent."""
        if (self.data_dir / "postmaster.pid").is_file():
            self._pg_ctl("stop", "-w", "-t", "60", "-m", mode, check=False)
        if remove and self._owns_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def restart(self, *, mode: str = "fast") -> None:
        """Stop (dropping every client connection) and start again on the same port and data."""
        self.stop(mode=mode)
        self._pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_path), "-o", self._server_options())

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop(remove=True)

    # ---- databases -----------------------------------------------------------------------------------
    @property
    def admin_url(self) -> URL:
        return URL.create(DRIVER, username="postgres", host="127.0.0.1", port=self.port, database="postgres")

    def create_database(self, name: str) -> URL:
        """Create database ``name`` (dropping an older one); its SQLAlchemy URL."""
        return create_database(self.admin_url, name)

    def connection_count(self) -> int:
        """Client connections open right now (all databases), from ``pg_stat_activity``."""
        return connection_count(self.admin_url)

    # ---- internals -----------------------------------------------------------------------------------
    def _server_options(self) -> str:
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' "
            f"-c max_connections={self.max_connections} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off"
        )

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        self._run(
            [self._binaries["pg_ctl"], "-D", str(self.data_dir), *args], what="pg_ctl " + args[0], check=check
        )

    def _run(self, argv: Sequence[str], *, what: str, check: bool = True) -> None:
        command = list(argv)
        if self._run_as is not None:
            uid, gid = self._run_as
            command = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *command]
        result = subprocess.run(  # noqa: S603 - argv built here from found binaries, no shell
            command, capture_output=True, text=True, cwd=self.base_dir, check=False, timeout=120
        )
        if check and result.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.is_file() else ""
            raise RuntimeError(
                f"PostgreSQL {what} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}\n{log}"
            )


def _unprivileged_ids() -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(_UNPRIVILEGED_USER)
    except KeyError as exc:
        raise PostgresUnavailable(
            f"running as root, and there is no user {_UNPRIVILEGED_USER!r} to run PostgreSQL as "
            "(it refuses to run as root)"
        ) from exc
    return entry.pw_uid, entry.pw_gid


def create_database(admin_url: URL | str, name: str) -> URL:
    """Create database ``name`` on the server of ``admin_url`` (dropping an older one); its URL."""
    from sqlalchemy import create_engine, text

    admin = make_url(str(admin_url)) if isinstance(admin_url, str) else admin_url
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return admin.set(database=name)


def connection_count(admin_url: URL | str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=_null_pool())
    try:
        with engine.connect() as conn:
            return (
                int(
                    conn.execute(
                        text("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
                    ).scalar_one()
                )
                - 1
            )
    finally:
        engine.dispose()


def _null_pool() -> type:
    from sqlalchemy.pool import NullPool

    return NullPool


def unique_database_name(prefix: str = "airbricks") -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def wait_accepting(url: URL | str, timeout: float = 60) -> None:
    """Wait until ``url`` accepts a connection (after a restart)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url, poolclass=_null_pool())
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        engine.dispose()


_session: PostgresServer | None = None


def session_server() -> PostgresServer:
    """The session's server, started on first use and stopped when the interpreter exits."""
    global _session  # one server per process, shared by the import-time set-up and the fixtures
    if _session is None:
        server = PostgresServer().start()
        atexit.register(server.stop, remove=True)
        _session = server
    return _session


def session_database_url(name: str) -> str:
    """A fresh database ``name`` on the existing server (``$AIRBRICKS_POSTGRES_URL``) or the session's."""
    existing = os.environ.get(EXISTING_SERVER_ENV)
    url = create_database(existing, name) if existing else session_server().create_database(name)
    return url.render_as_string(hide_password=False)
