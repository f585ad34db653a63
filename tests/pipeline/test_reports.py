"""Reports people look at, rendered on `tiny`: the data report and the evaluation report of a
nightly run have every figure, each with data, open offline, and are listed in
data/index.html with the monitor's drift report."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from demo_store.live import advance_store
from flows.monitor import MonitorParams, monitor
from flows.nightly import GateRefusedError, nightly
from flows.params import NightlyParams
from tasks.evaluation.gate import GateParams
from tasks.monitoring.drift import DriftThresholds
from tasks.training.models.lightfm_hybrid import LightFMParams
from tasks.training.tune import TuningParams
from tests.chromium import require_chromium

DATA_FIGURES = {
    "events_per_day",
    "purchases_per_user",
    "long_tail",
    "category_by_segment",
    "repurchase_gaps",
    "arrivals",
}
EVALUATION_FIGURES = {"metric_curves", "segments", "rule_costs", "popularity_bias"}


def _params(data_root, **overrides) -> NightlyParams:
    return NightlyParams(
        data_root=data_root,
        top_n=5,
        model=LightFMParams(no_components=8, epochs=2),
        tuning=TuningParams(search=False),
        gate=GateParams(
            min_lift=-1.0, relaxed_on_purpose="the reports are under test, not the model"
        ),
        num_threads=1,
    ).model_copy(update=overrides)


def _figures(page: str) -> dict[str, int]:
    """name → number of plotted values, for every embedded figure."""
    figures = re.findall(
        r'<figure data-name="([\w. ]+)" data-values="(\d+)"><img alt="[^"]+" '
        r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"',
        page,
    )
    assert all(len(encoded) > 1_000 for *_, encoded in figures)
    return {name: int(values) for name, values, _ in figures}


def test_every_report_has_its_figures_with_data_and_is_indexed(data_root):
    summary = nightly(_params(data_root))

    data_page = summary.data_report.read_text()
    assert summary.data_report == summary.run_folder / "reports" / "data_report.html"
    plotted = _figures(data_page)
    assert set(plotted) == DATA_FIGURES and min(plotted.values()) > 0, plotted  # no empty axes
    assert "Top products per skin_type" in data_page
    for skin in ("dry", "oily", "sensitive"):
        assert f"<td>{skin}</td>" in data_page

    evaluation = summary.evaluation_report.read_text()
    plotted = _figures(evaluation)
    assert set(plotted) == EVALUATION_FIGURES and min(plotted.values()) > 0, plotted
    assert "gate PASSED" in evaluation and "lightfm_hybrid" in evaluation
    lists = pd.read_parquet(summary.published_path)
    sampled = set(re.findall(r"<td>(U\d+)</td>", evaluation))
    assert sampled and sampled <= set(lists["user_id"])
    for tier in lists["tier"].unique():
        assert f"<td>{tier}</td>" in evaluation  # every tier in the coverage table and sample
    # a sampled customer's reasons are the published ones
    user = sorted(sampled)[0]
    first = lists[(lists["user_id"] == user) & (lists["rank"] == 1)].iloc[0]
    assert first["reason"] in evaluation.replace("&#x27;", "'").replace("&quot;", '"')

    for page in (data_page, evaluation):
        assert "http://" not in page and "https://" not in page  # opens offline

    advance_store(data_root / "demo" / "store.db", 10, "new_users")
    watched = monitor(
        MonitorParams(nightly=_params(data_root), retrain="off", drift=DriftThresholds(min_rows=50))
    )
    drift_page = watched.report.read_text()
    plotted = _figures(drift_page)
    assert set(plotted) == {d.feature for d in watched.drift}
    assert min(plotted.values()) > 0, plotted
    for row in watched.drift:  # each feature's statistic and threshold, beside its plot
        cells = f"<td>{row.feature}</td><td>{row.statistic}</td><td>{row.value}</td>"
        assert cells + f"<td>{row.threshold}</td>" in drift_page, row.feature
    index = (data_root / "index.html").read_text()
    run = summary.run_id
    assert f'href="runs/{run}/reports/data_report.html"' in index
    assert f'href="runs/{run}/reports/evaluation_report.html"' in index
    assert f'href="monitor/{watched.run_id}/drift_report.html"' in index
    assert f"serving as {summary.published_version}" in index
    for link in re.findall(r'href="([^"]+)"', index):
        assert (data_root / link).exists(), link


def test_a_refused_run_still_explains_itself(data_root):
    with pytest.raises(GateRefusedError) as refused:
        nightly(_params(data_root, gate=GateParams(min_ndcg=0.99)))
    (report,) = (data_root / "runs").glob("*/reports/evaluation_report.html")
    page = report.read_text()
    assert "gate REFUSED" in page and "Nothing was published" in page
    assert str(report) in str(refused.value)
    assert "gate refused" in (data_root / "index.html").read_text()


def test_screenshot_script_fails_on_console_errors(tmp_path):
    from benchmarks.screenshot_report import screenshot

    require_chromium()
    good = tmp_path / "good.html"
    good.write_text("<!doctype html><html><body><h1>fine</h1></body></html>")
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><script>console.error("boom")</script></body></html>')
    ok = screenshot(good, tmp_path / "good.png")
    assert ok["console_errors"] == [] and (tmp_path / "good.png").read_bytes()[:4] == b"\x89PNG"
    assert screenshot(bad, tmp_path / "bad.png")["console_errors"] == ["boom"]
