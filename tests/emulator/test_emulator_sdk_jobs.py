"""Contract: databricks-sdk Jobs API calls against the emulator, with real task processes."""

from __future__ import annotations

import datetime
import os
import re
import time

import pytest
from databricks.sdk.errors import InvalidParameterValue, NotFound, OperationFailed
from databricks.sdk.service import compute, jobs

pytestmark = pytest.mark.integration


def _wait(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_bundle_jobs_are_listed_by_name_with_resolved_variables(sdk, databricks_emulator):
    jobs = list(sdk.jobs.list(name="contract-greet", expand_tasks=True))
    assert [j.job_id for j in jobs] == [databricks_emulator.job_id("greet")]
    settings = jobs[0].settings
    assert [t.task_key for t in settings.tasks] == ["greet", "count"]
    assert settings.tasks[0].notebook_task.base_parameters == {"greeting": "hello-local"}
    assert settings.tasks[0].notebook_task.notebook_path.endswith("tests/emulator/bundle/src/greet.py")
    assert not list(sdk.jobs.list(name="missing"))


def test_run_now_multi_task_job_waits_and_returns_outputs(sdk, databricks_emulator):
    started = time.monotonic()
    run = sdk.jobs.run_now(databricks_emulator.job_id("greet"), job_parameters={"who": "sdk"}).result(
        timeout=datetime.timedelta(seconds=60)
    )
    assert time.monotonic() - started < 30
    assert run.state.life_cycle_state.value == "TERMINATED"
    assert run.state.result_state.value == "SUCCESS"
    assert run.status.state.value == "TERMINATED"
    assert run.status.termination_details.code.value == "SUCCESS"
    assert {p.name: p.value for p in run.job_parameters} == {"who": "sdk", "output_path": ""}
    assert run.run_page_url.startswith(databricks_emulator.url)
    greet, count = run.tasks
    assert greet.run_id != count.run_id != run.run_id
    assert greet.start_time <= count.start_time
    assert count.end_time >= greet.end_time
    # one shared job cluster for both tasks, terminated when the run ended
    assert greet.cluster_instance.cluster_id == count.cluster_instance.cluster_id
    assert sdk.jobs.get_run_output(greet.run_id).notebook_output.result == "hello-local, sdk"
    logs = sdk.jobs.get_run_output(count.run_id).logs
    assert "who=sdk length=16" in logs  # {{tasks.greet.values.length}} came from taskValues.set
    databricks_emulator.wait_idle()
    assert databricks_emulator.state()["active_clusters"] == []


def test_get_output_on_multi_task_parent_is_refused(sdk, databricks_emulator):
    run = sdk.jobs.run_now(databricks_emulator.job_id("greet")).result()
    with pytest.raises(InvalidParameterValue, match="multiple tasks"):
        sdk.jobs.get_run_output(run.run_id)


def test_failed_task_reports_error_trace_and_skips_downstream(sdk, databricks_emulator):
    run = sdk.jobs.run_now(databricks_emulator.job_id("fail")).result()
    assert run.state.result_state.value == "FAILED"
    tasks = {t.task_key: t for t in run.tasks}
    assert tasks["boom"].state.result_state.value == "FAILED"
    assert tasks["after_boom"].state.result_state.value == "UPSTREAM_FAILED"
    output = sdk.jobs.get_run_output(tasks["boom"].run_id)
    assert output.error == "ZeroDivisionError: deliberate failure for the contract tests"
    assert 'boom.py", line 6' in output.error_trace


def test_submit_single_task_run_and_output_on_parent(sdk, databricks_emulator):
    src = databricks_emulator.workspace.bundle.root / "src"
    run = sdk.jobs.submit(
        run_name="one-off",
        tasks=[
            jobs.SubmitTask(
                task_key="greet",
                notebook_task=jobs.NotebookTask(
                    notebook_path=str(src / "greet.py"), base_parameters={"who": "submit"}
                ),
                new_cluster=compute.ClusterSpec(
                    spark_version="15.4.x-scala2.12", node_type_id="i3.xlarge", num_workers=0
                ),
            )
        ],
    ).result()
    assert run.run_type.value == "SUBMIT_RUN"
    assert run.state.result_state.value == "SUCCESS"
    # single-task run: the parent run id is accepted by get-output
    assert sdk.jobs.get_run_output(run.run_id).notebook_output.result == "hi, submit"
    databricks_emulator.wait_idle()


def test_idempotency_token_returns_the_same_run(sdk, databricks_emulator):
    job_id = databricks_emulator.job_id("greet")
    first = sdk.jobs.run_now(job_id, idempotency_token="tok-1").response.run_id
    second = sdk.jobs.run_now(job_id, idempotency_token="tok-1").response.run_id
    assert first == second
    assert len(list(sdk.jobs.list_runs(job_id=job_id))) == 1


def test_cancel_kills_the_task_process(sdk, databricks_emulator):
    waiter = sdk.jobs.run_now(databricks_emulator.job_id("sleepy"), job_parameters={"seconds": "120"})
    run_id = waiter.response.run_id
    pid = _wait(lambda: next(iter(_task_pids(databricks_emulator, run_id)), None))
    assert _pid_alive(pid)
    sdk.jobs.cancel_run(run_id).result()
    run = sdk.jobs.get_run(run_id)
    assert run.state.result_state.value == "CANCELED"
    assert run.status.termination_details.code.value == "USER_CANCELED"
    _wait(lambda: not _pid_alive(pid), timeout=10)


def test_job_timeout_marks_run_timedout(sdk, databricks_emulator):
    job_id = databricks_emulator.job_id("sleepy")
    sdk.jobs.update(job_id, new_settings=jobs.JobSettings(timeout_seconds=1))
    started = time.monotonic()
    run = sdk.jobs.run_now(job_id).result()
    assert time.monotonic() - started < 15
    assert run.state.result_state.value == "TIMEDOUT"
    assert run.tasks[0].state.result_state.value == "TIMEDOUT"


def test_task_timeout_from_submit(sdk, databricks_emulator):
    src = databricks_emulator.workspace.bundle.root / "src"
    run = sdk.jobs.submit(
        run_name="task-timeout",
        tasks=[
            jobs.SubmitTask(
                task_key="sleep",
                timeout_seconds=1,
                spark_python_task=jobs.SparkPythonTask(python_file=str(src / "sleep.py"), parameters=["30"]),
            )
        ],
    ).result()
    assert run.tasks[0].state.result_state.value == "TIMEDOUT"
    assert run.state.result_state.value == "FAILED"


def test_repair_reruns_failed_tasks_with_history(sdk, databricks_emulator, tmp_path):
    job_id = databricks_emulator.job_id("fail")
    run = sdk.jobs.run_now(job_id).result()
    assert run.state.result_state.value == "FAILED"
    boom = next(t for t in run.tasks if t.task_key == "boom")
    # fix the notebook by pointing the task at a good one, then repair
    good = databricks_emulator.workspace.bundle.root / "src" / "greet.py"
    databricks_emulator.workspace.jobs.runs[run.run_id].tasks[0].spec["notebook_task"]["notebook_path"] = str(
        good
    )
    repaired = sdk.jobs.repair_run(run.run_id, rerun_all_failed_tasks=True).result()
    assert repaired.state.result_state.value == "SUCCESS"
    assert [h.type.value for h in repaired.repair_history] == ["ORIGINAL", "REPAIR"]
    # tasks[] lists every attempt (as on Databricks); the repair re-ran boom and after_boom
    attempts = [(t.task_key, t.attempt_number) for t in repaired.tasks]
    assert attempts == [("boom", 0), ("after_boom", 0), ("boom", 1), ("after_boom", 1)]
    new_boom = repaired.tasks[2]
    assert new_boom.run_id != boom.run_id
    assert repaired.repair_history[1].task_run_ids == [t.run_id for t in repaired.tasks[2:]]


def test_repair_semantics_match_databricks(sdk, databricks_emulator):
    """Only the failed task and its downstream re-run, with overridden job parameters, on one new job
    cluster per repair; the ORIGINAL entry is listed before any repair; later repairs need the latest id."""
    job_id = databricks_emulator.job_id("greet")
    databricks_emulator.faults.fail_runs(count=1, task_key="count", message="Injected: count failed")
    run = sdk.jobs.run_now(job_id).result()
    assert [(t.task_key, t.state.result_state.value) for t in run.tasks] == [
        ("greet", "SUCCESS"),
        ("count", "FAILED"),
    ]
    original = sdk.jobs.get_run(run.run_id, include_history=True)
    assert [h.type.value for h in original.repair_history] == ["ORIGINAL"]

    first = sdk.jobs.repair_run(run.run_id, rerun_all_failed_tasks=True).result()
    assert first.state.result_state.value == "SUCCESS"
    assert [t.task_key for t in first.tasks] == ["greet", "count", "count"]  # greet (SUCCESS) kept
    with pytest.raises(InvalidParameterValue, match="latest_repair_id"):
        sdk.jobs.repair_run(run.run_id, rerun_tasks=["greet"])

    repair_id = first.repair_history[-1].id
    second = sdk.jobs.repair_run(
        run.run_id,
        latest_repair_id=repair_id,
        rerun_tasks=["greet"],
        rerun_dependent_tasks=True,
        job_parameters={"who": "repair"},
    ).result()
    assert [t.task_key for t in second.tasks] == ["greet", "count", "count", "greet", "count"]
    assert [h.type.value for h in second.repair_history] == ["ORIGINAL", "REPAIR", "REPAIR"]
    assert {p.name: p.value for p in second.job_parameters}["who"] == "repair"
    clusters = [t.cluster_instance.cluster_id for t in second.tasks]
    # one job cluster for the original run and a new one for each repair, shared by its tasks
    assert clusters[0] == clusters[1]
    assert clusters[3] == clusters[4]
    assert len({clusters[0], clusters[2], clusters[3]}) == 3


def test_runs_list_filters_and_paginates(sdk, databricks_emulator):
    job_id = databricks_emulator.job_id("greet")
    runs = [sdk.jobs.run_now(job_id) for _ in range(3)]
    for waiter in runs:
        waiter.result()
    listed = list(sdk.jobs.list_runs(job_id=job_id, limit=2, completed_only=True))
    assert [r.run_id for r in listed] == sorted((w.response.run_id for w in runs), reverse=True)
    assert list(sdk.jobs.list_runs(job_id=job_id, active_only=True)) == []
    sdk.jobs.delete_run(listed[0].run_id)
    assert len(list(sdk.jobs.list_runs(job_id=job_id))) == 2


def test_jobs_create_get_reset_delete_and_list_pagination(sdk, databricks_emulator):
    src = databricks_emulator.workspace.bundle.root / "src"
    task = jobs.Task(task_key="t", notebook_task=jobs.NotebookTask(notebook_path=str(src / "greet.py")))
    created = [sdk.jobs.create(name=f"paged-{i}", tasks=[task]).job_id for i in range(5)]
    listed = [j.job_id for j in sdk.jobs.list(limit=2)]
    assert set(created) <= set(listed)
    assert len(listed) == len(set(listed))
    sdk.jobs.reset(created[0], new_settings=jobs.JobSettings(name="renamed", tasks=[task]))
    assert sdk.jobs.get(created[0]).settings.name == "renamed"
    sdk.jobs.delete(created[0])
    with pytest.raises(NotFound):
        sdk.jobs.get(created[0])


def test_max_concurrent_runs_queues_the_second_run(sdk, databricks_emulator):
    job_id = databricks_emulator.job_id("sleepy")
    first = sdk.jobs.run_now(job_id, job_parameters={"seconds": "30"}).response.run_id
    second = sdk.jobs.run_now(job_id, job_parameters={"seconds": "0"}).response.run_id
    _wait(lambda: sdk.jobs.get_run(first).state.life_cycle_state.value == "RUNNING")
    assert sdk.jobs.get_run(second).state.life_cycle_state.value == "QUEUED"
    sdk.jobs.cancel_all_runs(job_id=job_id)
    _wait(lambda: not databricks_emulator.state()["active_runs"], timeout=15)


def test_unknown_dynamic_reference_fails_clearly(sdk, databricks_emulator):
    src = databricks_emulator.workspace.bundle.root / "src"
    run = sdk.jobs.submit(
        run_name="bad-ref",
        tasks=[
            jobs.SubmitTask(
                task_key="t",
                spark_python_task=jobs.SparkPythonTask(
                    python_file=str(src / "count.py"), parameters=["{{job.parameters.nope}}"]
                ),
            )
        ],
    )
    with pytest.raises(OperationFailed, match=re.escape("{{job.parameters.nope}}")):
        run.result()


def _task_pids(emulator, run_id: int) -> list[int]:
    for run in emulator.state()["runs"]:
        if run["run_id"] == run_id:
            return [t["pid"] for t in run["tasks"].values() if t["pid"]]
    return []


def test_failed_task_is_retried_before_downstream_runs(sdk, databricks_emulator, tmp_path):
    run = sdk.jobs.run_now(
        databricks_emulator.job_id("flaky"), job_parameters={"marker_dir": str(tmp_path)}
    ).result()
    assert run.state.result_state.value == "SUCCESS"
    attempts = [(t.task_key, t.attempt_number, t.state.result_state.value) for t in run.tasks]
    # tasks[] lists every attempt, as on Databricks; "after" ran only once the retry succeeded
    assert attempts == [("flaky", 0, "FAILED"), ("after", 0, "SUCCESS"), ("flaky", 1, "SUCCESS")]
    assert run.tasks[1].start_time >= run.tasks[2].end_time


def test_deployed_workspace_paths_map_to_the_bundle(sdk, databricks_emulator):
    deployed = "/Workspace/Users/someone@example.com/.bundle/emulator-contract/local/files/src/greet"
    run = sdk.jobs.submit(
        run_name="deployed-path",
        tasks=[jobs.SubmitTask(task_key="t", notebook_task=jobs.NotebookTask(notebook_path=deployed))],
    ).result()
    assert run.state.result_state.value == "SUCCESS"
    assert sdk.jobs.get_run_output(run.run_id).notebook_output.result == "hi, nobody"


def test_without_queue_a_run_over_the_limit_is_skipped(sdk, databricks_emulator):
    src = databricks_emulator.workspace.bundle.root / "src"
    job_id = sdk.jobs.create(
        name="no-queue",
        max_concurrent_runs=1,
        queue=jobs.QueueSettings(enabled=False),
        tasks=[
            jobs.Task(
                task_key="sleep",
                spark_python_task=jobs.SparkPythonTask(python_file=str(src / "sleep.py"), parameters=["30"]),
            )
        ],
    ).job_id
    first = sdk.jobs.run_now(job_id).response.run_id
    skipped = sdk.jobs.run_now(job_id).result()
    assert skipped.state.life_cycle_state.value == "SKIPPED"
    assert skipped.state.result_state.value == "MAXIMUM_CONCURRENT_RUNS_REACHED"
    assert sdk.jobs.get_run(first).state.life_cycle_state.value in ("PENDING", "RUNNING")
    sdk.jobs.cancel_run(first).result()
