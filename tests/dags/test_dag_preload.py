"""The DAG processor preload (airbricks/preload.py, wired by the chart's ``airflowLocalSettings``).

Each check runs in a fresh interpreter: what matters is which modules a process has imported.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


def _local_settings() -> str:
    values = yaml.safe_load((REPO / "chart" / "values.yaml").read_text())
    return values["airflow"]["airflowLocalSettings"]


def _run(code: str, *args: str) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr[-4000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


def _settings_file(tmp_path: pathlib.Path) -> str:
    path = tmp_path / "airflow_local_settings.py"
    path.write_text(_local_settings())
    return str(path)


def test_local_settings_preload_only_in_the_dag_processor(tmp_path):
    code = """
    import json, runpy, sys
    command, settings = sys.argv[1], sys.argv[2]
    sys.argv = ["airflow", command]
    namespace = runpy.run_path(settings, run_name="airflow_local_settings")
    airbricks = sorted(m for m in sys.modules if m.startswith("airbricks."))
    print(json.dumps({"all": namespace.get("__all__"), "airbricks": airbricks}))
    """
    settings = _settings_file(tmp_path)
    processor = _run(code, "dag-processor", settings)
    scheduler = _run(code, "scheduler", settings)

    from airbricks.preload import DAG_PARSE_MODULES

    expected = {m for m in DAG_PARSE_MODULES if m.startswith("airbricks.")}
    assert expected <= set(processor["airbricks"]), expected - set(processor["airbricks"])
    # Every other process only pays for the tiny preload module itself.
    assert scheduler["airbricks"] == ["airbricks.preload"]
    # No policy names leak into airflow.settings (Airflow copies the names listed in __all__).
    assert processor["all"] == []
    assert scheduler["all"] == []


def test_a_parse_after_the_preload_imports_no_airbricks_module(tmp_path):
    """Guards the preload list: a DAG file that starts importing another airbricks module fails here."""
    code = """
    import json, os, pathlib, runpy, sys
    dags, settings = pathlib.Path(sys.argv[1]), sys.argv[2]
    import structlog
    from airflow.dag_processing.processor import DagFileParseRequest, _parse_file
    sys.argv = ["airflow", "dag-processor"]
    runpy.run_path(settings, run_name="airflow_local_settings")
    before = set(sys.modules)
    os.environ["_AIRFLOW_PROCESS_CONTEXT"] = "client"
    parsed = {}
    for path in sorted(dags.glob("*.py")):
        result = _parse_file(
            DagFileParseRequest(file=str(path), bundle_path=dags, bundle_name="t", callback_requests=[]),
            structlog.get_logger(),
        )
        parsed[path.name] = {"dags": len(result.serialized_dags), "errors": result.import_errors}
    new = sorted(m for m in set(sys.modules) - before if m.startswith("airbricks"))
    print(json.dumps({"parsed": parsed, "new_airbricks_modules": new}))
    """
    outcome = _run(code, str(DAGS), _settings_file(tmp_path))
    for name, result in outcome["parsed"].items():
        assert not result["errors"], (name, result)
        assert result["dags"] >= 1, (name, result)
    assert outcome["new_airbricks_modules"] == [], (
        f"parsing dags/ imported {outcome['new_airbricks_modules']} although the DAG processor preloaded "
        "airbricks.preload.DAG_PARSE_MODULES: add them there (or stop importing them at parse time)"
    )


def test_preload_reports_a_module_that_fails_and_goes_on(caplog):
    from airbricks.preload import preload_dag_modules

    failed = preload_dag_modules(("airbricks.no_such_module", "airbricks.notifications"))

    assert failed == ["airbricks.no_such_module"]
    assert "could not import airbricks.no_such_module" in caplog.text
