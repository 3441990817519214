"""k8s/kind/cluster.yaml: pinned Kubernetes 1.33 node image, a control plane and a worker, no host paths."""

from __future__ import annotations

import pathlib
import re

import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIG = REPO_ROOT / "k8s" / "kind" / "cluster.yaml"
NODE_IMAGE = re.compile(r"^kindest/node:v1\.33\.\d+@sha256:[0-9a-f]{64}$")


def test_cluster_shape() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert config["name"] == "airbricks"
    assert [node["role"] for node in config["nodes"]] == ["control-plane", "worker"]


def test_node_images_pinned_by_digest_to_kubernetes_1_33() -> None:
    for node in yaml.safe_load(CONFIG.read_text())["nodes"]:
        assert NODE_IMAGE.match(node["image"]), node["image"]


def test_no_host_paths_committed() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    for node in config["nodes"]:
        assert "extraMounts" not in node, "local-dags mounts are generated at runtime (scripts/kind.sh)"
    assert not re.search(r"/(home|Users)/", CONFIG.read_text())
