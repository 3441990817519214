"""Render the umbrella chart with the real official chart 1.22.0 and validate every object (Kubernetes 1.33).

Needs the packaged chart: `helm dependency build chart/` (puts chart/charts/airflow-1.22.0.tgz, git-ignored)
or AIRBRICKS_AIRFLOW_CHART_TGZ=/path/to/airflow-1.22.0.tgz. Without it these tests are skipped, loudly.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml
from chart_support import (
    CHART_DIR,
    DEPLOY_TIME_TAG,
    KUBERNETES_VERSION,
    RELEASE,
    airflow_chart_archive,
    kinds,
    layered_values,
    prepare_chart,
    render_chart,
)

ARCHIVE = airflow_chart_archive()
pytestmark = pytest.mark.skipif(
    ARCHIVE is None,
    reason="official chart archive absent: run `helm dependency build chart/` (needs network) or set "
    "AIRBRICKS_AIRFLOW_CHART_TGZ=/path/to/airflow-1.22.0.tgz to render and validate every object",
)
Objects = list[tuple[str, dict[str, Any]]]


@pytest.fixture(scope="module", params=["base+local", "base+prod"])
def rendered(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Objects]:
    assert ARCHIVE is not None
    layering = request.param
    values = layered_values(layering, {"airflow": {"images": {"airflow": {"tag": DEPLOY_TIME_TAG}}}})
    objects = render_chart(tmp_path_factory.mktemp(layering.replace("+", "-")), ARCHIVE, values)
    print(f"{layering}: {len(objects)} objects {dict(sorted(kinds(objects).items()))}")
    return layering, objects


def _pod_template(objects: Objects) -> dict[str, Any]:
    config = _one(objects, "ConfigMap", f"{RELEASE}-config")
    return yaml.safe_load(config["data"]["pod_template_file.yaml"])


def _one(objects: Objects, kind: str, name: str) -> dict[str, Any]:
    matches = [obj for _, obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


def _pod_specs(objects: Objects) -> Iterator[tuple[str, dict[str, Any]]]:
    for _, obj in objects:
        spec = obj.get("spec", {})
        if obj["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec:
            yield f"{obj['kind']}/{obj['metadata']['name']}", spec["template"]["spec"]
    yield "Pod/worker-pod-template", _pod_template(objects)["spec"]


def _containers(pod_spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from pod_spec.get("initContainers") or []
    yield from pod_spec["containers"]


def test_every_object_validates_against_kubernetes_schemas(rendered: tuple[str, Objects]) -> None:
    _, objects = rendered
    assert len(objects) > 30
    for path, obj in [*objects, ("pod_template_file.yaml", _pod_template(objects))]:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path}: {obj['kind']}/{obj['metadata']['name']}: {error.message}")


def test_core_components_rendered(rendered: tuple[str, Objects]) -> None:
    layering, objects = rendered
    for component in ("api-server", "scheduler", "dag-processor", "triggerer"):
        deployment = _one(objects, "Deployment", f"{RELEASE}-{component}")
        assert deployment["spec"]["replicas"] == (2 if layering == "base+prod" else 1)
        _one(objects, "PodDisruptionBudget", f"{RELEASE}-{component}-pdb")
    assert not [
        obj
        for _, obj in objects
        if obj["metadata"]["name"].startswith(f"{RELEASE}-worker") and obj["kind"] == "StatefulSet"
    ]
    assert not [obj for _, obj in objects if obj["metadata"]["name"].startswith(f"{RELEASE}-redis")]


def test_worker_pod_template_syncs_dags_and_runs_our_image(rendered: tuple[str, Objects]) -> None:
    layering, objects = rendered
    pod = _pod_template(objects)["spec"]
    init = {container["name"]: container for container in pod["initContainers"]}
    env = {item["name"]: item.get("value") for item in init["git-sync-init"]["env"]}
    assert env["GITSYNC_ONE_TIME"] == "true"
    assert env["GITSYNC_REPO"].endswith(".git")
    (base,) = [container for container in pod["containers"] if container["name"] == "base"]
    assert {"requests", "limits"} <= set(base["resources"])
    # The executor replaces the template's image with worker_container_repository:worker_container_tag.
    cfg = _one(objects, "ConfigMap", f"{RELEASE}-config")["data"]["airflow.cfg"]
    repository = (
        "airbricks-airflow"
        if layering == "base+local"
        else "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airbricks-airflow"
    )
    assert f"worker_container_repository = {repository}\n" in cfg
    assert f"worker_container_tag = {DEPLOY_TIME_TAG}\n" in cfg


def test_every_airflow_workload_runs_our_image(rendered: tuple[str, Objects]) -> None:
    layering, objects = rendered
    registry = "" if layering == "base+local" else "123456789012.dkr.ecr.eu-west-1.amazonaws.com/"
    expected = f"{registry}airbricks-airflow:{DEPLOY_TIME_TAG}"
    airflow_images = {
        f"{owner}/{container['name']}": container["image"]
        for owner, pod in _pod_specs(objects)
        for container in _containers(pod)
        if "airflow" in container["image"].split(":")[0] and "pgbouncer" not in container["image"]
    }
    # The pod template keeps the chart's fallback image; the executor swaps in worker_container_* (above).
    assert airflow_images.pop("Pod/worker-pod-template/base") == "apache/airflow:3.3.2"
    assert len(airflow_images) >= 8
    assert {image for image in airflow_images.values()} == {expected}, airflow_images


def test_static_secrets_are_referenced(rendered: tuple[str, Objects]) -> None:
    _, objects = rendered
    api_server = _one(objects, "Deployment", f"{RELEASE}-api-server")["spec"]["template"]["spec"]
    refs = {
        item["name"]: item["valueFrom"]["secretKeyRef"]
        for container in api_server["containers"]
        for item in container.get("env") or []
        if "secretKeyRef" in item.get("valueFrom", {})
    }
    assert refs["AIRFLOW__CORE__FERNET_KEY"] == {"name": "airbricks-fernet-key", "key": "fernet-key"}
    assert refs["AIRFLOW__API__SECRET_KEY"] == {"name": "airbricks-api-secret-key", "key": "api-secret-key"}
    assert refs["AIRFLOW__API_AUTH__JWT_SECRET"] == {"name": "airbricks-jwt-secret", "key": "jwt-secret"}
    assert refs["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]["name"] == "airbricks-metadata-db"
    generated = {obj["metadata"]["name"] for _, obj in objects if obj["kind"] == "Secret"}
    assert not generated & {f"{RELEASE}-fernet-key", f"{RELEASE}-jwt-secret", f"{RELEASE}-api-secret-key"}


def test_remote_logging_configured(rendered: tuple[str, Objects]) -> None:
    _, objects = rendered
    cfg = _one(objects, "ConfigMap", f"{RELEASE}-config")["data"]["airflow.cfg"]
    logging = cfg.split("[logging]", 1)[1].split("\n[", 1)[0]
    assert "remote_logging = True" in logging
    assert "remote_base_log_folder = s3://" in logging
    assert "remote_log_conn_id = aws_logs" in logging
    assert "executor = KubernetesExecutor" in cfg


def test_every_container_is_locked_down(rendered: tuple[str, Objects]) -> None:
    _, objects = rendered
    for owner, pod in _pod_specs(objects):
        pod_context = pod.get("securityContext") or {}
        for container in _containers(pod):
            context = {**pod_context, **(container.get("securityContext") or {})}
            where = f"{owner}/{container['name']}"
            assert context.get("runAsNonRoot") is True or context.get("runAsUser", 0) > 0, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert "ALL" in context.get("capabilities", {}).get("drop", []), where
            assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault", where


def test_every_container_has_requests_and_limits(rendered: tuple[str, Objects]) -> None:
    _, objects = rendered
    for owner, pod in _pod_specs(objects):
        for container in _containers(pod):
            resources = container.get("resources") or {}
            where = f"{owner}/{container['name']}"
            assert set(resources.get("requests", {})) >= {"cpu", "memory"}, where
            assert set(resources.get("limits", {})) >= {"cpu", "memory"}, where


def test_prod_service_accounts_carry_irsa_roles(rendered: tuple[str, Objects]) -> None:
    layering, objects = rendered
    accounts = {obj["metadata"]["name"]: obj for _, obj in objects if obj["kind"] == "ServiceAccount"}
    for name in (
        f"{RELEASE}-airflow-worker-kubernetes",
        f"{RELEASE}-airflow-scheduler",
        f"{RELEASE}-airflow-api-server",
        f"{RELEASE}-airflow-triggerer",
        f"{RELEASE}-airflow-dag-processor",
    ):
        annotations = accounts[name]["metadata"].get("annotations") or {}
        has_role = "eks.amazonaws.com/role-arn" in annotations
        assert has_role is (layering == "base+prod"), name
    if layering == "base+prod":
        assert kinds(objects)["NetworkPolicy"] >= 4
        assert _pod_template(objects)["spec"]["serviceAccountName"] == f"{RELEASE}-airflow-worker-kubernetes"


def test_no_credential_rendered(rendered: tuple[str, Objects], tmp_path: pathlib.Path) -> None:
    _, objects = rendered
    text = yaml.safe_dump_all([obj for _, obj in objects])
    assert "admin/admin" not in text
    assert "password: admin" not in text
    assert "AKIA" not in text


def test_names_the_kind_script_relies_on(rendered: tuple[str, Objects]) -> None:
    """scripts/kind.sh deletes these Jobs before an upgrade and builds the metadata URL from the Service."""
    layering, objects = rendered
    script = (CHART_DIR.parent / "scripts" / "kind.sh").read_text()
    jobs = {obj["metadata"]["name"] for _, obj in objects if obj["kind"] == "Job"}
    if layering == "base+local":
        assert jobs == {f"{RELEASE}-run-airflow-migrations", f"{RELEASE}-create-user"}
        _one(objects, "Service", f"{RELEASE}-postgresql")
        assert "@${RELEASE}-postgresql.${NAMESPACE}:5432/" in script
    else:
        assert jobs == {f"{RELEASE}-run-airflow-migrations"}
    assert '"${RELEASE}-run-airflow-migrations" "${RELEASE}-create-user"' in script
    _one(objects, "Service", f"{RELEASE}-api-server")
    assert 'port-forward "svc/${RELEASE}-api-server"' in script


@pytest.mark.parametrize("layering", ["base+local", "base+prod"])
def test_helm_lint_strict_is_clean(layering: str, tmp_path: pathlib.Path) -> None:
    """Helm's own linter (strict: warnings fail), for Kubernetes 1.33, with the subchart."""
    import helm_python

    assert ARCHIVE is not None
    values = layered_values(layering, {"airflow": {"images": {"airflow": {"tag": DEPLOY_TIME_TAG}}}})
    report = helm_python.lint(prepare_chart(tmp_path, ARCHIVE), values, strict=True, kube_version="v1.33.0")
    assert report["errors"] == []
    assert [message for message in report["messages"] if message["severity"] >= 2] == []


def test_local_dags_mode_mounts_the_claim_instead_of_gitsync(tmp_path: pathlib.Path) -> None:
    assert ARCHIVE is not None
    values = layered_values(
        "base+local+local-dags", {"airflow": {"images": {"airflow": {"tag": DEPLOY_TIME_TAG}}}}
    )
    objects = render_chart(tmp_path, ARCHIVE, values)
    pod = _pod_template(objects)
    for _, obj in [*objects, ("pod_template_file.yaml", pod)]:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert not pod["spec"].get("initContainers")
    claims = {
        volume["persistentVolumeClaim"]["claimName"]
        for volume in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in volume
    }
    assert claims == {"airbricks-local-dags"}
    for component in ("scheduler", "dag-processor", "triggerer"):
        spec = _one(objects, "Deployment", f"{RELEASE}-{component}")["spec"]["template"]["spec"]
        assert "git-sync" not in {container["name"] for container in spec["containers"]}
    cfg = _one(objects, "ConfigMap", f"{RELEASE}-config")["data"]["airflow.cfg"]
    assert "dags_folder = /opt/airflow/dags\n" in cfg


def test_dag_processor_runs_the_preloading_local_settings(rendered: tuple[str, Objects]) -> None:
    _, objects = rendered
    settings = _one(objects, "ConfigMap", f"{RELEASE}-config")["data"]["airflow_local_settings.py"]
    assert "preload_for_dag_processor()" in settings
    compile(settings, "airflow_local_settings.py", "exec")  # tpl left it valid Python
    processor = _one(objects, "Deployment", f"{RELEASE}-dag-processor")["spec"]["template"]["spec"]
    mounts = {
        mount["mountPath"]: mount.get("subPath")
        for container in processor["containers"]
        for mount in container.get("volumeMounts", [])
    }
    assert mounts.get("/opt/airflow/config/airflow_local_settings.py") == "airflow_local_settings.py"
