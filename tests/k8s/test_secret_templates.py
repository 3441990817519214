"""k8s/secrets/: the shape of every Secret the chart and manifests reference, with placeholders only."""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
SECRETS = REPO_ROOT / "k8s" / "secrets"
PLACEHOLDER = re.compile(r"<[^<>]+>")


def _templates() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(SECRETS.glob("*.template.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[doc["metadata"]["name"]] = doc
    return found


def _secret_refs(tree: Any) -> Iterator[tuple[str, str | None]]:
    """(secret name, key) for every secretKeyRef / secretRef / *SecretName reference in a values tree."""
    if isinstance(tree, dict):
        if "secretKeyRef" in tree:
            yield tree["secretKeyRef"]["name"], tree["secretKeyRef"].get("key")
        for key, value in tree.items():
            if isinstance(value, str) and re.search(
                r"(SecretName|sshKeySecret|credentialsSecret|existingSecret)$", key
            ):
                yield value, None
            else:
                yield from _secret_refs(value)
    elif isinstance(tree, list):
        for item in tree:
            yield from _secret_refs(item)


def test_every_value_is_a_placeholder() -> None:
    templates = _templates()
    assert len(templates) >= 14
    for name, secret in templates.items():
        assert "data" not in secret, f"{name}: use stringData with placeholders"
        for key, value in secret["stringData"].items():
            assert PLACEHOLDER.search(value), f"{name}.{key} holds no <placeholder>"


@pytest.mark.parametrize("environment", ["local", "prod"])
def test_every_secret_the_chart_references_is_documented(environment: str) -> None:
    templates = _templates()
    for file in ("values.yaml", f"values-{environment}.yaml"):
        values = yaml.safe_load((REPO_ROOT / "chart" / file).read_text())
        for name, key in _secret_refs(values):
            assert name in templates, f"{file} references Secret {name}, absent from k8s/secrets/"
            if key:
                assert key in templates[name]["stringData"], f"{file}: {name} has no key {key}"
    if environment == "local":
        extra = yaml.safe_load((REPO_ROOT / "chart" / "values-local.yaml").read_text())["airflow"][
            "extraEnvFrom"
        ]
        for name in re.findall(r"name: (\S+)", extra):
            assert name in templates


def test_every_secret_the_manifests_reference_is_documented() -> None:
    templates = _templates()
    for path in sorted((REPO_ROOT / "k8s" / "base").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            for name, key in _secret_refs(doc or {}):
                assert name in templates, f"{path.name}: {name}"
                assert key in templates[name]["stringData"], f"{path.name}: {name}.{key}"


def test_kind_script_creates_every_kind_secret() -> None:
    script = (REPO_ROOT / "scripts" / "kind.sh").read_text()
    for name in _templates():
        if name in {"airbricks-pgbouncer-config", "airbricks-pgbouncer-stats", "airbricks-oidc"}:
            continue
        assert name in script, f"scripts/kind.sh never creates {name}"
