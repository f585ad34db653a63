"""The monitoring run's report: JSON for programs, Prefect artifacts, an HTML page with plots.

The HTML page is self-contained (plots embedded as PNG), so it opens offline:
data/monitor/<run_id>/drift_report.html.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from tasks.monitoring.drift import FeatureDrift
from tasks.monitoring.live_metrics import SHARES, Uplift, VariantPerformance
from tasks.reporting.report_html import figure_html, html_table, png


def drift_figure(row: FeatureDrift) -> str:
    """Reference against current for one feature, with its statistic in the title."""
    figure, axes = plt.subplots(figsize=(6.4, 2.8))
    if row.histogram:
        edges = np.asarray(row.histogram["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        width = np.diff(edges) * 0.4
        axes.bar(centres - width / 2, row.histogram["reference"], width, label="reference")
        axes.bar(centres + width / 2, row.histogram["current"], width, label="current")
        axes.set_ylabel("share of rows")
    else:
        labels = [c["value"] for c in row.top_changes]
        x = np.arange(len(labels))
        axes.bar(x - 0.2, [c["reference"] for c in row.top_changes], 0.4, label="reference")
        axes.bar(x + 0.2, [c["current"] for c in row.top_changes], 0.4, label="current")
        axes.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
        axes.set_ylabel("share")
    verdict = "DRIFTED" if row.drifted else ("ok" if row.judged else "too few rows to judge")
    axes.set_title(
        f"{row.feature}: {row.statistic} {row.value:.3f} (threshold {row.threshold}) {verdict}",
        fontsize=9,
    )
    axes.legend(fontsize=8)
    return png(figure)


def plotted_values(row: FeatureDrift) -> int:
    """How many non-zero bars the feature's figure draws, on both sides."""
    if row.histogram:
        return int(np.count_nonzero(row.histogram["reference"])) + int(
            np.count_nonzero(row.histogram["current"])
        )
    return sum(bool(c["reference"]) + bool(c["current"]) for c in row.top_changes)


def live_figure(performance: list[VariantPerformance]) -> str:
    """Each share with its 95% interval, one bar per variant."""
    figure, axes = plt.subplots(figsize=(6.4, 2.8))
    x = np.arange(len(SHARES))
    width = 0.8 / max(len(performance), 1)
    for i, variant in enumerate(performance):
        values = np.array([getattr(variant, m).value for m in SHARES])
        # an interval's end can sit 1e-17 on the wrong side of its value (rounding)
        low = np.maximum(values - np.array([getattr(variant, m).low for m in SHARES]), 0.0)
        high = np.maximum(np.array([getattr(variant, m).high for m in SHARES]) - values, 0.0)
        axes.bar(
            x + i * width,
            values,
            width,
            yerr=[low, high],
            capsize=3,
            label=f"{variant.variant} ({variant.visitors:,} visitors)",
        )
    axes.set_xticks(x + width * (len(performance) - 1) / 2, [m.replace("_", " ") for m in SHARES])
    axes.set_ylabel("share of visitors (95% CI)")
    axes.set_title("live performance of the published lists", fontsize=9)
    axes.legend(fontsize=8)
    return png(figure)


def drift_rows(drift: list[FeatureDrift]) -> list[dict]:
    return [
        {
            "feature": r.feature,
            "statistic": r.statistic,
            "value": r.value,
            "threshold": r.threshold,
            "drifted": r.drifted,
            "judged": r.judged,
            "reference rows": r.n_reference,
            "current rows": r.n_current,
            "Wasserstein (sd)": r.wasserstein_sd,
        }
        for r in drift
    ]


def performance_rows(performance: list[VariantPerformance]) -> list[dict]:
    def fmt(e) -> str:
        return "n/a" if e is None else f"{e.value:.3f} [{e.low:.3f}, {e.high:.3f}]"

    return [
        {
            "variant": p.variant,
            "visitors": p.visitors,
            "click-through": fmt(p.click_through),
            "conversion": fmt(p.conversion),
            "hit rate": fmt(p.hit_rate),
            "revenue per user": fmt(p.revenue_per_user),
            "satisfaction": fmt(p.satisfaction),
            "catalogue coverage": p.catalog_coverage,
        }
        for p in performance
    ]


def uplift_rows(lift: list[Uplift]) -> list[dict]:
    return [
        {
            "metric": u.metric,
            "model": round(u.model, 4),
            "control": round(u.control, 4),
            "difference [95% CI]": f"{u.difference:+.4f} [{u.low:+.4f}, {u.high:+.4f}]",
            "relative": "n/a" if u.relative is None else f"{u.relative:+.1%}",
            "significant": u.significant,
            "detectable (80% power)": f"±{u.mde:.4f}",
            "visitors needed": "n/a" if u.visitors_needed is None else f"{u.visitors_needed:,}",
        }
        for u in lift
    ]


@task(name="write-monitor-report")
def write_monitor_report(report: dict, drift: list[FeatureDrift], folder: Path) -> Path:
    """report.json, drift_report.html, and the Prefect artifacts that point at them."""
    performance = [VariantPerformance.model_validate(p) for p in report["live"]]
    lift = [Uplift.model_validate(u) for u in report["uplift"]]
    decision = report["decision"]
    verdict = "RETRAIN" if decision["retrain"] else "no retraining"
    (folder / "report.json").write_text(_json(report))
    figures = "".join(
        figure_html(r.feature, r.feature, drift_figure(r), plotted_values(r)) for r in drift
    )
    live_png = live_figure(performance) if performance else None
    page = f"""<!doctype html><html><head><meta charset="utf-8">
<title>Monitoring {html.escape(report["run_id"])}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:90%}}figure{{display:inline-block}}</style>
</head><body>
<h1>Monitoring: {verdict}</h1>
<p>Published version <code>{html.escape(report["published_version"])}</code>; reference
window {html.escape(str(report["windows"]["reference_start"]))} →
{html.escape(str(report["windows"]["data_until"]))} ({report["windows"]["reference_events"]:,}
events), current window since then ({report["windows"]["current_events"]:,} events).</p>
<h2>Decision</h2>{html_table([{"cause": c} for c in decision["causes"]])}
<p>Held back by the cooldown: {html.escape("; ".join(decision["suppressed"]) or "nothing")}</p>
<p>Retraining: {html.escape(str(report.get("retraining") or "not started"))}</p>
<h2>Unknown users and products</h2>{html_table([report["unknown"]])}
<h2>Live performance</h2>{html_table(performance_rows(performance))}
{f'<img alt="live performance" src="data:image/png;base64,{live_png}">' if live_png else ""}
<h2>A/B test: model against control</h2>{html_table(uplift_rows(lift))}
<h2>Drift per feature</h2>{html_table(drift_rows(drift))}
{figures}
</body></html>"""
    page_path = folder / "drift_report.html"
    page_path.write_text(page)
    create_table_artifact(
        key="drift", table=drift_rows(drift), description=f"drift per feature; page: {page_path}"
    )
    create_markdown_artifact(
        key="monitoring",
        markdown=(
            f"## Monitoring: {verdict}\n\n"
            + "".join(f"- {c}\n" for c in decision["causes"])
            + "".join(f"- held back by the cooldown: {c}\n" for c in decision["suppressed"])
            + f"\nretraining: {report.get('retraining') or 'not started'}\n\n"
            + _markdown_table(performance_rows(performance))
            + "\n"
            + _markdown_table(uplift_rows(lift))
            + f"\nreport: `{page_path}`\n"
        ),
    )
    return page_path


def _markdown_table(rows: list[dict]) -> str:
    if not rows:
        return ""
    head = "| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]) + "\n"
    return head + "".join("| " + " | ".join(str(v) for v in r.values()) + " |\n" for r in rows)


def _json(report: dict) -> str:
    return json.dumps(report, indent=2, default=str)
