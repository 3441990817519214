"""A task attempt's spec for ``taskhost.py``: references resolved, parameters, storage mapping, source."""

from __future__ import annotations

import json
import pathlib
import re
import time
from typing import Any

from airbricks.emulator.runs import Run, TaskRun
from airbricks.emulator.storage import Mirror, StorageMapper

_REF = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


def build_task_spec(
    run: Run,
    task: TaskRun,
    task_dir: pathlib.Path,
    *,
    storage: StorageMapper,
    mirrors: dict[str, Mirror],
    workspace_root: pathlib.Path,
    bundle_root: pathlib.Path | None,
) -> dict[str, Any]:
    """The JSON ``taskhost.py`` runs: source path, widgets or argv with every ``{{reference}}`` resolved and
    every ``s3://`` value mapped to its local mirror (registered in ``mirrors``)."""
    by_key = {t.task_key: t for t in run.latest}
    context = {
        "job.id": str(run.job_id or ""),
        "job.name": run.run_name,
        "job.run_id": str(run.run_id),
        "run.id": str(run.run_id),
        "job.repair_count": str(len(run.repair_history)),
        "job.start_time.iso_date": time.strftime("%Y-%m-%d", time.gmtime(run.start_time / 1000)),
        "job.start_time.iso_datetime": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(run.start_time / 1000)),
        "job.start_time.timestamp_ms": str(run.start_time),
        "job.trigger.type": "one_time",
        "task.name": task.task_key,
        "task.run_id": str(task.run_id),
        "task.execution_count": str(task.attempt_number + 1),
        "workspace.id": "1234567890",
        "run_id": str(task.run_id),
        "parent_run_id": str(run.run_id),
        "task_key": task.task_key,
        **{f"job.parameters.{k}": v for k, v in run.job_parameters.items()},
    }
    for other in run.latest:
        for key, value in other.task_values.items():
            context[f"tasks.{other.task_key}.values.{key}"] = (
                value if isinstance(value, str) else json.dumps(value)
            )
        if other.result_state:
            context[f"tasks.{other.task_key}.run_id"] = str(other.run_id)
            context[f"tasks.{other.task_key}.result_state"] = other.result_state.lower()

    def resolve(value: Any) -> Any:
        if not isinstance(value, str):
            value = json.dumps(value) if isinstance(value, (dict, list)) else str(value)

        def sub(match: re.Match[str]) -> str:
            ref = match.group(1)
            if ref not in context:
                raise ValueError(f"Task {task.task_key!r}: unknown dynamic value reference {{{{{ref}}}}}")
            return str(context[ref])

        resolved = _REF.sub(sub, value)
        return storage.map_value(resolved, mirrors, f"run-{run.run_id}")

    upstream_values = {k: t.task_values for k, t in by_key.items() if t.result_state is not None}
    spec: dict[str, Any] = {
        "task_key": task.task_key,
        "result_file": str(task_dir / "result.json"),
        "workspace_root": str(workspace_root),
        "upstream_task_values": upstream_values,
    }
    if "notebook_task" in task.spec:
        nb = task.spec["notebook_task"]
        widgets = {k: resolve(v) for k, v in (nb.get("base_parameters") or {}).items()}
        widgets.update({k: resolve(v) for k, v in (run.overriding.get("notebook_params") or {}).items()})
        # Job parameters are pushed down to every notebook task and win over task parameters.
        widgets.update({k: resolve(v) for k, v in run.job_parameters.items()})
        spec.update(kind="notebook", path=nb["notebook_path"], widgets=widgets)
    else:
        py = task.spec["spark_python_task"]
        params = run.overriding.get("python_params") or py.get("parameters") or []
        spec.update(kind="python", path=py["python_file"], argv=[resolve(v) for v in params])
    spec["path"] = local_source(spec["path"], bundle_root)
    if not pathlib.Path(spec["path"]).is_file():
        raise FileNotFoundError(f"Task {task.task_key!r}: source file {spec['path']} does not exist")
    return spec


def local_source(path: str, bundle_root: pathlib.Path | None) -> str:
    """A workspace path of a deployed bundle file (``/Workspace/.../.bundle/<name>/<target>/files/src/x``)
    maps to ``<bundle>/src/x``; notebooks may omit ``.py``."""
    candidates = [pathlib.Path(path)]
    if bundle_root is not None and "/files/" in path:
        candidates.append(bundle_root / path.split("/files/", 1)[1])
    for candidate in candidates:
        for option in (candidate, candidate.with_name(candidate.name + ".py")):
            if option.is_file():
                return str(option)
    return path
