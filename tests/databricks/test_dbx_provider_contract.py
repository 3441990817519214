"""The private parts of apache-airflow-providers-databricks that airbricks builds on, pinned.

``AirbricksDatabricksHook.call``/``a_call`` reuse the provider hook's connection, auth and retry helpers
(it has no public "call any endpoint"), and the operators replace the provider operators' ``_hook``. Those
are private: a provider upgrade may rename or change them without notice. Each test below names one thing
relied upon, so an upgrade that breaks it fails here, loudly and by name, instead of at run time.
Everything else airbricks takes from the provider is public API.
"""

from __future__ import annotations

import inspect

import pytest
from airflow.providers.databricks.hooks.databricks import DatabricksHook
from airflow.providers.databricks.operators.databricks import (
    DatabricksNotebookOperator,
    DatabricksRunNowOperator,
    DatabricksSubmitRunOperator,
)
from airflow.providers.databricks.triggers.databricks import DatabricksExecutionTrigger
from tenacity import stop_after_attempt

from airbricks.databricks.hooks import AirbricksDatabricksHook
from airbricks.databricks.operators import (
    AirbricksDatabricksRunNowOperator,
    AirbricksDatabricksSubmitRunOperator,
)
from airbricks.databricks.retry import wait_retry_after
from airbricks.databricks.triggers import AirbricksDatabricksExecutionTrigger
from airbricks.databricks.workflow import AirbricksDatabricksNotebookOperator

# Private DatabricksHook members AirbricksDatabricksHook calls or overrides -> the parameters it uses.
HOOK_MEMBERS: dict[str, tuple[str, ...]] = {
    "_do_api_call": ("endpoint_info", "json"),
    "_a_do_api_call": ("endpoint_info", "json"),
    "_get_token": (),
    "_a_get_token": (),
    "_get_connection_attr": ("attr_name",),
    "_endpoint_url": ("endpoint",),
    "_get_aad_headers": (),
    "_a_get_aad_headers": (),
    "_get_retry_object": (),
    "_a_get_retry_object": (),
    "_get_requests_kwargs": (),
    "_get_aiohttp_kwargs": ("url",),
    "_a_cache_databricks_conn": (),
}


@pytest.mark.parametrize("name", sorted(HOOK_MEMBERS))
def test_private_hook_member_still_exists_with_the_parameters_used(name):
    member = getattr(DatabricksHook, name, None)
    assert callable(member), f"DatabricksHook.{name} is gone: AirbricksDatabricksHook.call/a_call use it"
    parameters = list(inspect.signature(member).parameters)[1:]
    assert parameters[: len(HOOK_MEMBERS[name])] == list(HOOK_MEMBERS[name]), (
        f"DatabricksHook.{name}{inspect.signature(member)} changed; airbricks passes {HOOK_MEMBERS[name]}"
    )


def test_every_retry_path_is_built_from_retry_args_so_the_retry_after_wait_applies():
    hook = AirbricksDatabricksHook(retry_limit=2, retry_delay=0.1)
    assert isinstance(hook.retry_args["wait"], wait_retry_after)
    assert hook._get_retry_object().wait is hook.retry_args["wait"]
    assert hook._a_get_retry_object().wait is hook.retry_args["wait"]


def test_aiohttp_session_attribute_is_what_the_async_helpers_use():
    # a_call opens its own aiohttp session and hands it to the provider's token/AAD helpers as _session.
    source = inspect.getsource(DatabricksHook._a_do_api_call)
    assert "self._session" in source, "the provider's async calls no longer use self._session"


@pytest.mark.parametrize(
    ("provider_cls", "ours", "kwargs"),
    [
        (DatabricksRunNowOperator, AirbricksDatabricksRunNowOperator, {"job_name": "j"}),
        (DatabricksSubmitRunOperator, AirbricksDatabricksSubmitRunOperator, {"json": {}}),
        (
            DatabricksNotebookOperator,
            AirbricksDatabricksNotebookOperator,
            {"notebook_path": "/n", "source": "WORKSPACE", "existing_cluster_id": "c"},
        ),
    ],
)
def test_provider_operators_reach_their_hook_through_hook_so_ours_replaces_it(provider_cls, ours, kwargs):
    assert "_hook" in vars(provider_cls) or any("_hook" in vars(base) for base in provider_cls.__mro__[1:])
    assert list(inspect.signature(provider_cls._get_hook).parameters) == ["self", "caller"]
    stop = stop_after_attempt(2)
    operator = ours(task_id="t", databricks_retry_args={"stop": stop}, **kwargs)
    assert isinstance(operator._hook, AirbricksDatabricksHook)
    assert operator._hook.retry_args["stop"] is stop  # retry_args reach the hook


def test_run_now_payload_method_used_by_the_repairing_operator():
    signature = inspect.signature(DatabricksRunNowOperator._prepare_run_now_json)
    assert list(signature.parameters) == ["self", "context"]


def test_provider_trigger_polls_through_self_hook_and_round_trips_its_arguments():
    trigger = AirbricksDatabricksExecutionTrigger(
        run_id=1, databricks_conn_id="c", retry_limit=4, retry_delay=0.5, retry_args=None, caller="x"
    )
    assert isinstance(trigger.hook, AirbricksDatabricksHook)
    assert trigger.hook.retry_limit == 4
    assert "self.hook" in inspect.getsource(DatabricksExecutionTrigger.run)
    # operators swap the provider's trigger for ours from its serialized kwargs
    _, kwargs = DatabricksExecutionTrigger(run_id=1, databricks_conn_id="c").serialize()
    assert set(kwargs) <= set(inspect.signature(DatabricksExecutionTrigger.__init__).parameters)


def test_provider_trigger_poll_line_is_the_one_logged_only_on_state_changes():
    from airbricks.databricks.triggers import _POLL_LINE, _StateChangeLog

    assert _POLL_LINE in inspect.getsource(DatabricksExecutionTrigger.run)

    class Recorder:
        def __init__(self):
            self.calls = []

        def info(self, message, *args, **kwargs):
            self.calls.append(("info", message % args))

        def debug(self, message, *args, **kwargs):
            self.calls.append(("debug", message % args))

        def warning(self, message, *args, **kwargs):
            self.calls.append(("warning", message % args))

    recorder = Recorder()
    log = _StateChangeLog(recorder)
    for state in ("PENDING", "PENDING", "RUNNING", "RUNNING", "RUNNING"):
        log.info(_POLL_LINE, 7, state, 5)
    log.info("other %s", "line")
    log.warning("retrying %s", "runs/get")
    assert [level for level, _ in recorder.calls] == [
        "info",
        "debug",
        "info",
        "debug",
        "debug",
        "info",
        "warning",
    ]
    assert recorder.calls[2] == ("info", "run-id 7 in run state RUNNING. sleeping for 5 seconds")
    trigger = AirbricksDatabricksExecutionTrigger(run_id=1, databricks_conn_id="c")
    assert isinstance(trigger.log, _StateChangeLog)
