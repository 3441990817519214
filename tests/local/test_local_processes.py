"""Process-group helper: stopping a group reaches every descendant, so the demo leaves no orphans."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from airbricks.local.processes import ProcessGroup, free_port, wait_until


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child of init may linger as a zombie for an instant: treat it as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_stop_kills_the_whole_group_including_grandchildren(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    # The grandchild ignores SIGTERM, so only the SIGKILL escalation can end it.
    script = f"trap '' TERM; (trap '' TERM; sleep 300) & echo $! > {pid_file}; wait"
    group = ProcessGroup(["bash", "-c", script], env=dict(os.environ), log_path=tmp_path / "log.txt").start()
    wait_until(pid_file.exists, timeout=10, interval=0.05, what="the grandchild pid file")
    time.sleep(0.1)
    grandchild = int(pid_file.read_text())
    assert _alive(grandchild)
    started = time.monotonic()
    group.stop(grace_seconds=1)
    assert time.monotonic() - started < 10
    wait_until(lambda: not _alive(grandchild), timeout=5, interval=0.05, what="the grandchild to die")
    assert not group.alive()


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match="the moon"):
        wait_until(lambda: False, timeout=0.2, interval=0.05, what="the moon")
    with pytest.raises(RuntimeError, match="has exited"):
        wait_until(lambda: False, timeout=5, interval=0.05, what="x", alive=lambda: False)


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_leader_signal_lets_the_leader_shut_its_children_down(tmp_path: Path) -> None:
    """With ``leader_signal`` the leader alone is signalled first and cleans up itself (exit code 0)."""
    script = "sleep 300 & child=$!; trap 'kill $child; exit 0' INT; wait"
    group = ProcessGroup(["bash", "-c", script], env=dict(os.environ), log_path=tmp_path / "log.txt").start()
    time.sleep(0.5)
    started = time.monotonic()
    code = group.stop(leader_signal=signal.SIGINT, leader_grace_seconds=10, grace_seconds=10)
    assert code == 0
    assert time.monotonic() - started < 5
