"""Runs one cluster's Spark process and ends it with the emulator: ``python spark_watch.py COMMAND...``.

The emulator starts this as the leader of a new process group with a pipe on its stdin. The Spark process
(the JVM) runs as its child in the same group. It is stopped (SIGTERM, SIGKILL after a grace period) when
this process gets SIGTERM or when its stdin reaches end of file: the emulator stopped or died, even by
SIGKILL, so no JVM outlives the emulator. Only the standard library: it starts in milliseconds.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

GRACE_SECONDS = 3.0


def main() -> int:
    child = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL)  # noqa: S603 - the emulator's command
    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch_stdin() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        stopping.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    while child.poll() is None and not stopping.wait(0.2):
        pass
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return child.returncode if child.returncode >= 0 else 128 - child.returncode


if __name__ == "__main__":
    sys.exit(main())
