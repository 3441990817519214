"""dags/containerised_partition_report.py: the pod KubernetesPodOperator would create, built offline by the
provider's own code (``build_pod_request_obj``) from the parsed DAG, rendered for a real data interval, and
validated against the Kubernetes 1.33 schemas."""

from __future__ import annotations

import pathlib
import types
from typing import Any

import kubernetes_validate
import pendulum
import pytest
from kubernetes.client import ApiClient

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DAG_FILE = REPO_ROOT / "dags" / "containerised_partition_report.py"
INTERVAL_START = pendulum.datetime(2026, 11, 19, tz="UTC")
INTERVAL_END = INTERVAL_START.add(days=1)


@pytest.fixture(scope="module")
def dag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["containerised_partition_report"]


@pytest.fixture(scope="module")
def pod(dag: Any) -> dict[str, Any]:
    """The rendered pod request as the Kubernetes API would receive it (camelCase JSON)."""
    task = dag.get_task("summarise_partition")
    run_id = "scheduled__2026-11-19T00:00:00+00:00"
    ti = types.SimpleNamespace(dag_id=dag.dag_id, task_id=task.task_id, map_index=-1, try_number=1)
    context = {
        "dag": dag,
        "task": task,
        "ti": ti,
        "run_id": run_id,
        "data_interval_start": INTERVAL_START,
        "data_interval_end": INTERVAL_END,
        "ds": INTERVAL_START.to_date_string(),
    }
    task.render_template_fields(context)
    request = task.build_pod_request_obj(context, dry_run=True)
    return ApiClient().sanitize_for_serialization(request)


def test_operator_settings(dag: Any) -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.utils.pod_manager import OnFinishAction

    task = dag.get_task("summarise_partition")
    assert isinstance(task, KubernetesPodOperator)
    assert task.deferrable is True
    assert task.on_finish_action == OnFinishAction.DELETE_SUCCEEDED_POD
    assert task.retries >= 2
    assert task.owner == "data-platform"
    assert set(dag.tags) >= {"kubernetes"}
    assert "arguments" in KubernetesPodOperator.template_fields


def test_pod_validates_against_kubernetes_schemas(pod: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(pod, "1.33", strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"pod request invalid for Kubernetes 1.33: {error.message}")


def test_arguments_are_rendered_with_the_data_interval(pod: dict[str, Any]) -> None:
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["aws"]
    assert container["args"][-1] == "s3://airbricks-raw/raw/hackernews/stories/dt=2026-11-19/"
    assert "{{" not in " ".join(container["args"])


def test_image_pinned_and_resources_bounded(pod: dict[str, Any]) -> None:
    (container,) = pod["spec"]["containers"]
    repository, _, tag = container["image"].rpartition(":")
    assert repository == "public.ecr.aws/aws-cli/aws-cli"
    assert tag[0].isdigit(), "a release tag, not latest"
    assert (
        set(container["resources"]["requests"]) == set(container["resources"]["limits"]) == {"cpu", "memory"}
    )


def test_pod_is_locked_down(pod: dict[str, Any]) -> None:
    spec = pod["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert spec["restartPolicy"] == "Never"


def test_scheduling_and_identity(pod: dict[str, Any]) -> None:
    spec = pod["spec"]
    assert pod["metadata"]["namespace"] == "airbricks"
    assert spec["serviceAccountName"] == "airbricks-airflow-worker-kubernetes"
    preferred = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["preference"]["matchExpressions"][0]["key"] == "airbricks.dev/workload"
    assert spec["tolerations"][0]["key"] == "airbricks.dev/workload"
    (container,) = spec["containers"]
    assert container["envFrom"] == [{"secretRef": {"name": "airbricks-pod-aws", "optional": True}}]
    labels = pod["metadata"]["labels"]
    assert labels["dag_id"] == "containerised_partition_report"
    assert labels["kubernetes_pod_operator"] == "True"
    # From the DAG's pod template, merged with what the operator sets itself.
    assert labels["app.kubernetes.io/component"] == "partition-report"
    assert {"name": "HOME", "value": "/home/report"} in container["env"]
    assert container["volumeMounts"] == [{"mountPath": "/home/report", "name": "home"}]
    assert spec["volumes"] == [{"emptyDir": {"sizeLimit": "16Mi"}, "name": "home"}]


def test_worker_node_label_matches_the_kind_cluster() -> None:
    import yaml

    config = yaml.safe_load((REPO_ROOT / "k8s" / "kind" / "cluster.yaml").read_text())
    assert config["nodes"][1]["labels"] == {"airbricks.dev/workload": "true"}
