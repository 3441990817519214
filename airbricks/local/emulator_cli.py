"""``airbricks-emulator``: run the local Databricks workspace emulator as a process.

The token comes from ``--token``, else the ``AIRBRICKS_EMULATOR_TOKEN`` environment variable, else it is
generated. It is never printed: a generated token is written to ``--token-file`` (default
``<state-dir>/token``, mode 0600) for clients to read.
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import secrets
import sys
import tempfile
from typing import TYPE_CHECKING

from airbricks.local.processes import server_parser, wait_for_stop_signal

if TYPE_CHECKING:
    from airbricks.local.s3 import S3Server


def _parser() -> argparse.ArgumentParser:
    parser = server_parser(
        "airbricks-emulator",
        "Run the local Databricks workspace emulator (docs/EMULATOR.md).",
        default_port=8765,
    )
    parser.add_argument("--bundle", type=pathlib.Path, help="Asset Bundle directory (holding databricks.yml)")
    parser.add_argument("--target", help="bundle target (default: the target with default: true)")
    parser.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="bundle variable override"
    )
    parser.add_argument(
        "--token", help="accepted bearer token (prefer AIRBRICKS_EMULATOR_TOKEN: argv is visible in ps)"
    )
    parser.add_argument("--token-file", type=pathlib.Path, help="where a generated token is written (0600)")
    parser.add_argument(
        "--state-dir", type=pathlib.Path, help="workspace root: Volumes, DBFS, run logs (default: a temp dir)"
    )
    parser.add_argument(
        "--s3-endpoint-url", help="S3 endpoint for s3:// parameter mirroring (see docs/EMULATOR.md)"
    )
    parser.add_argument(
        "--local-s3",
        action="store_true",
        help="start a local S3 server (moto, free port) and mirror s3:// parameters from/to it",
    )
    parser.add_argument(
        "--local-s3-bucket",
        action="append",
        default=[],
        metavar="NAME",
        help="bucket to create in the --local-s3 server (repeatable)",
    )
    parser.add_argument(
        "--storage-dir", type=pathlib.Path, help="root of the local S3 mirrors (default <state-dir>/storage)"
    )
    parser.add_argument(
        "--cluster-start-seconds", type=float, default=1.0, help="PENDING time of clusters (default 1.0)"
    )
    parser.add_argument(
        "--spark-driver-memory", default="512m", help="driver memory of cluster Spark servers (default 512m)"
    )
    parser.add_argument(
        "--spare-spark-drivers",
        type=int,
        default=1,
        help="Spark Connect servers started ahead for next clusters (default 1; 0: each starts at RUNNING)",
    )
    parser.add_argument("--public-url", help="URL clients use to reach the emulator (for run_page_url)")
    parser.add_argument("--quiet", action="store_true", help="no per-request log lines")
    parser.add_argument(
        "--max-retry-interval-seconds",
        type=float,
        help="cap on tasks' min_retry_interval_millis (default: honour the bundle's value)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # One line per request from airbricks.emulator.access (method, path, status, ms; never the token).
    # Other libraries stay at WARNING (botocore would announce where it found credentials).
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stdout)
    logging.getLogger("airbricks.emulator").setLevel(logging.WARNING if args.quiet else logging.INFO)
    variables = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"airbricks-emulator: --var must be NAME=VALUE, got {item!r}", file=sys.stderr)
            return 2
        variables[name] = value
    if args.bundle is not None and not (args.bundle / "databricks.yml").is_file():
        print(f"airbricks-emulator: no databricks.yml in --bundle {args.bundle}", file=sys.stderr)
        return 2
    state_dir = args.state_dir or pathlib.Path(tempfile.mkdtemp(prefix="airbricks-emulator-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    token = args.token or os.environ.get("AIRBRICKS_EMULATOR_TOKEN")
    token_note = "token from --token/AIRBRICKS_EMULATOR_TOKEN"  # noqa: S105 - a message, not a secret
    if not token:
        token = secrets.token_urlsafe(24)
        token_file = args.token_file or state_dir / "token"
        token_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token)
        token_note = f"generated token written to {token_file}"

    if args.local_s3 and args.s3_endpoint_url:
        print("airbricks-emulator: give --local-s3 or --s3-endpoint-url, not both", file=sys.stderr)
        return 2
    local_s3 = _start_local_s3(args.local_s3_bucket) if args.local_s3 else None
    s3_endpoint_url = local_s3.endpoint_url if local_s3 is not None else args.s3_endpoint_url

    from airbricks.emulator.bundle import BundleError
    from airbricks.emulator.server import EmulatorServer

    try:
        server = EmulatorServer(
            state_dir=state_dir,
            host=args.host,
            port=args.port,
            token=token,
            bundle_dir=args.bundle,
            target=args.target,
            variables=variables,
            s3_endpoint_url=s3_endpoint_url,
            storage_dir=args.storage_dir,
            cluster_start_seconds=args.cluster_start_seconds,
            spark_driver_memory=args.spark_driver_memory,
            spare_spark_drivers=args.spare_spark_drivers,
            retry_interval_cap=args.max_retry_interval_seconds,
        ).start()
    except BundleError as exc:
        print(f"airbricks-emulator: bad bundle: {exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:  # e.g. the port is taken
        print(f"airbricks-emulator: {exc}", file=sys.stderr)
        return 1
    if args.public_url:
        server.workspace.jobs.base_url = args.public_url.rstrip("/")
    jobs = server.workspace.bundle_job_ids
    print(f"Databricks emulator listening on {server.url} (state: {state_dir}; {token_note})", flush=True)
    if jobs:
        names = {k: server.workspace.jobs.jobs[v]["settings"]["name"] for k, v in jobs.items()}
        print(
            "bundle jobs: " + ", ".join(f"{k} -> {names[k]!r} (job_id {v})" for k, v in jobs.items()),
            flush=True,
        )

    if local_s3 is not None:
        buckets = ", ".join(f"s3://{name}" for name in args.local_s3_bucket) or "none yet"
        print(
            f"local S3 (moto) on {local_s3.endpoint_url} (buckets: {buckets}); s3:// parameters are mirrored "
            "from/to it. Put input there with any S3 client, e.g. "
            f"aws --endpoint-url {local_s3.endpoint_url} s3 cp ... (any access key)",
            flush=True,
        )
    elif not s3_endpoint_url:
        print(
            "no S3 endpoint: s3:// parameters reach the job code unchanged and Spark cannot read them; "
            "use --local-s3 or --s3-endpoint-url URL to run jobs that read or write s3://",
            flush=True,
        )

    wait_for_stop_signal()
    server.stop()
    if local_s3 is not None:
        local_s3.stop()
    return 0


def _start_local_s3(buckets: list[str]) -> S3Server:
    """The moto S3 server of the local stack, with ``buckets``; this process's S3 clients get its keys."""
    from airbricks.local.s3 import LOCAL_ACCESS_KEY_ID, LOCAL_REGION, LOCAL_SECRET_ACCESS_KEY, S3Server

    # The storage mirror's boto3 client reads the default chain: never send real credentials to moto.
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": LOCAL_REGION,
        }
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    server = S3Server().start()
    for name in buckets:
        server.create_bucket(name)
    return server


if __name__ == "__main__":
    sys.exit(main())
