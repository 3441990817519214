"""Validated model of ``dags/sources.yaml`` (every field is documented in docs/INGESTION.md).

Parsing happens in the DAG processor, so this module does no I/O beyond reading the YAML file (through the
cache of airbricks/ingestion/yaml_cache.py) and imports nothing heavy (pydantic and PyYAML are already loaded
by Airflow itself).
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import re
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from airbricks.ingestion.yaml_cache import read_document

#: Env var holding a JSON object deep-merged on top of EVERY source (after its own settings). Meant for
#: tests and local runs (tiny retry delays), e.g. ``{"http": {"backoff_max_seconds": 0.05}}``.
OVERRIDES_ENV = "AIRBRICKS_INGEST_OVERRIDES"
#: Env var naming the raw-zone bucket; read at parse time because the outlet asset URI contains it.

_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


class SourceConfigError(ValueError):
    """``sources.yaml`` is invalid; the message names the file, the source and the field."""


class _Model(BaseModel):
    # Typos in YAML must fail loudly instead of being ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskPolicy(_Model):
    """Airflow task-level settings applied to every ingest task of a source."""

    retries: int = Field(3, ge=2, description="Airflow task retries (>= 2).")
    retry_delay_seconds: float = Field(60, gt=0)
    max_retry_delay_seconds: float = Field(1800, gt=0)
    execution_timeout_seconds: float = Field(3600, gt=0)
    on_failure_callback: str = Field("airbricks.notifications.on_task_failure", min_length=3)

    @field_validator("on_failure_callback")
    @classmethod
    def _dotted_path(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", value):
            raise ValueError(f"must be a dotted path like 'package.module.function', got {value!r}")
        return value


class HttpPolicy(_Model):
    """HTTP client settings: timeouts, in-task retries and safety limits."""

    connect_timeout_seconds: float = Field(10, gt=0)
    read_timeout_seconds: float = Field(60, gt=0)
    max_attempts: int = Field(5, ge=1, le=50, description="HTTP attempts per page, first try included.")
    backoff_initial_seconds: float = Field(1, ge=0)
    backoff_max_seconds: float = Field(60, ge=0)
    retry_after_max_seconds: float = Field(300, ge=0, description="Cap on a server's Retry-After.")
    retry_statuses: tuple[int, ...] = (429, 500, 502, 503, 504)
    max_pages: int = Field(10_000, ge=1, description="Safety limit on pages per interval.")
    max_page_bytes: int = Field(256 * 1024 * 1024, ge=1, le=5 * 1024**3)

    @field_validator("retry_statuses")
    @classmethod
    def _statuses(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [s for s in value if not 400 <= s <= 599]
        if bad:
            raise ValueError(f"retry statuses must be 4xx/5xx, got {bad}")
        return value


class AuthConfig(_Model):
    """How requests authenticate; the secret itself always lives in the Airflow connection."""

    type: Literal["none", "bearer", "basic", "api_key_header", "api_key_query"] = "none"


class NoPagination(_Model):
    style: Literal["none"]


class PageNumberPagination(_Model):
    style: Literal["page_number"]
    page_param: str = "page"
    start_page: int = Field(1, ge=0)
    total_pages_path: str | None = Field(None, description="JSON path of the total page count, if any.")


class OffsetPagination(_Model):
    style: Literal["offset"]
    offset_param: str = "offset"
    limit_param: str = "limit"
    limit: int = Field(100, ge=1)
    start_offset: int = Field(0, ge=0)
    total_path: str | None = Field(None, description="JSON path of the total record count, if any.")


class CursorPagination(_Model):
    style: Literal["cursor"]
    cursor_param: str
    cursor_path: str
    stop_on_empty: bool = True


class LinkHeaderPagination(_Model):
    style: Literal["link_header"]


Pagination = Annotated[
    NoPagination | PageNumberPagination | OffsetPagination | CursorPagination | LinkHeaderPagination,
    Field(discriminator="style"),
]


def _stringify(value: Any) -> Any:
    # YAML turns 100 into an int and `true` into a bool; query strings are text. Refuse nested values.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


class ProcessingConfig(_Model):
    """The Databricks processing of a dataset: the bundle job (``databricks/resources/*.job.yml``) run on
    each of its raw partitions by the DAG ``databricks_<source>_<dataset>``."""

    job: str = Field(min_length=1, description="Name of the bundle job (run-now by name).")
    enabled: bool = Field(True, description="false: ingested only, no processing DAG.")


class DatasetConfig(_Model):
    """One endpoint of a source, landing in ``raw/<source>/<dataset>/``."""

    path: str = Field(min_length=1, description="URL path appended to the connection's base URL.")
    query_params: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    records_path: str = Field("$", description="JSON path of the record list in a page; '$' = the page.")
    required_fields: tuple[str, ...] = ()
    pagination: Pagination = Field(default_factory=lambda: NoPagination(style="none"))
    processing: ProcessingConfig | None = Field(None, description="Databricks processing; none: ingest only.")

    @field_validator("query_params", "headers", mode="before")
    @classmethod
    def _scalars_to_str(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _stringify(v) for k, v in value.items()}
        return value

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if "://" in value or not value.startswith("/"):
            raise ValueError(
                f"must be a path starting with '/', the host comes from the connection: {value!r}"
            )
        return value


class SourceConfig(_Model):
    """One API; becomes the DAG ``ingest_<name>``."""

    name: str = Field(pattern=_NAME_PATTERN)
    description: str = ""
    owner: str = Field(min_length=1)
    schedule: str = Field(min_length=1, description="Cron expression or preset; intervals are real.")
    start_date: datetime.date
    end_date: datetime.date | None = None
    catchup: bool = False
    max_active_runs: int = Field(1, ge=1)
    tags: tuple[str, ...] = ()
    conn_id: str | None = Field(None, description="Airflow HTTP connection id; default http_<name>.")
    aws_conn_id: str = "aws_default"
    auth: AuthConfig = Field(default_factory=AuthConfig)
    http: HttpPolicy = Field(default_factory=HttpPolicy)
    task: TaskPolicy = Field(default_factory=TaskPolicy)
    datasets: dict[str, DatasetConfig] = Field(min_length=1)

    @field_validator("start_date", "end_date", mode="before")
    @classmethod
    def _calendar_date(cls, value: Any) -> Any:
        # pydantic would read a number (or "1.5") as a Unix timestamp: a typo must not become 1970-01-01.
        if value is None or isinstance(value, datetime.date):
            return value
        if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            return value.strip()
        raise ValueError(f"must be a date YYYY-MM-DD, got {value!r}")

    @field_validator("owner")
    @classmethod
    def _real_owner(cls, value: str) -> str:
        if value.strip().lower() == "airflow":
            raise ValueError("set a real owning team, not the placeholder 'airflow'")
        return value

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, value: dict[str, DatasetConfig]) -> dict[str, DatasetConfig]:
        for name in value:
            if not re.fullmatch(_NAME_PATTERN, name):
                raise ValueError(f"dataset name {name!r} must match {_NAME_PATTERN} (it is used in S3 keys)")
        return value

    @model_validator(mode="after")
    def _dates(self) -> SourceConfig:
        # end_date == start_date is one interval (the one starting that day): a bounded backfill window.
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} must not be before start_date {self.start_date}")
        return self

    @property
    def http_conn_id(self) -> str:
        return self.conn_id or f"http_{self.name}"

    @property
    def dag_id(self) -> str:
        return f"ingest_{self.name}"


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _format_errors(origin: str, source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "<source>"
        lines.append(f"{origin}: source '{source}': field '{field}': {item['msg']}")
    return "\n".join(lines)


def _env_overrides() -> dict[str, Any]:
    raw = os.environ.get(OVERRIDES_ENV, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SourceConfigError(f"{OVERRIDES_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SourceConfigError(f"{OVERRIDES_ENV} must be a JSON object, got {type(value).__name__}")
    return value


def parse_sources(document: Any, origin: str = "sources.yaml", only: str | None = None) -> list[SourceConfig]:
    """Validate a loaded ``sources.yaml`` document; raise :class:`SourceConfigError` naming every problem.

    :param only: validate (and return) just this source: a DAG file builds one source's DAG, and an error in
        another source must not take this one down.
    """
    if not isinstance(document, dict):
        raise SourceConfigError(f"{origin}: top level must be a mapping with a 'sources' key")
    unknown = set(document) - {"defaults", "sources"}
    if unknown:
        raise SourceConfigError(
            f"{origin}: unknown top-level keys {sorted(unknown)}; allowed: defaults, sources"
        )
    defaults = document.get("defaults") or {}
    sources = document.get("sources")
    if not isinstance(defaults, dict):
        raise SourceConfigError(f"{origin}: 'defaults' must be a mapping")
    if not isinstance(sources, dict) or not sources:
        raise SourceConfigError(f"{origin}: 'sources' must be a non-empty mapping of source name to settings")
    overrides = _env_overrides()

    if only is not None:
        if only not in sources:
            raise SourceConfigError(
                f"{origin}: no source '{only}' under 'sources' (declared: {', '.join(map(str, sources))})"
            )
        sources = {only: sources[only]}

    parsed: list[SourceConfig] = []
    problems: list[str] = []
    for name, settings in sources.items():
        if not isinstance(settings, dict):
            problems.append(f"{origin}: source '{name}': settings must be a mapping")
            continue
        tags = {"defaults": defaults.get("tags", []), name: settings.get("tags", [])}
        not_lists = [
            where
            for where, value in tags.items()
            if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value)
        ]
        if not_lists:
            problems += [
                f"{origin}: source '{name}': field 'tags' (in {where}): must be a list of strings, "
                f"got {tags[where]!r}"[:300]
                for where in not_lists
            ]
            continue
        merged = _deep_merge(defaults, settings)
        # Tags accumulate (defaults + source); everything else: the source wins over defaults.
        merged["tags"] = list(dict.fromkeys([*tags["defaults"], *tags[name]]))
        merged = _deep_merge(merged, overrides)
        merged["name"] = name
        try:
            parsed.append(SourceConfig.model_validate(merged))
        except ValidationError as exc:
            problems.append(_format_errors(origin, str(name), exc))
    if problems:
        raise SourceConfigError("\n".join(problems))
    return parsed


def load_sources(path: str | os.PathLike[str]) -> list[SourceConfig]:
    """Read and validate a ``sources.yaml`` file: every source in it."""
    return parse_sources(_read_yaml(path), origin=str(path))


def load_source(path: str | os.PathLike[str], name: str) -> SourceConfig:
    """Read a ``sources.yaml`` file and validate the source ``name`` only (and the defaults it inherits)."""
    (source,) = parse_sources(_read_yaml(path, only=name), origin=str(path), only=name)
    return source


def declared_source_names(path: str | os.PathLike[str]) -> list[str]:
    """The source names under ``sources:`` in a ``sources.yaml`` file, in order, without validating them."""
    document = _read_yaml(path)
    sources = document.get("sources") if isinstance(document, dict) else None
    if not isinstance(sources, dict):
        raise SourceConfigError(f"{path}: 'sources' must be a non-empty mapping of source name to settings")
    return [str(name) for name in sources]


def _read_yaml(path: str | os.PathLike[str], only: str | None = None) -> Any:
    """The parsed document of ``path``; with ``only``, just that source filled in (see :mod:`.yaml_cache`)."""
    file = pathlib.Path(path)

    def parse(content: bytes) -> Any:
        # The C loader is ~10x faster than the pure-Python one.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            return yaml.load(content.decode("utf-8"), Loader=loader)  # noqa: S506  # nosec B506 - a safe loader
        except yaml.YAMLError as exc:
            raise SourceConfigError(_yaml_error_message(file, exc)) from exc

    # Every DAG parse reads this file: the cache makes that cost one source's, not every source's.
    return read_document(file.read_bytes(), parse, only=only)


def _yaml_error_message(file: pathlib.Path, exc: yaml.YAMLError) -> str:
    """``<file>:<line>:<column>: not valid YAML: <problem>`` (1-based, as editors count), and its reach.

    A syntax error cannot be attributed to one source (the parser cannot tell where a source ends once the
    file is broken), so every DAG built from this file reports this same import error until it is fixed.
    """
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(file)
    problem = str(getattr(exc, "problem", None) or exc)
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context:
        at = f" at line {context_mark.line + 1}, column {context_mark.column + 1}" if context_mark else ""
        problem += f" ({context}{at})"
    return (
        f"{where}: not valid YAML: {problem}. The file cannot be read, so every source in it (every "
        "ingest_<source> DAG) fails to import until this is fixed"
    )
