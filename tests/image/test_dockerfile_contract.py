"""cicd/Dockerfile: what the image must be, checked statically (no Docker engine here).

`docker build` itself is exercised by `make image` / `make kind-up` on a machine with Docker
(docs/KUBERNETES.md, "Check it for real").
"""

from __future__ import annotations

import pathlib
import re

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "cicd" / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    parsed = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            parsed.append((keyword.upper(), rest.strip()))
    return parsed


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(index for index, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def test_every_stage_is_the_pinned_official_image() -> None:
    froms = [args for keyword, args in _instructions() if keyword == "FROM"]
    assert len(froms) == 2, "a wheel-building stage and the runtime stage"
    for args in froms:
        assert args.split()[0] in {
            "apache/airflow:3.3.2-python3.11",
        } or args.startswith("apache/airflow:3.3.2-python3.11@sha256:"), args


def test_runs_as_the_non_root_airflow_user() -> None:
    users = [args for keyword, args in _final_stage() if keyword == "USER"]
    assert users, "the runtime stage must set USER"
    assert users[-1] in {"50000", "50000:0"}
    assert all(not user.startswith(("root", "0")) for user in users)


def test_airflow_held_and_lock_used_as_constraints() -> None:
    runs = " ".join(args for keyword, args in _final_stage() if keyword == "RUN")
    assert '"apache-airflow==3.3.2"' in runs
    assert "-r /tmp/airbricks/requirements.txt" in runs
    assert "-c /tmp/airbricks/requirements.lock" in runs
    assert "-e " not in runs, "airbricks is installed non-editable"


def test_every_pip_install_leaves_no_cache() -> None:
    for keyword, args in _instructions():
        for command in re.findall(r"pip (?:install|wheel)[^&;]*", args) if keyword == "RUN" else []:
            assert "--no-cache-dir" in command, command


def test_airbricks_package_installed_without_dev_deps() -> None:
    runs = " ".join(args for keyword, args in _final_stage() if keyword == "RUN")
    assert re.search(r"pip install --no-cache-dir --no-deps \S*airbricks-0\.1\.0-py3-none-any\.whl", runs)
    assert "requirements-dev.txt" not in DOCKERFILE.read_text()
    version = re.search(r'^version = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    assert version
    assert version.group(1) == "0.1.0", "update the wheel name in cicd/Dockerfile with the version"


def test_databricks_bundle_is_where_the_emulator_reads_it() -> None:
    copies = [args for keyword, args in _final_stage() if keyword == "COPY"]
    assert any(args.endswith("databricks/ /opt/airflow/databricks/") for args in copies), copies
    manifest = (REPO_ROOT / "k8s" / "base" / "databricks-emulator.yaml").read_text()
    assert "--bundle" in manifest
    assert "/opt/airflow/databricks" in manifest


@pytest.mark.parametrize("label", ["org.opencontainers.image.source", "org.opencontainers.image.revision"])
def test_oci_labels_from_build_args(label: str) -> None:
    stage = _final_stage()
    labels = " ".join(args for keyword, args in stage if keyword == "LABEL")
    match = re.search(rf'{re.escape(label)}="\$\{{(\w+)\}}"', labels)
    assert match, f"{label} must come from a build arg"
    assert f"ARG {match.group(1)}" in "\n".join(f"{keyword} {args}" for keyword, args in stage)


def test_lock_is_usable_as_pip_constraints() -> None:
    """pip refuses constraints with extras or editable/URL entries; every runtime pin must match the lock."""
    lock: dict[str, str] = {}
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if not requirement:
            continue
        assert "[" not in requirement.split(";")[0], f"extras in a constraint: {requirement}"
        assert not requirement.startswith(("-e", "--", "git+", "file:")), requirement
        name, _, version = requirement.split(";")[0].partition("==")
        lock[name.strip().lower()] = version.strip()
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if requirement:
            name, _, version = requirement.partition("==")
            assert lock.get(name.lower()) == version, f"{requirement} differs from requirements.lock"
    assert lock["apache-airflow"] == "3.3.2"
