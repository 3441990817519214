"""Raw-zone test data shaped like the ingestion output (pages as received from the APIs)."""

from __future__ import annotations

import json
import pathlib
from typing import Any


def write_partition(
    root: pathlib.Path, pages: list[Any], manifest: dict[str, Any] | None, *, dt: str = "2026-11-20"
) -> pathlib.Path:
    """Write a raw partition the way ingestion does: one page per part file, then the manifest last."""
    partition = root / f"dt={dt}"
    partition.mkdir(parents=True)
    for index, page in enumerate(pages, start=1):
        (partition / f"part-{index:05d}.json").write_text(json.dumps(page))
    if manifest is not None:
        (partition / "_manifest.json").write_text(json.dumps(manifest))
    return partition


def hn_hit(object_id: str, **fields: Any) -> dict[str, Any]:
    """One Hacker News Algolia hit with sensible defaults."""
    hit = {
        "objectID": object_id,
        "title": f"Story {object_id}",
        "url": f"https://www.example.com/{object_id}",
        "author": "alice",
        "points": 10,
        "num_comments": 2,
        "created_at": "2026-11-20T10:00:00Z",
        "created_at_i": 1795168800,
        "_tags": ["story"],
    }
    hit.update(fields)
    return hit


def gh_issue(issue_id: int, **fields: Any) -> dict[str, Any]:
    """One GitHub issue as the REST API returns it (subset of fields)."""
    issue = {
        "id": issue_id,
        "number": issue_id % 100000,
        "title": f"Issue {issue_id}",
        "state": "open",
        "user": {"login": "bob", "id": 1},
        "labels": [{"name": "kind:bug", "color": "ff0000"}],
        "comments": 1,
        "created_at": "2026-11-19T08:00:00Z",
        "updated_at": "2026-11-20T08:00:00Z",
        "closed_at": None,
        "html_url": f"https://github.com/apache/airflow/issues/{issue_id}",
    }
    issue.update(fields)
    return issue
