"""Where the tests find the official Airflow chart 1.22.0's ``values.schema.json`` and ``values.yaml``.

Order: ``../shared/reference/airflow-chart-1.22.0/`` beside the clone (this project's CI), else the packaged
chart that ``make chart-deps`` (``helm dependency build chart``) puts in ``chart/charts/`` (any machine with
network, e.g. GitHub Actions), or ``AIRBRICKS_AIRFLOW_CHART_TGZ``. Neither present is a loud failure, never
a skip: the schema tests are the only proof that our values are valid for the chart.
"""

from __future__ import annotations

import os
import pathlib
import tarfile
import tempfile

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
CHART_VERSION = "1.22.0"
SHARED_REFERENCE_DIR = REPO_ROOT.parent / "shared" / "reference" / f"airflow-chart-{CHART_VERSION}"
PACKAGED_CHART = REPO_ROOT / "chart" / "charts" / f"airflow-{CHART_VERSION}.tgz"
_FILES = ("values.schema.json", "values.yaml")
_extracted: pathlib.Path | None = None


def packaged_chart() -> pathlib.Path | None:
    """The official chart archive, if ``AIRBRICKS_AIRFLOW_CHART_TGZ`` or ``make chart-deps`` provided one."""
    override = os.environ.get("AIRBRICKS_AIRFLOW_CHART_TGZ")
    if override:
        path = pathlib.Path(override)
        if not path.is_file():
            pytest.fail(f"AIRBRICKS_AIRFLOW_CHART_TGZ={override} is not a file", pytrace=False)
        return path
    return PACKAGED_CHART if PACKAGED_CHART.is_file() else None


def _extract(archive: pathlib.Path) -> pathlib.Path:
    global _extracted
    if _extracted is None:
        target = pathlib.Path(tempfile.mkdtemp(prefix="airbricks-chart-reference-"))
        with tarfile.open(archive) as tar:
            for name in _FILES:
                member = tar.getmember(f"airflow/{name}")
                source = tar.extractfile(member)
                assert source is not None, f"{archive}: airflow/{name} is not a file"
                (target / name).write_bytes(source.read())
        _extracted = target
    return _extracted


def official_chart_reference() -> pathlib.Path:
    """A directory holding the official chart's values.schema.json and values.yaml, or a loud failure."""
    if all((SHARED_REFERENCE_DIR / name).is_file() for name in _FILES):
        return SHARED_REFERENCE_DIR
    archive = packaged_chart()
    if archive is not None:
        return _extract(archive)
    pytest.fail(
        f"Official Airflow chart {CHART_VERSION} reference not found: neither {SHARED_REFERENCE_DIR} "
        f"(values.schema.json + values.yaml) nor {PACKAGED_CHART}. Run `make chart-deps` (needs helm and "
        "network) or set AIRBRICKS_AIRFLOW_CHART_TGZ=/path/to/airflow-1.22.0.tgz.",
        pytrace=False,
    )
