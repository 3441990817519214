"""Entry point of one task's subprocess: ``python -m airbricks.emulator.taskhost SPEC.json``.

It gives the task code what a Databricks cluster gives it: ``dbutils`` (widgets, notebook.exit,
jobs.taskValues, a local fs), a lazily created ``spark`` session, ``display``, and ``sys.argv`` for
``spark_python_task``; then it writes the outcome to the spec's ``result_file`` as JSON. Only the standard
library is imported up front so a task that never touches ``spark`` starts in well under a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import runpy
import shutil
import sys
import traceback
import types
from typing import Any


class NotebookExit(BaseException):
    """Raised by ``dbutils.notebook.exit`` to end the notebook with a value."""

    def __init__(self, value: str):
        super().__init__(value)
        self.value = value


class InputWidgetNotDefined(Exception):
    """``dbutils.widgets.get`` of a widget that has no value (same name as on Databricks)."""


class _Widgets:
    def __init__(self, values: dict[str, str]):
        self._values = dict(values)
        self._defaults: dict[str, str] = {}

    def get(self, name: str) -> str:
        if name in self._values:
            return self._values[name]
        if name in self._defaults:
            return self._defaults[name]
        raise InputWidgetNotDefined(f"No input widget named {name} is defined")

    def getArgument(self, name: str, default: str | None = None) -> str | None:
        try:
            return self.get(name)
        except InputWidgetNotDefined:
            return default

    def getAll(self) -> dict[str, str]:
        return {**self._defaults, **self._values}

    def text(self, name: str, defaultValue: str = "", label: str | None = None) -> None:
        self._defaults[name] = str(defaultValue)

    def dropdown(self, name: str, defaultValue: str, choices: list[str], label: str | None = None) -> None:
        if str(defaultValue) not in [str(c) for c in choices]:
            raise ValueError(f"Default value {defaultValue!r} of widget {name!r} is not one of {choices}")
        self._defaults[name] = str(defaultValue)

    combobox = dropdown

    def multiselect(self, name: str, defaultValue: str, choices: list[str], label: str | None = None) -> None:
        self._defaults[name] = str(defaultValue)

    def remove(self, name: str) -> None:
        self._defaults.pop(name, None)

    def removeAll(self) -> None:
        self._defaults.clear()


class _Notebook:
    def exit(self, value: Any) -> None:
        raise NotebookExit("" if value is None else str(value))

    def run(self, *args: Any, **kwargs: Any) -> str:
        raise NotImplementedError("dbutils.notebook.run is not supported by the local emulator")


class _TaskValues:
    def __init__(self, upstream: dict[str, dict[str, Any]]):
        self._upstream = upstream
        self.values: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        json.dumps(value)  # Databricks requires JSON-serializable values; fail the same way early
        self.values[key] = value

    def get(self, taskKey: str, key: str, default: Any = None, debugValue: Any = None) -> Any:
        task = self._upstream.get(taskKey)
        if task is None:
            raise ValueError(f"Task {taskKey!r} is not an upstream task of this task (or has not run)")
        if key in task:
            return task[key]
        if default is not None:
            return default
        raise ValueError(f"Task value {key!r} was not set by task {taskKey!r}")


class _Jobs:
    def __init__(self, task_values: _TaskValues):
        self.taskValues = task_values


class UnsupportedFileSystemException(OSError):
    """An ``s3://`` path reached ``dbutils.fs`` unmapped (Hadoop's name and message for the same thing)."""


class _Fs:
    """``dbutils.fs`` on local storage: ``dbfs:/x`` and ``/Volumes/...`` live under the workspace root."""

    def __init__(self, workspace_root: str):
        self._root = pathlib.Path(workspace_root)

    def _local(self, path: str) -> pathlib.Path:
        scheme = path.split("://", 1)[0] if "://" in path else ""
        if scheme in ("s3", "s3a", "s3n"):
            # Mapped s3:// parameters arrive as local paths; this one was not mapped (no S3 endpoint, or
            # built inside job code), and the local cluster has no S3 filesystem.
            raise UnsupportedFileSystemException(f'No FileSystem for scheme "{scheme}": {path}')
        if path.startswith("dbfs:/"):
            return self._root / "dbfs" / path[len("dbfs:/") :].lstrip("/")
        if path.startswith("/Volumes/"):
            return self._root / path.lstrip("/")
        if path.startswith("file:"):
            return pathlib.Path(path[len("file:") :])
        return pathlib.Path(path)

    def ls(self, path: str) -> list[types.SimpleNamespace]:
        local = self._local(path)
        return [
            types.SimpleNamespace(
                path=str(p) + ("/" if p.is_dir() else ""),
                name=p.name + ("/" if p.is_dir() else ""),
                size=p.stat().st_size if p.is_file() else 0,
            )
            for p in sorted(local.iterdir())
        ]

    def mkdirs(self, path: str) -> bool:
        self._local(path).mkdir(parents=True, exist_ok=True)
        return True

    def put(self, path: str, contents: str, overwrite: bool = False) -> bool:
        local = self._local(path)
        if local.exists() and not overwrite:
            raise FileExistsError(f"{path} already exists")
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_text(contents)
        return True

    def head(self, path: str, maxBytes: int = 65536) -> str:
        with self._local(path).open("rb") as fh:
            return fh.read(maxBytes).decode("utf-8", "replace")

    def rm(self, path: str, recurse: bool = False) -> bool:
        local = self._local(path)
        if local.is_dir():
            if not recurse:
                raise IsADirectoryError(f"{path} is a directory; pass recurse=True")
            shutil.rmtree(local)
        elif local.exists():
            local.unlink()
        return True

    def cp(self, src: str, dst: str, recurse: bool = False) -> bool:
        source, target = self._local(src), self._local(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)
        return True


class DBUtils:
    """The subset of Databricks' ``dbutils`` that job code in this repo may use."""

    def __init__(self, spark: Any = None, *, _state: dict[str, Any] | None = None):
        state = _state if _state is not None else _CURRENT
        self.widgets: _Widgets = state["widgets"]
        self.notebook = _Notebook()
        self.jobs = _Jobs(state["task_values"])
        self.fs = _Fs(state["workspace_root"])


class _LazySpark:
    """Stands in for the notebook global ``spark``; the JVM starts only on first attribute access."""

    _session: Any = None

    def _get(self) -> Any:
        if _LazySpark._session is None:
            from pyspark.sql import SparkSession

            _LazySpark._session = SparkSession.builder.getOrCreate()
        return _LazySpark._session

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


_CURRENT: dict[str, Any] = {}


def _install_pyspark_dbutils() -> None:
    """Make ``from pyspark.dbutils import DBUtils`` work like on a Databricks cluster."""
    module = types.ModuleType("pyspark.dbutils")
    module.DBUtils = DBUtils  # type: ignore[attr-defined]
    sys.modules["pyspark.dbutils"] = module


def _display(obj: Any, *args: Any, **kwargs: Any) -> None:
    show = getattr(obj, "show", None)
    print(show(truncate=False) if callable(show) else obj)


def run(spec: dict[str, Any]) -> dict[str, Any]:
    task_values = _TaskValues(spec.get("upstream_task_values") or {})
    _CURRENT.update(
        widgets=_Widgets(spec.get("widgets") or {}),
        task_values=task_values,
        workspace_root=spec.get("workspace_root", "."),
    )
    _install_pyspark_dbutils()
    dbutils = DBUtils()
    spark = _LazySpark()
    init_globals = {
        "dbutils": dbutils,
        "spark": spark,
        "display": _display,
        "displayHTML": print,
        "__name__": "__main__",
    }
    path = spec["path"]
    result: dict[str, Any] = {"ok": True, "exit_value": None, "error": None, "error_trace": None}
    try:
        if spec["kind"] == "notebook":
            source = pathlib.Path(path).read_text()
            for line in source.splitlines():
                if line.startswith("# MAGIC %") and line.split()[2] in (
                    "%run",
                    "%pip",
                    "%sql",
                    "%sh",
                    "%scala",
                ):
                    print(
                        f"[emulator] not executed (magic commands are not supported): {line}", file=sys.stderr
                    )
            code = compile(source, path, "exec")
            sys.argv = [path]
            exec(code, dict(init_globals, __file__=path))  # noqa: S102  # nosec B102 - running the notebook is the point
        else:
            sys.argv = [path, *[str(a) for a in spec.get("argv") or []]]
            runpy.run_path(path, init_globals=init_globals, run_name="__main__")
    except NotebookExit as done:
        result["exit_value"] = done.value
    except SystemExit as exc:
        if exc.code not in (None, 0):
            result.update(ok=False, error=f"SystemExit: {exc.code}", error_trace=traceback.format_exc())
    except BaseException as exc:
        result.update(ok=False, error=f"{type(exc).__name__}: {exc}", error_trace=traceback.format_exc())
    result["task_values"] = task_values.values
    return result


def main() -> None:
    spec = json.loads(pathlib.Path(sys.argv[1]).read_text())
    source_dir = pathlib.Path(spec["path"]).parent
    # Notebooks on Databricks run with their folder as the working directory; python files run in a
    # scratch directory (here: the task's own directory, the process's cwd). Both import from their folder.
    if spec["kind"] == "notebook":
        os.chdir(source_dir)
    sys.path.insert(0, str(source_dir))
    result = run(spec)
    sys.stdout.flush()
    sys.stderr.flush()
    if result["error_trace"]:
        print(result["error_trace"], file=sys.stderr)
    pathlib.Path(spec["result_file"]).write_text(json.dumps(result, default=str))
    if _LazySpark._session is not None:
        with contextlib.suppress(Exception):  # the JVM goes away with the process anyway
            _LazySpark._session.stop()
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
