"""Reports people look at: the nightly run's data report on `tiny` has every figure, each
with data, and opens offline."""

from __future__ import annotations

import re

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.gate import GateParams
from tasks.models.lightfm_hybrid import LightFMParams
from tasks.tune import TuningParams

FIGURES = {
    "events_per_day",
    "purchases_per_user",
    "long_tail",
    "category_by_segment",
    "repurchase_gaps",
    "arrivals",
}


def test_data_report_has_every_figure_with_data(data_root):
    summary = nightly(
        NightlyParams(
            data_root=data_root,
            top_n=5,
            model=LightFMParams(no_components=8, epochs=2),
            tuning=TuningParams(search=False),
            gate=GateParams(min_lift=-1.0),
            num_threads=1,
        )
    )
    page = summary.data_report.read_text()
    assert summary.data_report == summary.run_folder / "reports" / "data_report.html"
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(FIGURES)
    plotted = dict(re.findall(r'<figure data-name="(\w+)" data-values="(\d+)">', page))
    assert set(plotted) == FIGURES
    assert all(int(values) > 0 for values in plotted.values()), plotted  # no empty axes
    assert "skin_type" in page and "Top products per skin_type" in page
    for skin in ("dry", "oily", "sensitive"):
        assert f"<td>{skin}</td>" in page
    assert "http://" not in page and "https://" not in page  # nothing to fetch: opens offline
