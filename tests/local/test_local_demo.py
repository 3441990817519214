"""End to end: ``python -m airbricks.local.demo`` runs real Airflow on the local stand-ins and succeeds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airbricks.local.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.integration]


def test_demo_runs_the_ingestion_dags_and_cleans_up(tmp_path: Path) -> None:
    port = free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airbricks.local.demo",
            "--demo-dir",
            str(tmp_path / "demo"),
            "--port",
            str(port),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(os.environ),
    )
    timed: list[tuple[float, str]] = []  # (seconds since start, line) as the lines arrive
    try:
        assert process.stdout is not None
        for line in process.stdout:
            timed.append((time.monotonic() - started, line.rstrip("\n")))
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    result = subprocess.CompletedProcess(process.args, process.returncode, "\n".join(t[1] for t in timed), "")
    elapsed = time.monotonic() - started
    output = result.stdout
    standalone_log = tmp_path / "demo" / "logs" / "airflow-standalone.log"
    assert result.returncode == 0, (
        f"demo failed ({elapsed:.0f}s):\n{output}\n--- standalone log tail ---\n"
        + (
            "\n".join(standalone_log.read_text(errors="replace").splitlines()[-60:])
            if standalone_log.exists()
            else ""
        )
    )
    print(f"\ndemo took {elapsed:.0f}s\n{result.stdout}")

    # One prefix for every line; no silence longer than 15 s while the runs are awaited (the heartbeat).
    assert all(line.startswith("demo |") for _, line in timed), output
    first = next(i for i, (_, line) in enumerate(timed) if "started airflow standalone" in line)
    last = next(i for i, (_, line) in enumerate(timed) if "==== summary" in line)
    gaps = [(timed[i + 1][0] - timed[i][0], timed[i + 1][1]) for i in range(first, last)]
    longest = max(gaps)
    assert longest[0] <= 15, f"{longest[0]:.0f}s of silence before {longest[1]!r}:\n{output}"
    # The Databricks stage says its Airflow task and Databricks task states as they change.
    assert re.search(r"demo \| databricks: databricks_hackernews_stories .*run_medallion_job=", output)
    assert re.search(r"\| Databricks run \d+ RUNNING: bronze=\S+ silver=\S+ gold=\S+", output)
    assert re.search(r"\| Databricks run \d+ TERMINATED: bronze=SUCCESS silver=SUCCESS gold=SUCCESS", output)
    assert "[databricks]" not in output
    assert "ingest_hackernews: success" in output
    assert "ingest_github: success" in output
    assert re.search(r"hackernews/stories/dt=2026-11-19/: 13 records, 3 page\(s\)", output)
    assert re.search(r"github/issues/dt=2026-11-19/: 8 records, 2 page\(s\)", output)
    assert (
        "asset event s3://airbricks-raw/raw/hackernews/stories from ingest_hackernews: records=13" in output
    )
    assert "retry seen: first hackernews page answered 429" in output
    assert re.search(r"ingest_hackernews\.ingest_stories: .*429.*retrying", output)
    assert re.search(r"login: admin / \S+ \(generated for this run\)", output)
    assert "OK in" in output
    # Event-driven processing from another producer: a partition written with plain boto3 reaches the
    # watcher through S3 -> SQS and is processed for its own key, on the emulator; the same notification
    # sent again starts no second run (the stage's verify fails the demo otherwise).
    assert re.search(
        r"other producer \(plain boto3\): s3://airbricks-raw/raw/hackernews/stories/dt=2026-11-18/ "
        r"\(3 records\) -> S3 notification -> SQS -> raw_manifest_watcher -> partition key 2026-11-18",
        output,
    ), output
    assert re.search(
        r"databricks_hackernews_stories: success \(partition key 2026-11-18\), Databricks run \d+ SUCCESS "
        r"\(partition_key=2026-11-18\)",
        output,
    ), output
    duplicate = (
        r"duplicate notification: .*already announced \(duplicate notification\), 1 run for 2026-11-18"
    )
    assert re.search(duplicate, output), output
    # The lineage stage read the OpenLineage file back as one chain (its verify fails the demo otherwise).
    chain = output[output.index("lineage: ") :]
    hops = [
        "-> ingest_hackernews.ingest_stories (run ",
        "s3://airbricks-raw/raw/hackernews/stories/dt=2026-11-19",
        "-> databricks_hackernews_stories.run_medallion_job.bronze (run ",
        "s3://airbricks-lake/hackernews/stories/bronze/dt=2026-11-19",
        "-> databricks_hackernews_stories.run_medallion_job.silver (run ",
        "-> databricks_hackernews_stories.run_medallion_job.gold (run ",
        "s3://airbricks-lake/hackernews/stories/gold/authors/dt=2026-11-19",
    ]
    positions = [chain.find(hop) for hop in hops]
    assert -1 not in positions, f"lineage chain incomplete:\n{chain}"
    assert positions == sorted(positions), f"lineage chain out of order:\n{chain}"
    # Generated secrets: the password file exists, is private and differs from any fixed default.
    password_file = tmp_path / "demo" / "airflow" / "simple_auth_manager_passwords.json.generated"
    assert oct(password_file.stat().st_mode & 0o777) == "0o600"
    assert '"admin": "admin"' not in password_file.read_text()
    # Everything stopped: nothing listens on the api-server port any more.
    import socket

    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0


def test_interrupting_the_demo_stops_airflow_and_the_stand_ins(tmp_path: Path) -> None:
    """Ctrl-C while Airflow starts: the demo exits 130 and its Airflow process group is gone."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airbricks.local.demo",
            "--demo-dir",
            str(tmp_path / "demo"),
            "--port",
            str(free_port()),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    group = None
    try:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            match = re.search(r"process group (\d+)", line)
            if match:
                group = int(match.group(1))
                break
        assert group is not None, "".join(lines)
        time.sleep(8)  # let standalone spawn its components
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines) + rest
    assert process.returncode == 130, output
    assert "interrupted" in output
    assert "stopping Airflow (process group)" in output
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
