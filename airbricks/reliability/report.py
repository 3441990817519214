"""The reliability report: one JSON line per injected fault, and the summary ``make reliability`` prints.

The fault-injection suite (``tests/faults``) appends a :class:`FaultOutcome` per fault to the file named by
``$AIRBRICKS_RELIABILITY_REPORT`` (JSON lines, so concurrent appends of whole lines never corrupt it);
``python -m airbricks.reliability.report <file>`` prints one line per fault and the summary line::

    reliability: <survived>/<tried> faults handled, <n> records lost, <n> duplicated,
    <n> clusters leaked, <n> secrets leaked      (on one line)

and exits 1 when a fault was not handled, any count is above zero, or nothing was recorded at all.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

REPORT_ENV = "AIRBRICKS_RELIABILITY_REPORT"


@dataclasses.dataclass(frozen=True)
class FaultOutcome:
    """What one injected fault did.

    :param fault: short name, ``<area>: <fault>`` (e.g. ``api: 429 + Retry-After``).
    :param expected: the outcome the platform promises (e.g. ``success after in-task retry``).
    :param observed: what actually happened, in a few words (task state, try number, message excerpt).
    :param handled: the observed outcome is the expected one.
    :param records_lost: source records missing from the published partition (manifest parts).
    :param records_duplicated: extra copies of records in the published partition.
    :param clusters_leaked: Databricks clusters still active after the run ended.
    :param secrets_leaked: generated secrets (tokens, passwords) found in any captured log line.
    :param test: the pytest node id that injected it.
    """

    fault: str
    expected: str
    observed: str
    handled: bool
    records_lost: int = 0
    records_duplicated: int = 0
    clusters_leaked: int = 0
    secrets_leaked: int = 0
    test: str = ""

    @property
    def clean(self) -> bool:
        return self.handled and not (
            self.records_lost or self.records_duplicated or self.clusters_leaked or self.secrets_leaked
        )

    def line(self) -> str:
        mark = "ok  " if self.clean else "FAIL"
        counts = (
            f"lost={self.records_lost} dup={self.records_duplicated} "
            f"clusters={self.clusters_leaked} secrets={self.secrets_leaked}"
        )
        return f"{mark} {self.fault:<52} expected: {self.expected}; observed: {self.observed} [{counts}]"


def append(path: str | os.PathLike[str], outcome: FaultOutcome) -> None:
    """Append one outcome as a JSON line (creating the file and its directory)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(dataclasses.asdict(outcome), sort_keys=True) + "\n")


def load(path: str | os.PathLike[str]) -> list[FaultOutcome]:
    """Every outcome in the report; a missing file is an empty report."""
    target = Path(path)
    if not target.is_file():
        return []
    outcomes = []
    for number, text in enumerate(target.read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            outcomes.append(FaultOutcome(**json.loads(text)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ValueError(f"{target}:{number}: not a fault outcome line: {exc}") from exc
    return outcomes


def summary_line(outcomes: Sequence[FaultOutcome]) -> str:
    survived = sum(1 for o in outcomes if o.handled)
    lost = sum(o.records_lost for o in outcomes)
    duplicated = sum(o.records_duplicated for o in outcomes)
    clusters = sum(o.clusters_leaked for o in outcomes)
    secrets = sum(o.secrets_leaked for o in outcomes)
    return (
        f"reliability: {survived}/{len(outcomes)} faults handled, {lost} records lost, {duplicated} "
        f"duplicated, {clusters} clusters leaked, {secrets} secrets leaked"
    )


def render(outcomes: Iterable[FaultOutcome]) -> list[str]:
    """One line per fault (in the order injected), then the summary line last."""
    ordered = list(outcomes)
    return [o.line() for o in ordered] + [summary_line(ordered)]


def is_clean(outcomes: Sequence[FaultOutcome]) -> bool:
    return bool(outcomes) and all(o.clean for o in outcomes)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    path = args[0] if args else os.environ.get(REPORT_ENV, "")
    if not path:
        print(f"usage: python -m airbricks.reliability.report <report.jsonl> (or set {REPORT_ENV})")
        return 2
    outcomes = load(path)
    if not outcomes:
        print(f"reliability: no fault outcomes recorded in {path}; did the fault suite run?")
        return 1
    for line in render(outcomes):
        print(line)
    return 0 if is_clean(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
