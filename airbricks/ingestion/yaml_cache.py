"""Content-addressed cache of parsed ``sources.yaml`` documents, split by source (see docs/PERFORMANCE.md).

Every DAG file builds one source's DAG, but YAML cannot be read in part: the C loader needs ~0.14 ms per
source, and every parse of every ``ingest_<source>.py`` paid for all N sources, so a DAG-processor loop grew
with N². The first parse of a given content writes the parsed document here as a head (top-level keys,
``defaults``, the source names in order) and one pickle per source; later parses, in any process (the DAG
processor's forked children, CI, ``airflow dags list``), hash the file (~0.1 ms for 300 sources) and
unpickle the head and their own source only.

Keyed by SHA-256 of the file's bytes (and PyYAML's version), so an edited file (a git-sync push) is parsed
in full again, once. A file that is not valid YAML is never cached: every parse raises the same error. The
pickles are read with an unpickler that builds only the types PyYAML's safe loader produces, so the cache
holds data, never code. Whatever goes wrong with the cache (no writable home, a concurrent clean-up) is a
cache miss: the file is parsed as without it.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import pathlib
import pickle  # nosec B403 - loaded only through _SafeUnpickler (data types only)
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

import yaml

#: Directory of the cache (default ``$XDG_CACHE_HOME/airbricks/sources-yaml`` or ``~/.cache/...``); ``off``
#: disables it.
CACHE_DIR_ENV = "AIRBRICKS_SOURCES_CACHE_DIR"
#: Contents (digests) kept; older ones are removed when a new one is written.
KEEP = 4
_FORMAT = "1"
_HEAD = "head.pickle"
# The classes PyYAML's SafeLoader constructs beyond pickle's native types (dates, timestamps, !!set).
_ALLOWED = {
    ("datetime", "date"): datetime.date,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    ("builtins", "set"): set,
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"{module}.{name} is not a YAML data type") from None


def _load(path: pathlib.Path) -> Any:
    return _SafeUnpickler(io.BytesIO(path.read_bytes())).load()


def cache_root() -> pathlib.Path | None:
    """The cache directory, or ``None`` when disabled through :data:`CACHE_DIR_ENV`."""
    configured = os.environ.get(CACHE_DIR_ENV, "").strip()
    if configured.lower() == "off":
        return None
    if configured:
        return pathlib.Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "airbricks" / "sources-yaml"


def read_document(content: bytes, parse: Callable[[bytes], Any], only: str | None = None) -> Any:
    """The document ``parse(content)`` returns, from the cache when this content was parsed before.

    :param content: the bytes of the YAML file.
    :param parse: parses ``content`` (and raises the file's errors); called on a cache miss only.
    :param only: when set, the returned document's ``sources`` maps every declared name in order, but only
        this one to its settings (the others to ``None``): what validating one source needs.
    """
    root = cache_root()
    if root is None:
        return parse(content)
    digest = hashlib.sha256(b"%s\0%s\0" % (_FORMAT.encode(), yaml.__version__.encode()) + content).hexdigest()
    entry = root / digest
    try:
        head = _load(entry / _HEAD)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError):
        document = parse(content)
        _store(root, entry, document)
        return document
    if head["whole"] is not None:  # not split (top level is not a mapping of sources): kept as it is
        return head["whole"]
    names: list[Any] = head["names"]
    document = dict(head["top"])
    if only is None:
        try:
            document["sources"] = {name: _load(entry / f"{i}.pickle") for i, name in enumerate(names)}
        except (OSError, pickle.UnpicklingError, EOFError, ValueError):
            return parse(content)
        return document
    sources = dict.fromkeys(names)
    if only in sources:
        try:
            sources[only] = _load(entry / f"{names.index(only)}.pickle")
        except (OSError, pickle.UnpicklingError, EOFError, ValueError):
            return parse(content)
    document["sources"] = sources
    return document


def _store(root: pathlib.Path, entry: pathlib.Path, document: Any) -> None:
    """Write ``document`` as ``entry`` (a temp directory, renamed), keep the newest :data:`KEEP` entries."""
    sources = document.get("sources") if isinstance(document, dict) else None
    split = isinstance(sources, dict)
    head = {
        "whole": None if split else document,
        "top": {key: value for key, value in document.items() if key != "sources"} if split else None,
        "names": list(sources) if split else None,
    }
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(dir=root, prefix=".staging-"))
        try:
            if split:
                for i, settings in enumerate(sources.values()):
                    (staging / f"{i}.pickle").write_bytes(pickle.dumps(settings, protocol=5))
            (staging / _HEAD).write_bytes(pickle.dumps(head, protocol=5))
            os.rename(staging, entry)  # fails when another process stored the same content first: fine
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        entries = sorted(
            (p for p in root.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime
        )
        for old in entries[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
    except (OSError, pickle.PicklingError):
        return  # no cache: the next parse parses again
