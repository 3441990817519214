"""Paths shared by the observability tests (a plain module: conftest.py names are not importable safely)."""

from __future__ import annotations

import pathlib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "chart"
RULES_FILE = CHART_DIR / "files" / "monitoring" / "prometheus-rules.yaml"
DASHBOARD_FILE = CHART_DIR / "files" / "monitoring" / "airbricks-dashboard.json"
DOCS_FILE = REPO_ROOT / "docs" / "OBSERVABILITY.md"
