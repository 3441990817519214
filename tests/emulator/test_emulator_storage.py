"""The local data access design: s3:// parameters are mirrored to local paths and synced back to S3."""

from __future__ import annotations

import json
import pathlib

import pytest

pytestmark = pytest.mark.integration


def _put_raw(s3, n: int = 3) -> None:
    for i in range(n):
        s3.put_object(
            Bucket="contract-bucket", Key=f"raw/dt=2026-01-01/part-{i:05d}.json", Body=json.dumps({"id": i})
        )


def test_s3_parameters_are_mirrored_and_outputs_synced_back(sdk, databricks_emulator, s3, moto_s3_url):
    _put_raw(s3)
    s3.put_object(Bucket="contract-bucket", Key="out/stale.json", Body=b"old")  # replaced by the job
    databricks_emulator.use_s3(moto_s3_url)
    run = sdk.jobs.run_now(databricks_emulator.job_id("s3_paths")).result()
    assert run.state.result_state.value == "SUCCESS", sdk.jobs.get_run_output(run.tasks[0].run_id).error
    output = sdk.jobs.get_run_output(run.tasks[0].run_id)
    assert "copied=3" in output.logs
    storage = databricks_emulator.workspace.storage.storage_dir
    assert f"args=['{storage}/run-{run.run_id}/contract-bucket/raw/'" in output.logs
    assert "synced to S3: 4 uploaded, 1 deleted" in output.logs
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="contract-bucket", Prefix="out/")["Contents"])
    assert keys == ["out/_SUCCESS", "out/part-00000.json", "out/part-00001.json", "out/part-00002.json"]
    # the per-run tree is gone afterwards
    assert not (storage / f"run-{run.run_id}").exists()


def test_without_s3_endpoint_values_pass_through(sdk, databricks_emulator):
    run = sdk.jobs.run_now(databricks_emulator.job_id("s3_paths")).result()
    logs = sdk.jobs.get_run_output(run.tasks[0].run_id).logs
    assert "args=['s3://contract-bucket/raw/', 's3://contract-bucket/out/']" in logs
    assert "copied=0" in logs
    # python tasks run in their task directory, so relative writes never land in the bundle
    assert not (databricks_emulator.workspace.bundle.root / "src" / "s3:").exists()


@pytest.mark.slow
def test_spark_notebook_reads_json_and_writes_parquet_to_s3(sdk, databricks_emulator, s3, moto_s3_url):
    _put_raw(s3, n=5)
    databricks_emulator.use_s3(moto_s3_url)
    run = sdk.jobs.run_now(databricks_emulator.job_id("spark_copy")).result()
    task = run.tasks[0]
    output = sdk.jobs.get_run_output(task.run_id)
    assert run.state.result_state.value == "SUCCESS", output.error_trace
    assert output.notebook_output.result == "5"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="contract-bucket", Prefix="gold/")["Contents"]]
    assert "gold/_SUCCESS" in keys
    assert any(k.endswith(".parquet") for k in keys)
    assert not any(k.rsplit("/", 1)[-1].startswith(".") for k in keys)  # no Hadoop .crc files


def test_storage_mapper_single_object_and_prefix_boundaries(s3, moto_s3_url, tmp_path):
    from airbricks.emulator.storage import StorageMapper

    s3.put_object(Bucket="contract-bucket", Key="cfg/one.json", Body=b"v1")
    s3.put_object(Bucket="contract-bucket", Key="raw/a/x.json", Body=b"a")
    s3.put_object(Bucket="contract-bucket", Key="raw/ab/y.json", Body=b"ab")  # must not leak into raw/a
    mapper = StorageMapper(moto_s3_url, tmp_path)
    mirrors: dict = {}
    one = mapper.map_value("s3a://contract-bucket/cfg/one.json", mirrors, "run-1")
    prefix = mapper.map_value("s3://contract-bucket/raw/a", mirrors, "run-1")
    assert mapper.map_value("not-a-uri", mirrors, "run-1") == "not-a-uri"
    mapper.download(mirrors)
    assert pathlib.Path(one).read_bytes() == b"v1"
    assert sorted(p.name for p in pathlib.Path(prefix).iterdir()) == ["x.json"]
    pathlib.Path(one).write_bytes(b"v2")
    assert mapper.upload(mirrors) == {"uploaded": 1, "deleted": 0}
    assert s3.get_object(Bucket="contract-bucket", Key="cfg/one.json")["Body"].read() == b"v2"
