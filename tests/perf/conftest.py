"""Shared pieces of the benchmark-harness tests: the results document that ``bench/report.py`` renders."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

#: The ``machine`` block of ``bench/results.json``, with placeholder values.
MACHINE = {
    "date": "2026-12-04T00:00:00+00:00",
    "cpu": "cpu",
    "cpus": 2,
    "memory": "1 MiB",
    "platform": "linux",
    "python": "3.11",
    "versions": {"apache-airflow": "3.3.2"},
    "load_average_1_5_15": [1, 1, 1],
}


@pytest.fixture
def bench_document() -> Callable[..., dict[str, Any]]:
    """A factory of results documents: ``bench_document(sections, **top_level_keys)``."""

    def build(sections: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"machine": dict(MACHINE), "total_seconds": 1.0, "sections": sections, **extra}

    return build
