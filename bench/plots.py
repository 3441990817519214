"""Plots of ``make bench``'s growth curves -> docs/images/*.png (matplotlib, no display needed)."""

from __future__ import annotations

import pathlib
from typing import Any

IMAGES = pathlib.Path(__file__).resolve().parents[1] / "docs" / "images"
SCALE_PLOT = "bench-scale.png"


def scale_series(sections: dict[str, Any]) -> dict[str, list[tuple[float, float]]]:
    """The (x, y) points of every growth curve the sections hold, by curve name (empty if none ran)."""
    series: dict[str, list[tuple[float, float]]] = {}
    triggerer = sections.get("triggerer") or {}
    rows = [] if triggerer.get("error") else triggerer.get("rows") or []
    if rows:
        series["triggerer RSS (MB)"] = [(r["deferred_runs"], r["rss_mb"]) for r in rows]
        series["triggerer CPU (% of one core)"] = [
            (r["deferred_runs"], 100 * r["cpu_fraction_of_one_core"]) for r in rows
        ]
    scale = sections.get("parse_scale") or {}
    points = [] if scale.get("error") else scale.get("rows") or []
    if points:
        series["DAG-processor loop (s CPU)"] = [(r["sources"], r["loop_cpu_seconds"]) for r in points]
        series["worst file / trivial (x)"] = [(r["sources"], r["worst_ratio"]) for r in points]
    backfill = sections.get("backfill") or {}
    levels = [] if backfill.get("error") else backfill.get("rows") or []
    if levels:
        series["backfill (intervals / min)"] = [(r["concurrency"], r["intervals_per_minute"]) for r in levels]
    return series


def _x_label(name: str) -> str:
    if name.startswith("triggerer"):
        return "deferred runs"
    if name.startswith("backfill"):
        return "backfill concurrency (max_active_runs)"
    return "sources in sources.yaml"


def render_scale_plot(sections: dict[str, Any], images: pathlib.Path = IMAGES) -> pathlib.Path | None:
    """Write the scale plot (one panel per curve); None when no scale benchmark has figures."""
    series = scale_series(sections)
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(series), figsize=(4 * len(series), 3.4), squeeze=False)
    for ax, (name, points) in zip(axes[0], series.items(), strict=True):
        xs, ys = zip(*sorted(points), strict=True)
        ax.plot(xs, ys, marker="o")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(_x_label(name))
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    images.mkdir(parents=True, exist_ok=True)
    path = images / SCALE_PLOT
    fig.savefig(path, dpi=90, metadata={"Software": None})  # no version stamp: same figures, same bytes
    plt.close(fig)
    return path
