"""The suite's own instruments must be able to fail: the secret watch and the records accounting."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
from faults_support import lost_and_duplicated, source_records

from airbricks.reliability import report

pytestmark = pytest.mark.faults


def test_secret_watch_finds_a_secret_in_logs_and_stdout(secret_watch):
    logged = secret_watch.new("logged")
    printed = secret_watch.new("printed")
    secret_watch.new("never shown")
    logging.getLogger("airflow.task").warning("oops %s", logged)
    print(f"oops {printed}")
    assert secret_watch.leaks() == ["logged", "printed"]


def test_records_accounting_counts_losses_and_duplicates():
    source = source_records("hackernews")
    assert sum(source.values()) == 13  # 5 + 5 + 3 records in the bundled fixtures
    first = next(iter(source))
    published = source - Counter({first: 1}) + Counter({"x": 2})
    assert lost_and_duplicated(source, published) == (1, 2)
    assert lost_and_duplicated(source, None) == (13, 0)


def test_report_summary_line_and_exit_code(tmp_path):
    path = tmp_path / "r.jsonl"
    assert report.main([str(path)]) == 1  # nothing recorded is a failure, not a pass
    report.append(path, report.FaultOutcome("a: x", "ok", "ok", True))
    report.append(path, report.FaultOutcome("a: y", "ok", "lost", True, records_lost=2, secrets_leaked=1))
    lines = report.render(report.load(path))
    assert lines[-1] == (
        "reliability: 2/2 faults handled, 2 records lost, 0 duplicated, 0 clusters leaked, 1 secrets leaked"
    )
    assert lines[1].startswith("FAIL a: y")
    assert report.main([str(path)]) == 1
