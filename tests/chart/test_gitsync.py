"""DAGs arrive by GitSync from the user's repository; git credentials only ever by Secret reference."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from chart_support import CHART_DIR, layered_values

CREDENTIAL_KEYS = {"sshKey", "password", "username", "token"}


@pytest.mark.parametrize("layering", ["base+local", "base+prod"])
def test_gitsync_enabled_on_the_dags_subpath(
    layering: str, effective_airflow_values: Callable[[str], dict[str, Any]]
) -> None:
    git_sync = effective_airflow_values(layering)["dags"]["gitSync"]
    assert git_sync["enabled"] is True
    assert git_sync["subPath"] == "dags"
    assert git_sync["repo"].endswith(".git")
    assert git_sync["branch"] == git_sync["ref"]
    assert git_sync["period"].endswith("s")
    assert git_sync["resources"]["limits"]
    assert git_sync["resources"]["requests"]
    assert effective_airflow_values(layering)["dags"]["persistence"]["enabled"] is False


def test_prod_uses_a_deploy_key_secret_and_pinned_host_keys() -> None:
    git_sync = layered_values("base+prod")["airflow"]["dags"]["gitSync"]
    assert git_sync["repo"].startswith("git@")
    assert git_sync["sshKeySecret"] == "airbricks-git-ssh"
    assert git_sync["knownHosts"].startswith("github.com ssh-ed25519 ")


def test_local_credentials_are_added_only_when_given() -> None:
    """kind: scripts/kind.sh adds credentialsSecret/sshKeySecret with --set when GIT_TOKEN or a key exists."""
    git_sync = layered_values("base+local")["airflow"]["dags"]["gitSync"]
    assert "credentialsSecret" not in git_sync
    assert "sshKeySecret" not in git_sync
    script = (CHART_DIR.parent / "scripts" / "kind.sh").read_text()
    assert "airflow.dags.gitSync.credentialsSecret=" in script
    assert "airflow.dags.gitSync.sshKeySecret=" in script


@pytest.mark.parametrize("name", ["values.yaml", "values-local.yaml", "values-prod.yaml"])
def test_no_git_credentials_in_values(name: str) -> None:
    layering = {"values.yaml": "base", "values-local.yaml": "base+local", "values-prod.yaml": "base+prod"}
    git_sync = layered_values(layering[name])["airflow"]["dags"]["gitSync"]
    assert not CREDENTIAL_KEYS & set(git_sync)
    # https://user:token@host/... would put the token in the pod spec.
    assert not re.match(r"https?://[^/]*@", git_sync.get("repo", ""))
