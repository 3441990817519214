"""Helpers of the scale benchmarks (triggerer, DAG parsing with N sources, plots). No timing is asserted."""

from __future__ import annotations

import asyncio
import os
import pathlib
import sys

import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # bench/ is a folder of the checkout, not an installed package
    sys.path.insert(0, str(REPO_ROOT))

from bench import bench_parse_scale, bench_triggerer, plots, report  # noqa: E402


def test_slope_and_linearity_of_growth_curves():
    assert bench_triggerer.slope({1: 100.0, 101: 110.0, 1001: 200.0}) is not None
    assert abs(bench_triggerer.slope({0: 1.0, 10: 21.0, 20: 41.0}) - 2.0) < 1e-9
    assert bench_triggerer.slope({5: 1.0}) is None
    assert bench_triggerer.linearity({1: 1.0, 100: 100.0, 1000: 1000.0}) == 0.0
    assert bench_triggerer.linearity({1: 1.0, 100: 600.0, 1000: 1000.0}) > 0.4  # a bulge in the middle
    assert bench_triggerer.cpu_ms_per_poll(0.5, 1000) == 0.5
    assert bench_triggerer.cpu_ms_per_poll(0.5, 0) is None


def test_request_counter_counts_answered_requests_by_path():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})

    counter = bench_triggerer.RequestCounter(app)

    async def sent(message):
        return None

    async def calls():
        for path in ("/api/2.1/jobs/runs/get", "/api/2.2/jobs/runs/get", "/api/2.1/clusters/get"):
            await counter({"type": "http", "path": path}, None, sent)
        await counter({"type": "lifespan", "path": "/"}, None, sent)

    asyncio.run(calls())
    assert counter.count("/runs/get") == 2
    assert counter.count() == 3


def test_tree_usage_sees_this_process():
    rss_mb, cpu_seconds = bench_triggerer.tree_usage(os.getpid())
    assert rss_mb > 10
    assert cpu_seconds > 0


def test_generated_folder_has_one_dag_file_per_source(tmp_path):
    files = bench_parse_scale.generate_folder(tmp_path, 4)
    document = yaml.safe_load((tmp_path / "sources.yaml").read_text())
    assert list(document["sources"]) == ["gen000", "gen001", "gen002", "gen003"]
    assert document["defaults"]
    assert [f.name for f in files] == [f"ingest_gen00{i}.py" for i in range(4)]
    assert '"gen002")' in files[2].read_text()
    assert "&" not in (tmp_path / "sources.yaml").read_text()  # sources written out, no YAML anchors

    from airbricks.ingestion.config import load_source

    assert load_source(tmp_path / "sources.yaml", "gen003").name == "gen003"


def test_linear_fit_error_is_zero_for_a_constant_per_file_cost():
    assert bench_parse_scale.linear_fit_error({10: 1.0, 100: 10.0, 300: 30.0}) == 0.0
    assert bench_parse_scale.linear_fit_error({10: 1.0, 100: 20.0, 300: 90.0}) > 0.25  # quadratic-ish


def _scale_sections():
    row = {
        "rss_mb": 450.0,
        "cpu_seconds": 1.0,
        "window_seconds": 30.0,
        "polls": 6,
        "expected_polls": 6,
        "cpu_ms_per_poll": 160.0,
        "cpu_fraction_of_one_core": 0.03,
        "emulator_requests_per_second": 0.2,
    }
    return {
        "triggerer": {
            "poll_seconds": 5.0,
            "rows": [{**row, "deferred_runs": 1}, {**row, "deferred_runs": 100, "rss_mb": 470.0}],
            "rss_mb_per_deferred_run": 0.2,
            "cpu_ms_per_poll": 0.8,
            "met": True,
        },
        "parse_scale": {
            "rows": [
                {
                    "sources": n,
                    "loop_cpu_seconds": n * 0.05,
                    "cpu_ms_per_file": 50.0,
                    "trivial_cpu_ms": 30.0,
                    "worst_ratio": 1.6,
                }
                for n in (10, 100)
            ],
            "linear_fit_error": 0.1,
            "met": False,
        },
    }


def test_scale_plot_is_written_from_the_sections(tmp_path):
    sections = _scale_sections()
    assert set(plots.scale_series(sections)) == {
        "triggerer RSS (MB)",
        "triggerer CPU (% of one core)",
        "DAG-processor loop (s CPU)",
        "worst file / trivial (x)",
    }
    path = plots.render_scale_plot(sections, tmp_path)
    assert path is not None
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plots.render_scale_plot({"triggerer": {"error": "boom"}}, tmp_path / "none") is None


def test_report_renders_the_scale_sections_and_the_plot(bench_document):
    document = bench_document(_scale_sections(), scale_plot="images/bench-scale.png")
    text = report.render(document)
    assert "## 6. Triggerer at scale" in text
    assert "## 7. DAG parsing at scale" in text
    assert "| 100 | 470.0 |" in text
    assert "![growth curves of sections 6, 7 and 8](images/bench-scale.png)" in text
    assert "**MISSED**" in text  # parse_scale's target
