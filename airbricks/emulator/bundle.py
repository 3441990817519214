"""Read a Databricks Asset Bundle (``databricks.yml`` + ``include`` globs) into job settings.

Only what the emulator needs is implemented: ``variables`` (defaults, target overrides, ``BUNDLE_VAR_*``
environment variables, explicit overrides), ``targets`` (``default: true`` or ``--target``; their
``variables`` and ``resources`` are merged over the top level), ``${var.x}``, ``${bundle.name}``,
``${bundle.target}`` and ``${workspace.*}`` references, and ``resources.jobs``. Relative
``notebook_path`` / ``python_file`` values are resolved against the YAML file that declares them, the way
the Databricks CLI does, and become absolute local paths. Development-mode name prefixes are not applied:
jobs keep their YAML ``name``, so DAGs look them up by the same name as in a production workspace.
"""

from __future__ import annotations

import copy
import glob
import os
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any

_REF = re.compile(r"\$\{([A-Za-z0-9_.\-]+)\}")
_PATH_KEYS = {"notebook_task": "notebook_path", "spark_python_task": "python_file"}


class BundleError(ValueError):
    """The bundle cannot be loaded; the message names the file and the field."""


@dataclass
class Bundle:
    """A loaded bundle: its root directory, resolved target and job settings keyed by resource key."""

    root: pathlib.Path
    name: str
    target: str | None
    variables: dict[str, Any]
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_bundle(
    root: str | os.PathLike[str],
    target: str | None = None,
    overrides: dict[str, str] | None = None,
) -> Bundle:
    """Load the bundle in ``root`` (the directory holding ``databricks.yml``).

    :param target: target name; defaults to the target marked ``default: true``, if any.
    :param overrides: variable values that win over everything else (like ``--var name=value``).
    """
    import yaml  # only the emulator process needs it

    root_path = pathlib.Path(root).resolve()
    main_file = next(
        (root_path / n for n in ("databricks.yml", "databricks.yaml") if (root_path / n).is_file()), None
    )
    if main_file is None:
        raise BundleError(f"no databricks.yml in bundle directory {root_path}")

    def read(path: pathlib.Path) -> dict[str, Any]:
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise BundleError(f"{path}: invalid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise BundleError(f"{path}: top level must be a mapping")
        return data

    main = read(main_file)
    bundle_name = str((main.get("bundle") or {}).get("name") or root_path.name)
    targets = main.get("targets") or {}
    if target is None:
        target = next((name for name, spec in targets.items() if (spec or {}).get("default")), None)
    elif target not in targets:
        raise BundleError(f"{main_file}: target {target!r} is not defined; known targets: {sorted(targets)}")
    target_spec = (targets.get(target) or {}) if target else {}

    variables = _resolve_variables(main, target_spec, overrides or {}, main_file)
    context = {
        "bundle.name": bundle_name,
        "bundle.target": target or "",
        "workspace.root_path": str(root_path),
        "workspace.file_path": str(root_path),
        "workspace.current_user.userName": "emulator@localhost",
        **{f"var.{k}": v for k, v in variables.items()},
    }

    files: list[tuple[pathlib.Path, dict[str, Any]]] = [(main_file, main)]
    for pattern in main.get("include") or []:
        matches = sorted(glob.glob(str(root_path / pattern), recursive=True))
        for match in matches:
            files.append((pathlib.Path(match).resolve(), read(pathlib.Path(match))))

    jobs: dict[str, dict[str, Any]] = {}
    for path, data in files:
        file_jobs = ((data.get("resources") or {}).get("jobs")) or {}
        _merge_jobs(jobs, file_jobs, path, context)
    target_jobs = ((target_spec.get("resources") or {}).get("jobs")) or {}
    _merge_jobs(jobs, target_jobs, main_file, context)

    for key, settings in jobs.items():
        settings.setdefault("name", key)
        for task in settings.get("tasks") or []:
            if "task_key" not in task:
                raise BundleError(f"job {key!r}: every task needs a task_key")
    return Bundle(root=root_path, name=bundle_name, target=target, variables=variables, jobs=jobs)


def _resolve_variables(
    main: dict[str, Any], target_spec: dict[str, Any], overrides: dict[str, str], main_file: pathlib.Path
) -> dict[str, Any]:
    declared = main.get("variables") or {}
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        spec = spec if isinstance(spec, dict) else {"default": spec}
        if "default" in spec:
            values[name] = spec["default"]
    for name, value in (target_spec.get("variables") or {}).items():
        values[name] = value.get("default") if isinstance(value, dict) and "default" in value else value
    for name in declared:
        env_value = os.environ.get(f"BUNDLE_VAR_{name}")
        if env_value is not None:
            values[name] = env_value
    for name, value in overrides.items():
        if name not in declared:
            raise BundleError(f"{main_file}: variable {name!r} is not declared under 'variables'")
        values[name] = value
    missing = [name for name in declared if name not in values]
    if missing:
        raise BundleError(f"{main_file}: no value for variable(s) {missing}: give a default or an override")
    # Variables may reference other variables (and bundle.*): resolve a few rounds.
    context = {f"var.{k}": v for k, v in values.items()}
    for _ in range(5):
        values = {k: _interpolate(v, context, main_file) for k, v in values.items()}
        context = {f"var.{k}": v for k, v in values.items()}
    return values


def _interpolate(value: Any, context: dict[str, Any], where: pathlib.Path) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, context, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, context, where) for v in value]
    if not isinstance(value, str):
        return value
    whole = _REF.fullmatch(value)
    if whole and whole.group(1) in context:
        return context[whole.group(1)]  # keeps complex variables (dicts/lists) intact

    def replace(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref in context:
            return str(context[ref])
        if ref.startswith("var."):
            raise BundleError(f"{where}: reference ${{{ref}}} names an undeclared variable")
        return match.group(0)  # e.g. ${resources.jobs.x.id}: unknown here, left as written

    return _REF.sub(replace, value)


def _merge_jobs(
    jobs: dict[str, dict[str, Any]], new: dict[str, Any], path: pathlib.Path, context: dict[str, Any]
) -> None:
    for key, settings in new.items():
        if not isinstance(settings, dict):
            raise BundleError(f"{path}: resources.jobs.{key} must be a mapping")
        settings = _interpolate(copy.deepcopy(settings), context, path)
        for task in settings.get("tasks") or []:
            for task_type, path_key in _PATH_KEYS.items():
                spec = task.get(task_type)
                if spec and spec.get(path_key):
                    spec[path_key] = _local_path(spec[path_key], path.parent)
        if key in jobs:
            jobs[key] = _deep_merge(jobs[key], settings)
        else:
            jobs[key] = settings


def _local_path(value: str, base: pathlib.Path) -> str:
    """A task's source path as an absolute local path; notebooks may omit their ``.py`` extension."""
    candidate = pathlib.Path(value)
    if not candidate.is_absolute():
        candidate = (base / candidate).resolve()
    if not candidate.exists() and candidate.with_name(candidate.name + ".py").exists():
        candidate = candidate.with_name(candidate.name + ".py")
    return str(candidate)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Target overrides: mappings merge key by key; ``tasks``/``job_clusters`` merge by their key."""
    out = dict(base)
    for key, value in over.items():
        if key in ("tasks", "job_clusters") and isinstance(value, list) and isinstance(out.get(key), list):
            id_field = "task_key" if key == "tasks" else "job_cluster_key"
            merged = {item.get(id_field): item for item in out[key]}
            for item in value:
                ident = item.get(id_field)
                merged[ident] = _deep_merge(merged[ident], item) if ident in merged else item
            out[key] = list(merged.values())
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
