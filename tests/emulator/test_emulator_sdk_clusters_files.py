"""Contract: databricks-sdk Clusters, Files (Volumes) and DBFS calls against the emulator."""

from __future__ import annotations

import io

import pytest
from databricks.sdk.errors import NotFound
from databricks.sdk.service import compute

pytestmark = pytest.mark.integration


def test_cluster_lifecycle_events_and_permanent_delete(sdk, databricks_emulator):
    cluster = sdk.clusters.create_and_wait(
        cluster_name="contract", spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=2
    )
    assert cluster.state == compute.State.RUNNING
    assert cluster.cluster_name == "contract"
    assert cluster.num_workers == 2
    assert cluster.cluster_id in [c.cluster_id for c in sdk.clusters.list()]

    sdk.clusters.edit_and_wait(
        cluster.cluster_id, spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=3
    )
    assert sdk.clusters.get(cluster.cluster_id).num_workers == 3
    sdk.clusters.restart_and_wait(cluster.cluster_id)
    terminated = sdk.clusters.delete_and_wait(cluster.cluster_id)
    assert terminated.state == compute.State.TERMINATED
    assert terminated.termination_reason.code == compute.TerminationReasonCode.USER_REQUEST

    events = list(sdk.clusters.events(cluster.cluster_id, order=compute.GetEventsOrder.ASC, limit=2))
    kinds = [e.type.value for e in events]
    assert kinds == [
        "CREATING",
        "RUNNING",
        "EDITED",
        "RESTARTING",
        "RUNNING",
        "RESTARTING",
        "RUNNING",
        "TERMINATING",
    ]
    assert [e.timestamp for e in events] == sorted(e.timestamp for e in events)

    sdk.clusters.start_and_wait(cluster.cluster_id)
    sdk.clusters.permanent_delete(cluster.cluster_id)
    with pytest.raises(NotFound):
        sdk.clusters.get(cluster.cluster_id)
    assert databricks_emulator.state()["active_clusters"] == []


def test_start_of_a_running_cluster_is_invalid_state(sdk):
    from databricks.sdk.errors import BadRequest

    cluster = sdk.clusters.create_and_wait(
        spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=0
    )
    with pytest.raises(BadRequest, match="unexpected state RUNNING"):
        sdk.clusters.start(cluster.cluster_id)
    sdk.clusters.delete(cluster.cluster_id)


def test_job_with_existing_terminated_cluster_starts_it(sdk, databricks_emulator):
    from databricks.sdk.service import jobs

    cluster = sdk.clusters.create_and_wait(
        spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=0
    )
    sdk.clusters.delete_and_wait(cluster.cluster_id)
    src = databricks_emulator.workspace.bundle.root / "src"
    run = sdk.jobs.submit(
        run_name="existing",
        tasks=[
            jobs.SubmitTask(
                task_key="greet",
                existing_cluster_id=cluster.cluster_id,
                notebook_task=jobs.NotebookTask(notebook_path=str(src / "greet.py")),
            )
        ],
    ).result()
    assert run.state.result_state.value == "SUCCESS"
    assert run.tasks[0].cluster_instance.cluster_id == cluster.cluster_id
    assert sdk.clusters.get(cluster.cluster_id).state == compute.State.RUNNING  # all-purpose: stays up
    sdk.clusters.delete(cluster.cluster_id)


def test_volume_files_upload_download_list_delete(sdk, databricks_emulator):
    base = "/Volumes/main/raw/landing"
    sdk.files.create_directory(f"{base}/in")
    payload = b'{"id": 1}\n' * 1000
    sdk.files.upload(f"{base}/in/part-00001.json", io.BytesIO(payload), overwrite=True)
    sdk.files.upload(f"{base}/in/part-00002.json", io.BytesIO(b"{}"), overwrite=True)
    assert sdk.files.download(f"{base}/in/part-00001.json").contents.read() == payload
    assert sdk.files.get_metadata(f"{base}/in/part-00001.json").content_length == len(payload)
    listing = sorted(e.path for e in sdk.files.list_directory_contents(f"{base}/in", page_size=1))
    assert listing == [f"{base}/in/part-00001.json", f"{base}/in/part-00002.json"]
    sdk.files.get_directory_metadata(f"{base}/in")
    sdk.files.delete(f"{base}/in/part-00002.json")
    with pytest.raises(NotFound):
        sdk.files.get_metadata(f"{base}/in/part-00002.json")
    # files live under the workspace root, where dbutils.fs in tasks sees them too
    local = (
        databricks_emulator.workspace.state_dir / "workspace" / "Volumes/main/raw/landing/in/part-00001.json"
    )
    assert local.read_bytes() == payload


def test_files_api_rejects_non_volume_paths(sdk):
    from databricks.sdk.errors import InvalidParameterValue

    with pytest.raises(InvalidParameterValue, match="volume path"):
        sdk.files.upload("/tmp/x.txt", io.BytesIO(b"x"), overwrite=True)
    with pytest.raises(InvalidParameterValue):  # the client may normalise ".." away; either way: refused
        sdk.files.upload("/Volumes/a/b/c/../../../../etc/x", io.BytesIO(b"x"), overwrite=True)


def test_dbfs_put_read_list_status_delete(sdk):
    sdk.dbfs.mkdirs("/tmp/contract")
    sdk.dbfs.put("/tmp/contract/small.txt", contents="aGVsbG8=", overwrite=True)  # base64 "hello"
    big = bytes(range(256)) * 10_000  # 2.5 MB: create/add-block/close and chunked reads
    sdk.dbfs.upload("dbfs:/tmp/contract/big.bin", io.BytesIO(big), overwrite=True)
    assert sdk.dbfs.download("dbfs:/tmp/contract/big.bin").read() == big
    assert sdk.dbfs.read("/tmp/contract/small.txt", offset=1, length=3).data == "ZWxs"  # "ell"
    assert sorted(f.path for f in sdk.dbfs.list("/tmp/contract")) == [
        "/tmp/contract/big.bin",
        "/tmp/contract/small.txt",
    ]
    status = sdk.dbfs.get_status("/tmp/contract/big.bin")
    assert status.file_size == len(big)
    assert not status.is_dir
    sdk.dbfs.delete("/tmp/contract", recursive=True)
    with pytest.raises(NotFound):
        sdk.dbfs.get_status("/tmp/contract")


def test_cluster_start_time_is_configurable_through_fault(sdk, databricks_emulator):
    """Checked on the cluster's own events, as a lower bound: load can delay a start, never hasten it."""
    databricks_emulator.faults.slow_cluster_start(2.0)
    cluster = sdk.clusters.create_and_wait(
        spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=0
    )
    events = {event.type.value: event.timestamp for event in sdk.clusters.events(cluster.cluster_id)}
    assert events["RUNNING"] - events["CREATING"] >= 2000


def test_reset_empties_volumes_and_dbfs(sdk, databricks_emulator):
    sdk.files.upload("/Volumes/c/s/v/keep.txt", io.BytesIO(b"x"), overwrite=True)
    sdk.dbfs.put("/tmp/keep.txt", contents="eA==", overwrite=True)
    databricks_emulator.reset()
    with pytest.raises(NotFound):
        sdk.files.get_metadata("/Volumes/c/s/v/keep.txt")
    with pytest.raises(NotFound):
        sdk.dbfs.get_status("/tmp/keep.txt")
    assert databricks_emulator.job_id("greet")  # bundle jobs are back
