"""Security gates: secrets in the tree (detect-secrets), Python code (bandit), Kubernetes policies (checkov),
the production secrets backend, and Airflow's masking of connection secrets in real task logs.

docs/SECURITY.md explains each gate, the skip lists and how to handle a finding.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import sys
import textwrap
from typing import Any

import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
BASELINE = REPO_ROOT / ".secrets.baseline"
VENV_BIN = pathlib.Path(sys.executable).parent
SCANNER_VENV = REPO_ROOT / ".venv-scanners"
CHECKOV_CONFIG = REPO_ROOT / ".checkov.yaml"
CHECKOV_CHART_CONFIG = REPO_ROOT / ".checkov-chart.yaml"
CHART_DIR = REPO_ROOT / "chart"
RELEASE_NAMESPACE = "airbricks"
# Policies the brief of this platform names; each must be evaluated (and pass) on every workload.
REQUIRED_POLICIES = {
    "CKV_K8S_16": "not privileged",
    "CKV_K8S_20": "no privilege escalation",
    "CKV_K8S_23": "non-root",
    "CKV_K8S_22": "read-only root filesystem",
    "CKV_K8S_10": "CPU requests",
    "CKV_K8S_11": "CPU limits",
    "CKV_K8S_12": "memory requests",
    "CKV_K8S_13": "memory limits",
    "CKV_K8S_38": "service-account token only where needed",
}


# Real findings reported to their owners and not fixed yet. They are NOT silently accepted: the gates fail
# on anything else, fail when an entry here no longer occurs (fixed: delete it), and
# test_no_open_security_findings shows this list as XFAIL on every run. docs/SECURITY.md lists them too.
KNOWN_OPEN: dict[str, dict[tuple[str, str], str]] = {
    "bandit": {},
    "checkov-k8s": {},
    "checkov-chart": {},
}


def _split_known(gate: str, found: dict[tuple[str, str], str]) -> tuple[list[str], list[str]]:
    """(findings not in KNOWN_OPEN[gate], KNOWN_OPEN[gate] entries that no longer occur)."""
    known = KNOWN_OPEN[gate]
    new = [text for key, text in found.items() if key not in known]
    fixed = [f"{key}: {why}" for key, why in known.items() if key not in found]
    return new, fixed


def _assert_gate(gate: str, found: dict[tuple[str, str], str], advice: str) -> None:
    new, fixed = _split_known(gate, found)
    assert not new, f"{advice}:\n" + "\n".join(new)
    assert not fixed, (
        f"{gate}: these known open findings are fixed - delete them from KNOWN_OPEN in this file (and from "
        "docs/SECURITY.md):\n" + "\n".join(fixed)
    )


@pytest.mark.xfail(
    any(KNOWN_OPEN.values()),
    strict=True,
    reason=f"{sum(map(len, KNOWN_OPEN.values()))} open security findings reported to their owners "
    "(KNOWN_OPEN in tests/lint/test_security_gates.py, docs/SECURITY.md)",
)
def test_no_open_security_findings() -> None:
    listed = [f"{gate}: {key} {why}" for gate, entries in KNOWN_OPEN.items() for key, why in entries.items()]
    assert not listed, "\n".join(listed)


def _repo_files() -> list[str]:
    """Tracked files plus untracked files that are not ignored: exactly what could be committed."""
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.fail(
            f"{REPO_ROOT} is not a git checkout (or git is missing): the secret scan needs git ls-files"
        )
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (REPO_ROOT / name).is_file()})


# ---- detect-secrets -----------------------------------------------------------------------------------
def test_secrets_baseline_entries_are_all_audited_false_positives() -> None:
    baseline = json.loads(BASELINE.read_text())
    unaudited = [
        f"{path}:{entry['line_number']} ({entry['type']}) is_secret={entry.get('is_secret')}"
        for path, entries in baseline["results"].items()
        for entry in entries
        if entry.get("is_secret") is not False
    ]
    assert not unaudited, (
        "every .secrets.baseline entry must be audited as a false positive (`detect-secrets audit "
        ".secrets.baseline`); a real secret must be removed from the tree and rotated:\n"
        + "\n".join(unaudited)
    )


def _detect_secrets_hook(files: list[str], tmp_path: pathlib.Path) -> subprocess.CompletedProcess[str]:
    # The hook rewrites its baseline when line numbers moved: give it a copy, never the repo's file.
    baseline = tmp_path / "secrets.baseline"
    shutil.copy(BASELINE, baseline)
    return subprocess.run(
        [str(VENV_BIN / "detect-secrets-hook"), "--baseline", str(baseline), *files],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )


def test_no_unaudited_secret_in_the_tree(tmp_path: pathlib.Path) -> None:
    files = [name for name in _repo_files() if name != BASELINE.name]  # hashes of audited entries only
    assert len(files) > 50, files
    result = _detect_secrets_hook(files, tmp_path)
    # Exit 3 = only the line numbers of known (audited) entries moved; the hook rewrote its copy.
    advice = (
        "detect-secrets found potential secrets that are not in .secrets.baseline. Remove real ones (and "
        "rotate them); for a false positive add `# pragma: allowlist secret` on the line, or run "
        "`detect-secrets scan --baseline .secrets.baseline` and audit it:\n" + result.stdout + result.stderr
    )
    assert result.returncode in (0, 3), advice
    assert "Potential secrets" not in result.stdout, advice


def test_detect_secrets_gate_catches_a_token(tmp_path: pathlib.Path) -> None:
    """Positive control: a GitHub-token-shaped string (generated, never a literal) fails the gate."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    token = "ghp_" + "".join(secrets.choice(alphabet) for _ in range(36))
    leaked = tmp_path / "leak.py"
    leaked.write_text(f'GITHUB_TOKEN = "{token}"\n')
    result = _detect_secrets_hook([str(leaked)], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "GitHub Token" in result.stdout


# ---- bandit --------------------------------------------------------------------------------------------
def test_bandit_finds_no_medium_or_high_issue() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bandit", "-r", "airbricks", "dags", "-q", "-f", "json"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    report = json.loads(result.stdout)
    assert not report["errors"], report["errors"]
    findings = {
        (r["filename"], r["test_id"]): (
            f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_severity']}: {r['issue_text']}"
        )
        for r in report["results"]
        if r["issue_severity"] in ("MEDIUM", "HIGH")
    }
    _assert_gate(
        "bandit",
        findings,
        "bandit medium/high findings in airbricks/ or dags/: fix them, or justify a false positive inline "
        "with `# nosec BXXX: <reason>`",
    )


def test_every_nosec_names_the_check_it_silences() -> None:
    """A bare `# nosec` silences every check on the line, including ones added later."""
    bare = [
        f"{path.relative_to(REPO_ROOT)}:{number}"
        for folder in ("airbricks", "dags")
        for path in sorted((REPO_ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.search(r"#\s*nosec(?!\s+B\d{3})", line)
    ]
    assert not bare, "use `# nosec BXXX: reason`, not a bare `# nosec`: " + ", ".join(bare)


# ---- checkov (own tool venv) ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkov() -> pathlib.Path:
    """checkov from .venv-scanners/, created or refreshed by scripts/install-scanners.sh (idempotent)."""
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "install-scanners.sh")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**_env(), "VENV_DIR": str(VENV_BIN.parent)},
    )
    assert result.returncode == 0, "scripts/install-scanners.sh failed:\n" + result.stdout + result.stderr
    return SCANNER_VENV / "bin" / "checkov"


def _env() -> dict[str, str]:
    return dict(os.environ)


def _run_checkov(checkov: pathlib.Path, config: pathlib.Path, *target: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(checkov), "--config-file", str(config), "-o", "json", *target],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stdout[-2000:] + result.stderr[-2000:]
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    kubernetes = [r for r in reports if r.get("check_type") == "kubernetes"]
    assert len(kubernetes) == 1, result.stdout[-2000:]
    return kubernetes[0]


def _failed(report: dict[str, Any]) -> dict[tuple[str, str], str]:
    """{(check id, resource): description}; a Pod resource's label suffix is dropped from the key."""
    failed = {}
    for c in report["results"]["failed_checks"]:
        resource = ".".join(c["resource"].split(".")[:3])  # Kind.namespace.name
        failed[(c["check_id"], resource)] = f"{c['check_id']} {c['check_name']}: {c['resource']}"
    return failed


def _assert_required_policies_pass(report: dict[str, Any]) -> None:
    evaluated = {c["check_id"] for c in report["results"]["passed_checks"]}
    missing = {cid: what for cid, what in REQUIRED_POLICIES.items() if cid not in evaluated}
    assert not missing, f"required policies never evaluated as passing: {missing}"


def test_checkov_k8s_manifests(checkov: pathlib.Path) -> None:
    report = _run_checkov(checkov, CHECKOV_CONFIG, "-d", "k8s")
    assert report["summary"]["parsing_errors"] == 0, report["summary"]
    assert report["summary"]["resource_count"] > 0
    _assert_gate(
        "checkov-k8s",
        _failed(report),
        "checkov: failed checks in k8s/ (fix the manifest; .checkov.yaml lists the only accepted skips)",
    )
    _assert_required_policies_pass(report)


# Per-resource exceptions in the rendered chart (checkov's config can only skip a check everywhere): pods
# that must call the Kubernetes API keep their service-account token. Listed in docs/SECURITY.md too.
# The official chart 1.22.0 sets automountServiceAccountToken on the ServiceAccount, not on the pod spec, and
# checkov's CKV_K8S_38 reads only the pod spec. chart/values.yaml turns it off for these components;
# tests/chart/test_security.py asserts it.
TOKEN_OFF_ON_SERVICE_ACCOUNT = "no token mounted: its ServiceAccount has automountServiceAccountToken: false"
CHART_RESOURCE_SKIPS = {
    ("CKV_K8S_38", "Deployment.airbricks.airbricks-scheduler"): "KubernetesExecutor creates and watches pods",
    ("CKV_K8S_38", "Deployment.airbricks.airbricks-triggerer"): "deferrable KubernetesPodOperator polls pods",
    ("CKV_K8S_38", "CronJob.airbricks.airbricks-cleanup"): "deletes finished worker pods",
    ("CKV_K8S_38", "Deployment.airbricks.airbricks-api-server"): (
        "reads running task pods' logs through the Kubernetes API (apiServer.allowPodLogReading)"
    ),
    ("CKV_K8S_38", "Deployment.airbricks.airbricks-dag-processor"): TOKEN_OFF_ON_SERVICE_ACCOUNT,
    ("CKV_K8S_38", "Job.airbricks.airbricks-run-airflow-migrations"): TOKEN_OFF_ON_SERVICE_ACCOUNT,
    ("CKV_K8S_38", "Deployment.airbricks.airbricks-pgbouncer"): TOKEN_OFF_ON_SERVICE_ACCOUNT,
    ("CKV_K8S_38", "Deployment.airbricks.airbricks-statsd"): TOKEN_OFF_ON_SERVICE_ACCOUNT,
}


def _chart_archive() -> pathlib.Path | None:
    override = os.environ.get("AIRBRICKS_AIRFLOW_CHART_TGZ")
    if override:
        return pathlib.Path(override)
    vendored = CHART_DIR / "charts" / "airflow-1.22.0.tgz"
    return vendored if vendored.is_file() else None


def test_checkov_rendered_prod_chart(checkov: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """The chart as production installs it (values.yaml + values-prod.yaml, release namespace)."""
    archive = _chart_archive()
    if archive is None:
        pytest.skip(
            "chart/charts/airflow-1.22.0.tgz is missing: run `helm dependency build chart/` (make "
            "chart-validate) or set AIRBRICKS_AIRFLOW_CHART_TGZ to scan the rendered production chart"
        )
    sys.path.insert(0, str(REPO_ROOT / "tests" / "chart"))
    try:
        import chart_support
    finally:
        sys.path.remove(str(REPO_ROOT / "tests" / "chart"))
    image = {"airflow": {"images": {"airflow": {"tag": chart_support.DEPLOY_TIME_TAG}}}}
    objects = chart_support.render_chart(tmp_path, archive, chart_support.layered_values("base+prod", image))
    documents = []
    for _, obj in objects:
        # `helm install -n <ns>` puts namespaced objects without a namespace into the release namespace.
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding", "Namespace", "PersistentVolume"}:
            obj.setdefault("metadata", {}).setdefault("namespace", RELEASE_NAMESPACE)
        documents.append(obj)
    rendered = tmp_path / "rendered-prod.yaml"
    rendered.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    report = _run_checkov(checkov, CHECKOV_CHART_CONFIG, "-f", str(rendered))
    report["results"]["failed_checks"] = [
        c
        for c in report["results"]["failed_checks"]
        if (c["check_id"], c["resource"]) not in CHART_RESOURCE_SKIPS
    ]
    _assert_gate(
        "checkov-chart",
        _failed(report),
        "checkov: failed checks in the rendered production chart (fix the values; .checkov-chart.yaml lists "
        "the only accepted skips)",
    )


def test_no_host_path_volumes_in_k8s_manifests() -> None:
    """checkov has no generic hostPath policy: check it directly."""
    offenders = []
    for path in sorted((REPO_ROOT / "k8s").rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if (
                doc
                and "hostPath" in json.dumps(doc.get("spec", {}))
                and doc.get("kind") != "PersistentVolume"
            ):
                offenders.append(
                    f"{path.relative_to(REPO_ROOT)}: {doc.get('kind')} {doc['metadata']['name']}"
                )
    assert not offenders, offenders


# ---- production secrets: a backend, never values --------------------------------------------------------
def _layered_prod_values() -> dict[str, Any]:
    def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
        merged = dict(base)
        for key, value in override.items():
            merged[key] = (
                merge(merged[key], value)
                if isinstance(value, dict) and isinstance(merged.get(key), dict)
                else value
            )
        return merged

    values: dict[str, Any] = {}
    for name in ("values.yaml", "values-prod.yaml"):
        values = merge(values, yaml.safe_load((CHART_DIR / name).read_text()) or {})
    return values["airflow"]


def test_prod_uses_aws_secrets_manager_for_connections_and_variables() -> None:
    secrets_config = _layered_prod_values()["config"]["secrets"]
    assert (
        secrets_config["backend"]
        == "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
    )
    kwargs = json.loads(secrets_config["backend_kwargs"])
    assert kwargs["connections_prefix"], kwargs
    assert kwargs["variables_prefix"], kwargs
    assert not {"aws_access_key_id", "aws_secret_access_key"} & set(kwargs), "backend must use IRSA, not keys"


SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|FERNET|CREDENTIAL)", re.I)
CONN_SECRET_FIELDS = ("password", "login", "token", "secret", "api_key", "private_key")


def _env_entries(values: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(values, dict):
        for key, value in values.items():
            if key in ("env", "extraEnv") and isinstance(value, list):
                found += [e for e in value if isinstance(e, dict)]
            found += _env_entries(value)
    elif isinstance(values, list):
        for item in values:
            found += _env_entries(item)
    return found


@pytest.mark.parametrize("values_file", sorted(p.name for p in CHART_DIR.glob("values*.yaml")))
def test_no_credential_literal_in_values_env(values_file: str) -> None:
    """Env entries with a secret-looking name come from secretKeyRef; AIRFLOW_CONN_* literals hold none."""
    values = yaml.safe_load((CHART_DIR / values_file).read_text()) or {}
    problems = []
    for entry in _env_entries(values):
        name, value = entry.get("name", ""), entry.get("value")
        if value is None:
            continue
        if SECRET_NAME.search(name):
            problems.append(
                f"{name}: literal value for a secret-looking variable (use valueFrom.secretKeyRef)"
            )
        if name.startswith("AIRFLOW_CONN_"):
            conn = json.loads(value) if str(value).lstrip().startswith("{") else {}
            leaked = [f for f in CONN_SECRET_FIELDS if conn.get(f) or (conn.get("extra") or {}).get(f)]
            if leaked or "@" in str(value):
                problems.append(f"{name}: connection literal carries credentials ({leaked or 'userinfo'})")
    assert not problems, f"chart/{values_file}: " + "; ".join(problems)


def test_image_bakes_in_no_credentials() -> None:
    dockerfile = REPO_ROOT / "cicd" / "Dockerfile"
    if not dockerfile.is_file():
        pytest.fail("cicd/Dockerfile is missing")
    offenders = [
        line.strip()
        for line in dockerfile.read_text().splitlines()
        if re.match(r"\s*(ENV|ARG)\s", line) and SECRET_NAME.search(line.split("#")[0])
    ]
    assert not offenders, f"cicd/Dockerfile sets secret-looking ENV/ARG (use a secrets backend): {offenders}"


# ---- Airflow masks connection secrets in real task logs -----------------------------------------------
PROBE_DAG = textwrap.dedent(
    '''
    """Logs its connection's password and token on purpose: the task log must show *** instead."""
    import logging

    from airflow.sdk import DAG, BaseHook, task

    with DAG("airbricks_secret_masking_probe", schedule=None, catchup=False):

        @task
        def log_connection_secrets() -> None:
            conn = BaseHook.get_connection("masking_probe")
            logging.getLogger(__name__).info("probe password=%s", conn.password)
            logging.getLogger(__name__).info("probe token=%s", conn.extra_dejson["token"])
            print(f"probe stdout password={conn.password}")

        log_connection_secrets()
    '''
)

# Runs one task through Airflow's real task supervisor: the task runs in a forked process, and the
# supervisor writes the task log file (what a KubernetesExecutor worker pod does). The Execution API is
# served in-process on the real metadata DB. `airflow dags test` / dag.test() would prove nothing: they run
# the task in the CLI process without the supervisor's masking and print secrets in clear.
SUPERVISE_ONE_TASK = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.executors import workloads
    from airflow.executors.workloads import BundleInfo
    from airflow.models.dagbag import DBDagBag
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor, supervise_task
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    dag_id, task_id, log_path = sys.argv[1:4]
    manager = DagBundlesManager()
    with create_session() as session:
        manager.sync_bundles_to_db(session=session)
    bundle = next(b for b in manager.get_all_dag_bundles() if b.name == "dags-folder")
    bundle.initialize()
    bag = BundleDagBag(dag_folder=bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
    assert not bag.import_errors, bag.import_errors
    sync_bag_to_db(bag, bundle.name, bundle.version)
    with create_session() as session:
        dag = DBDagBag().get_latest_version_of_dag(dag_id, session=session)
        now = timezone.utcnow()
        run = dag.create_dagrun(
            run_id=DagRun.generate_run_id(run_type=DagRunType.MANUAL, logical_date=None, run_after=now),
            logical_date=None, data_interval=None, run_after=now, run_type=DagRunType.MANUAL,
            triggered_by=DagRunTriggeredByType.TEST, state=DagRunState.RUNNING, session=session,
        )
        ti = run.get_task_instance(task_id, session=session)
        ti.state = TaskInstanceState.QUEUED
        ti.try_number = 1
        session.flush()
        workload = workloads.ExecuteTask.make(
            ti, dag_rel_path=Path(bag.dags[dag_id].fileloc).name, bundle_info=BundleInfo(name=bundle.name)
        )
    sys.exit(
        supervise_task(
            ti=workload.ti, bundle_info=workload.bundle_info, dag_rel_path=workload.dag_rel_path, token="",
            client=InProcessTestSupervisor._api_client(bag.dags[dag_id]), log_path=log_path,
        )
    )
    """
)


@pytest.mark.airflow
@pytest.mark.slow
def test_airflow_masks_connection_secrets_in_task_logs(tmp_path: pathlib.Path) -> None:
    home, dags = tmp_path / "airflow-home", tmp_path / "dags"
    home.mkdir()
    dags.mkdir()
    (dags / "masking_probe.py").write_text(PROBE_DAG)
    (tmp_path / "supervise_one_task.py").write_text(SUPERVISE_ONE_TASK)
    password, token = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    env = {
        **_env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW_CONN_MASKING_PROBE": json.dumps(
            {"conn_type": "http", "host": "example.invalid", "password": password, "extra": {"token": token}}
        ),
    }
    migrate = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    log_file = tmp_path / "task.log"
    result = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "supervise_one_task.py"),
            "airbricks_secret_masking_probe",
            "log_connection_secrets",
            str(log_file),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    task_log = log_file.read_text()
    events = [json.loads(line)["event"] for line in task_log.splitlines() if line.startswith("{")]
    assert "probe password=***" in events, events
    assert "probe token=***" in events, events
    assert "probe stdout password=***" in events, events
    everything = task_log + result.stdout + result.stderr
    assert password not in everything
    assert token not in everything
