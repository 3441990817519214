"""``make run-dag DAG=ingest_<source> DATE=YYYY-MM-DD [HOUR=HH]``: one ingestion DAG run, locally.

For trying a new or changed source before a PR, without a cluster, a cloud account or ``make demo``:

1. starts the moto S3 server (bucket ``$AIRBRICKS_RAW_BUCKET`` or ``airbricks-raw``) and the API replay server
   (bundled fixtures, plus ``--fixtures DIR`` of your own), and points ``aws_default`` and
   ``http_<source>`` at them (``AIRFLOW_CONN_*`` variables; a source the replay server does not serve keeps
   the ``AIRFLOW_CONN_HTTP_<SOURCE>`` of your shell, so a new source can be tried against its real API);
2. ``airflow db migrate`` into a fresh ``AIRFLOW_HOME`` (``.demo/run-dag/airflow``, SQLite);
3. runs the DAG with ``dag.test()`` in a child process (its log: ``.demo/run-dag/<dag_id>.log``);
4. prints, per dataset, where the partition landed: the ``s3://`` URI, its manifest and record count, and a
   local copy of the objects (``.demo/run-dag/s3/<bucket>/raw/...``: the S3 server stops with the command).

``DATE`` is the partition the user wants, i.e. the **start** of the data interval: ``DATE=2026-11-19`` writes
``dt=2026-11-19`` (interval 2026-11-19 -> 2026-11-20). Airflow's manual runs (``airflow dags test``,
``dag.test()``) take the logical date as the *end* of the interval (``infer_manual_data_interval``: the
latest complete interval ending at it), so ``airflow dags test ingest_x 2026-11-19`` writes ``dt=2026-11-18``;
this command therefore passes ``logical_date = DATE + 1 day`` (``+ 1 hour`` with ``HOUR``). A *scheduled* run
of the same interval has logical date 2026-11-19 (the interval start) and starts after 2026-11-20 00:00.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airbricks.local.processes import free_port
from airbricks.local.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY
from airbricks.partitions import PartitionError, RawPartition, raw_bucket

PREFIX = "run-dag |"
#: Exit codes: the DAG run failed / bad arguments (unknown DAG, bad date) / the local set-up failed.
EXIT_RUN_FAILED, EXIT_USAGE, EXIT_SETUP = 1, 2, 3
#: Retries stay as configured (sources.yaml requires >= 2) but wait seconds, not minutes, in a local try-out.
LOCAL_RETRY_OVERRIDES = {"task": {"retry_delay_seconds": 2, "max_retry_delay_seconds": 5}}
# Settings from the caller's shell that would leak into the throw-away Airflow (one exception: the
# http_<source> connection of a source the replay server does not serve, see _connections).
_HERMETIC_PREFIXES = ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "AWS_")
_HERMETIC_NAMES = ("AIRFLOW_HOME", "AIRFLOW_CONFIG")


class RunDagError(RuntimeError):
    """A usage or set-up problem; the message says what is wrong and how to fix it."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def say(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when below it (shorter lines), else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclasses.dataclass(frozen=True)
class Target:
    """The DAG to run and the partitions it should write.

    :param dag_id: ``ingest_<source>``.
    :param dag_file: its file in the DAG folder.
    :param source: the source of ``sources.yaml``.
    :param conn_id: its HTTP connection id.
    :param schedule: its ``schedule`` in ``sources.yaml``.
    :param partitions: one per dataset, all for the same interval.
    """

    dag_id: str
    dag_file: Path
    source: str
    conn_id: str
    schedule: str
    partitions: tuple[RawPartition, ...]

    @property
    def logical_date(self) -> dt.datetime:
        """What ``dag.test()`` needs to run this interval: its end (see the module docstring)."""
        return self.partitions[0].end


def ingestion_dag_ids(dags_folder: Path) -> list[str]:
    """DAG ids this command can run: ``ingest_<source>`` of every source with its DAG file."""
    from airbricks.ingestion.config import declared_source_names

    names = declared_source_names(dags_folder / "sources.yaml")
    return [f"ingest_{name}" for name in names if (dags_folder / f"ingest_{name}.py").is_file()]


def resolve_target(dags_folder: Path, dag_id: str, date: str, hour: str | None) -> Target:
    """Check ``dag_id``, ``date`` and ``hour``; the partitions the run must write.

    :raises RunDagError: naming the unknown DAG id (with the valid ones) or the malformed date/hour.
    """
    from airbricks.ingestion.config import SourceConfigError, declared_source_names, load_source

    source_name = dag_id.removeprefix("ingest_")
    try:
        valid = ingestion_dag_ids(dags_folder)
        declared = declared_source_names(dags_folder / "sources.yaml")
    except SourceConfigError as exc:
        raise RunDagError(str(exc)) from exc
    if dag_id not in valid and source_name in declared:
        # Imported only here: the DAG factory imports Airflow, which the parent process otherwise never does.
        from airbricks.ingestion.dag_factory import source_file_mismatches

        missing_file = [p for p in source_file_mismatches(dags_folder) if f"source '{source_name}'" in p]
        if missing_file:
            raise RunDagError(missing_file[0])
    if not dag_id:
        raise RunDagError(
            f"no DAG given: make run-dag DAG=<dag_id> DATE=YYYY-MM-DD, DAG one of {', '.join(valid)}"
        )
    if dag_id not in valid:
        hint = (
            " (processing DAGs run from ingestion's asset events: see make demo)"
            if dag_id.startswith("databricks_")
            else ""
        )
        raise RunDagError(
            f"unknown DAG {dag_id!r}{hint}; run-dag runs an ingestion DAG of {dags_folder / 'sources.yaml'}: "
            f"{', '.join(valid) or 'none declared'}"
        )
    try:
        source = load_source(dags_folder / "sources.yaml", source_name)
    except SourceConfigError as exc:
        raise RunDagError(str(exc)) from exc
    key = date if hour is None else f"{date}T{hour}"
    try:
        partitions = tuple(RawPartition.from_key(source_name, name, key) for name in source.datasets)
    except PartitionError as exc:
        raise RunDagError(f"DATE={date}{'' if hour is None else f' HOUR={hour}'}: {exc}") from exc
    return Target(
        dag_id, dags_folder / f"{dag_id}.py", source_name, source.http_conn_id, source.schedule, partitions
    )


# ---- the parent: stand-ins, Airflow home, child, report --------------------------------------------------
def _hermetic_environ() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(_HERMETIC_PREFIXES) and k not in _HERMETIC_NAMES
    }


def _connections(target: Target, s3: Any, replay: Any) -> tuple[dict[str, str], str]:
    """``AIRFLOW_CONN_*`` for the run, and a sentence saying where ``http_<source>`` points."""
    from airbricks.local.connections import airflow_conn_env

    env = airflow_conn_env(s3, replay)
    variable = f"AIRFLOW_CONN_{target.conn_id.upper()}"
    if target.source in replay.sources:
        return env, f"{target.conn_id} -> API replay server {replay.url} (recorded {target.source} pages)"
    if os.environ.get(variable):
        env[variable] = os.environ[variable]
        return env, f"{target.conn_id} -> {variable} of your shell (the replay server has no {target.source})"
    return env, (
        f"{target.conn_id} is not set: the replay server has no recorded {target.source} pages; "
        f"pass --fixtures DIR (replay fixtures) or export {variable}"
    )


def airflow_env(home: Path, dags_folder: Path, bucket: str, connections: dict[str, str]) -> dict[str, str]:
    """Environment of ``airflow db migrate`` and of the child running ``dag.test()``."""
    env = _hermetic_environ()
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRBRICKS_RAW_BUCKET": bucket,
            "AIRBRICKS_INGEST_OVERRIDES": json.dumps(LOCAL_RETRY_OVERRIDES),
            # moto accepts any credentials; set so boto3 never looks for real ones on this machine.
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
            "NO_COLOR": "1",
            **connections,
        }
    )
    return env


def _run_logged(argv: list[str], env: dict[str, str], log_path: Path) -> int:
    with log_path.open("ab") as log:
        log.write(f"\n$ {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.run(  # noqa: S603 - argv built here, no shell
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
        ).returncode


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _report(target: Target, s3: Any, bucket: str, copy_root: Path) -> list[str]:
    """Per dataset: partition URI, manifest, record count, local copy; problems as lines starting ``!``."""
    from airbricks.ingestion.raw_zone import read_manifest

    client = s3.client()
    lines = []
    for partition in target.partitions:
        manifest = read_manifest(client, bucket, partition.prefix)
        if manifest is None:
            keys = s3.list_keys(bucket, partition.prefix)
            lines.append(
                f"! {partition.dataset}: no manifest at s3://{bucket}/{partition.manifest_key} "
                f"({len(keys)} object(s) under the prefix): the partition was not published"
            )
            continue
        local = copy_root / bucket / partition.prefix
        shutil.rmtree(local, ignore_errors=True)
        local.mkdir(parents=True)
        for key in s3.list_keys(bucket, partition.prefix):
            (local / key.removeprefix(partition.prefix)).write_bytes(
                client.get_object(Bucket=bucket, Key=key)["Body"].read()
            )
        lines += [
            f"{partition.dataset}: {partition.uri(bucket)}",
            f"  manifest s3://{bucket}/{partition.manifest_key}: {manifest.get('records')} records, "
            f"{manifest.get('pages')} page(s), {manifest.get('bytes')} bytes, "
            f"interval {manifest.get('interval_start')} -> {manifest.get('interval_end')}",
            f"  local copy: {_shown(local)}",
        ]
    return lines


def run(args: argparse.Namespace) -> int:
    from airbricks.local.replay import BUNDLED_FIXTURES, ReplayServer
    from airbricks.local.s3 import S3Server

    started = time.monotonic()
    dags_folder = args.dags_folder.resolve()
    target = resolve_target(dags_folder, args.dag_id, args.date, args.hour)
    first = target.partitions[0]
    say(
        f"{target.dag_id}: partition {first.key} = data interval {first.start:%Y-%m-%d %H:%M} -> "
        f"{first.end:%Y-%m-%d %H:%M} UTC (Airflow logical date {target.logical_date.isoformat()})"
    )
    work = args.work_dir.resolve()
    home = work / "airflow"
    log_path = work / f"{target.dag_id}.log"
    shutil.rmtree(home, ignore_errors=True)  # a fresh metadata DB: no state from an earlier run
    home.mkdir(parents=True)
    log_path.unlink(missing_ok=True)
    bucket = raw_bucket()
    fixtures = [BUNDLED_FIXTURES, *args.fixtures]
    with S3Server() as s3, ReplayServer(fixtures) as replay:
        s3.create_bucket(bucket)
        for name, meta in replay.sources.items():
            if meta.get("auth") == "bearer":  # like the real API: a token, generated per run, never printed
                replay.set_token(name, secrets.token_urlsafe(24))
        connections, conn_note = _connections(target, s3, replay)
        say(f"S3 server (moto) {s3.endpoint_url}, bucket s3://{bucket}; {conn_note}")
        env = airflow_env(home, dags_folder, bucket, connections)
        say(f"airflow db migrate into AIRFLOW_HOME={_shown(home)} (SQLite); log {_shown(log_path)}")
        if _run_logged([sys.executable, "-m", "airflow", "db", "migrate"], env, log_path):
            raise RunDagError(f"airflow db migrate failed:\n{_tail(log_path)}", EXIT_SETUP)
        result_path = work / f"{target.dag_id}.result.json"
        result_path.unlink(missing_ok=True)
        say(f"dag.test() of {target.dag_id} in a child process (task logs: {_shown(log_path)})")
        child = [
            sys.executable,
            "-m",
            "airbricks.local.run_dag",
            "--child",
            str(result_path),
            "--dags-folder",
            str(dags_folder),
            target.dag_id,
            args.date,
            *(["--hour", args.hour] if args.hour else []),
        ]
        code = _run_logged(child, env, log_path)
        try:
            result = json.loads(result_path.read_text())
        except (OSError, ValueError):
            raise RunDagError(
                f"the dag.test() child exited with {code} before reporting:\n{_tail(log_path)}", EXIT_SETUP
            ) from None
        if result.get("error"):
            raise RunDagError(result["error"], EXIT_USAGE)
        tasks = ", ".join(f"{task}={state}" for task, state in sorted(result["tasks"].items()))
        say(f"{target.dag_id} run {result['run_id']}: {result['state']} [{tasks}]")
        lines = _report(target, s3, bucket, work / "s3")
    for line in lines:
        say(line)
    ok = result["state"] == "success" and not any(line.startswith("!") for line in lines)
    if not ok:
        say(f"last lines of {_shown(log_path)}:")
        print(_tail(log_path), flush=True)
    say(f"{'OK' if ok else 'FAILED'} in {time.monotonic() - started:.0f}s")
    return 0 if ok else EXIT_RUN_FAILED


# ---- the child: dag.test() -------------------------------------------------------------------------------
def run_child(args: argparse.Namespace, result_path: Path) -> int:
    """In the migrated ``AIRFLOW_HOME`` of the parent: ``dag.test()`` of the interval; result as JSON."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.serialization.encoders import coerce_to_core_timetable

    target = resolve_target(args.dags_folder.resolve(), args.dag_id, args.date, args.hour)
    bag = DagBag(dag_folder=str(target.dag_file))
    if bag.import_errors:
        errors = "\n".join(f"{file}: {error}" for file, error in bag.import_errors.items())
        result_path.write_text(json.dumps({"error": f"{target.dag_file} does not import:\n{errors}"}))
        return EXIT_USAGE
    dag = bag.get_dag(target.dag_id)
    first = target.partitions[0]
    timetable = coerce_to_core_timetable(dag.timetable)
    interval = timetable.infer_manual_data_interval(run_after=target.logical_date)
    if (interval.start, interval.end) != (first.start, first.end):
        wanted = "pass HOUR=HH" if first.grain == "day" else "leave HOUR out"
        result_path.write_text(
            json.dumps(
                {
                    "error": f"{target.dag_id} is scheduled {target.schedule!r}: its interval ending "
                    f"{target.logical_date.isoformat()} is {interval.start.isoformat()} -> "
                    f"{interval.end.isoformat()}, not the {first.grain} {first.key}; {wanted}"
                }
            )
        )
        return EXIT_USAGE
    dag_run = dag.test(logical_date=target.logical_date)
    tasks = {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances()}
    result = {"state": str(dag_run.state), "run_id": dag_run.run_id, "tasks": tasks}
    result_path.write_text(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="make run-dag DAG=<dag_id> DATE=YYYY-MM-DD [HOUR=HH]",
        description="Run one ingestion DAG for one partition on the local S3 and API replay servers "
        "(dag.test()); print where the partition landed.",
    )
    parser.add_argument("dag_id", help="an ingestion DAG, ingest_<source>")
    parser.add_argument("date", help="the partition date, YYYY-MM-DD: the START of the data interval")
    parser.add_argument("--hour", default=None, help="HH, for an hourly source: the partition dt=DATE/hr=HH")
    parser.add_argument("--dags-folder", type=Path, default=Path("dags"), help="default: dags")
    parser.add_argument(
        "--fixtures",
        type=Path,
        action="append",
        default=[],
        help="replay fixture directory for your source (repeatable; the bundled ones stay loaded)",
    )
    parser.add_argument("--work-dir", type=Path, default=Path(".demo/run-dag"), help="default: .demo/run-dag")
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.child is not None:
            return run_child(args, args.child)
        return run(args)
    except RunDagError as exc:
        say(f"FAILED: {exc}")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
