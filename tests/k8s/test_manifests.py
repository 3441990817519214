"""k8s/: every manifest validates against the Kubernetes 1.33 schemas and is locked down and bounded."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = REPO_ROOT / "k8s"
KUBERNETES_VERSION = "1.33"
MANIFESTS = sorted(path for path in K8S.rglob("*.yaml") if path.parent.name != "kind")


def _objects(path: pathlib.Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _all_objects() -> Iterator[tuple[pathlib.Path, dict[str, Any]]]:
    for path in MANIFESTS:
        for obj in _objects(path):
            yield path, obj


def _pod_specs() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, obj in _all_objects():
        template = obj.get("spec", {}).get("template")
        if template:
            yield f"{path.name}:{obj['kind']}/{obj['metadata']['name']}", template["spec"]


def test_manifest_set() -> None:
    names = {str(path.relative_to(K8S)) for path in MANIFESTS}
    assert {
        "base/namespace.yaml",
        "base/minio.yaml",
        "base/databricks-emulator.yaml",
        "local-dags/volume.yaml",
        "secrets/common.template.yaml",
        "secrets/kind.template.yaml",
        "secrets/prod.template.yaml",
    } <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: str(path.relative_to(K8S)))
def test_validates_against_kubernetes_schemas(path: pathlib.Path) -> None:
    objects = _objects(path)
    assert objects
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{path.name}: {obj['kind']}/{obj['metadata']['name']}: {error.message}")


def test_validation_catches_a_typo() -> None:
    """The gate can fail: a misspelled field is refused in strict mode."""
    obj = _objects(K8S / "base" / "minio.yaml")[1]
    obj["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_everything_lives_in_the_airbricks_namespace() -> None:
    for path, obj in _all_objects():
        if obj["kind"] in {"Namespace", "PersistentVolume"} or path.name == "prod.template.yaml":
            continue
        assert obj["metadata"]["namespace"] == "airbricks", f"{path.name}: {obj['metadata']['name']}"


def test_pods_are_locked_down_and_bounded() -> None:
    specs = list(_pod_specs())
    assert len(specs) == 3  # minio, bucket job, emulator
    for owner, pod in specs:
        assert pod["automountServiceAccountToken"] is False, owner
        assert pod["securityContext"]["runAsNonRoot"] is True, owner
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, owner
        for container in pod["containers"]:
            where = f"{owner}/{container['name']}"
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, where
            assert not re.search(r":latest$|^[^:]+$", container["image"]), f"{where}: unpinned image"
        assert not [volume for volume in pod.get("volumes", []) if "hostPath" in volume], owner


def test_emulator_runs_our_image_with_the_bundle() -> None:
    deployment = _objects(K8S / "base" / "databricks-emulator.yaml")[0]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "airbricks-airflow:kind"  # tag replaced by scripts/kind.sh
    assert container["command"][:7] == [
        "airbricks-emulator", "--host", "0.0.0.0", "--port", "8080", "--bundle", "/opt/airflow/databricks",  # noqa: S104
    ]  # fmt: skip
    service = _objects(K8S / "base" / "databricks-emulator.yaml")[1]
    assert service["spec"]["ports"][0]["port"] == 8080


def test_buckets_match_the_chart_and_the_raw_zone() -> None:
    job = _objects(K8S / "base" / "minio.yaml")[3]
    script = job["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert "for bucket in airbricks-raw airbricks-logs" in script
    assert "--ignore-existing" in script
    local = yaml.safe_load((REPO_ROOT / "chart" / "values-local.yaml").read_text())["airflow"]
    assert local["config"]["logging"]["remote_base_log_folder"].startswith("s3://airbricks-logs/")
    assert {"name": "AIRBRICKS_RAW_BUCKET", "value": "airbricks-raw"} in local["env"]
