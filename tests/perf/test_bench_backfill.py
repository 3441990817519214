"""The backfill-throughput section of ``make bench`` (bench/bench_backfill.py): registered, rendered, plotted.

The measurement itself runs real Airflow and Spark and belongs to ``make bench``, never to a timed test.
"""

from __future__ import annotations

from bench import plots, report, run

SECTION = {
    "source": "hackernews",
    "intervals_per_level": 8,
    "rows": [
        {
            "concurrency": c,
            "intervals": 8,
            "succeeded": 8,
            "manifests": 8,
            "databricks_runs": 8,
            "duplicates": 0,
            "wall_seconds": w,
            "intervals_per_minute": round(8 / w * 60, 2),
            "speedup_vs_first": s,
        }
        for c, w, s in ((1, 240.0, 1.0), (4, 120.0, 2.0), (8, 110.0, 2.18))
    ],
    "processing_cap": "processing DAG max_active_runs 4, bundle job max_concurrent_runs 4",
    "target": "none on throughput; every interval succeeds, 0 duplicates",
    "met": True,
    "headline": "c=1: 2.0/min; c=4: 4.0/min; c=8: 4.36/min",
}


def test_the_section_is_registered_for_make_bench_and_quick_mode():
    assert "backfill" in run.SECTIONS
    assert set(run._benchmarks(quick=True)) == set(run.SECTIONS)


def test_the_section_renders_a_row_per_concurrency_and_a_summary_line(bench_document):
    document = bench_document({"backfill": SECTION})
    text = report.render(document)
    assert "## 8. Backfill throughput" in text
    assert "| 4 | 8 | 8 | 8 | 0 | 120.0 | 4.0 | 2.0 |" in text
    assert "| 8 | backfill throughput, intervals / min by concurrency | c=1: 2.0/min; c=4: 4.0/min" in text


def test_the_curve_is_plotted_against_concurrency():
    assert plots.scale_series({"backfill": SECTION})["backfill (intervals / min)"] == [
        (1, 2.0),
        (4, 4.0),
        (8, 4.36),
    ]
    assert plots.scale_series({"backfill": {"error": "boom"}}) == {}
