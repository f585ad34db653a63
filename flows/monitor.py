"""The monitor flow: has the world moved since the published model was trained?

read what is published → extract the shop's data → drift and unknown shares → live
performance (per A/B variant) → decide → report → retrain through Prefect if needed.

python -m flows.monitor --help
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, runtime
from prefect.deployments import run_deployment
from pydantic import BaseModel, Field

from flows.cli import parse_params, run_cli
from flows.nightly import GateRefusedError, nightly
from flows.params import NightlyParams
from tasks.dataset import DatasetSpec
from tasks.ingest.extract import extract
from tasks.monitoring.drift import DriftThresholds, FeatureDrift
from tasks.monitoring.live_metrics import Uplift, VariantPerformance
from tasks.monitoring.measure import (
    Decision,
    LiveThresholds,
    Windows,
    decide_retraining,
    known_tables,
    load_state,
    measure_drift,
    measure_live_performance,
    read_published,
    remember_retrain,
    save_state,
)
from tasks.reporting.monitor_report import write_monitor_report
from tasks.reporting.run_index import write_index
from tasks.run_context import RunFolder


class MonitorParams(BaseModel):
    """What monitoring watches, its thresholds, and how it retrains."""

    nightly: NightlyParams = Field(
        default_factory=NightlyParams,
        description="where the shop's data is (source, data_root) and what a retraining run "
        "is told",
    )
    reference_days: float = Field(
        28.0, gt=0, le=3650, description="the training data's last days compared with now"
    )
    shown: int = Field(10, ge=1, le=500, description="recommendations a visitor sees")
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    live: LiveThresholds = Field(default_factory=LiveThresholds)
    cooldown_hours: float = Field(
        72.0, ge=0, le=24 * 365, description="a cause that retrained is ignored this long"
    )
    retrain: Literal["auto", "deployment", "inline", "off"] = Field(
        "auto",
        description="deployment: run the `nightly` deployment; inline: run nightly as a "
        "subflow here; auto: the deployment if it exists, else inline; off: report only",
    )
    deployment: str = Field("nightly/nightly", description="the deployment that retrains")


class Retraining(BaseModel):
    mode: str
    reason: str
    flow_run_id: str | None = None
    published_version: str | None = None
    refused: str | None = None  # the gate's words when it refused the retrained model


class MonitorReport(BaseModel):
    run_id: str
    folder: Path
    published_version: str
    windows: Windows
    drift: list[FeatureDrift]
    unknown: dict[str, float]
    live: list[VariantPerformance]
    uplift: list[Uplift]
    decision: Decision
    retraining: Retraining | None = None
    report: Path | None = None

    def render(self) -> str:
        lines = [
            f"monitoring {self.run_id}: published {self.published_version}, "
            f"{self.windows.current_events:,} events since "
            f"{self.windows.data_until:%Y-%m-%d %H:%M}",
        ]
        lines += [
            f"  drifted: {d.feature} {d.statistic} {d.value:.3f}" for d in self.drift if d.drifted
        ]
        lines.append(
            f"  unknown users {self.unknown['unknown_user_share']:.1%}, "
            f"unknown products {self.unknown['unknown_product_share']:.1%} of events"
        )
        for p in self.live:
            lines.append(
                f"  {p.variant}: {p.visitors:,} visitors, "
                f"click-through {p.click_through.value:.3f}, "
                f"conversion {p.conversion.value:.3f}, hit rate {p.hit_rate.value:.3f}, "
                f"revenue/user {p.revenue_per_user.value:.2f}"
            )
        for u in self.uplift:
            needed = f"{u.visitors_needed:,}" if u.visitors_needed else "n/a"
            lines.append(
                f"  uplift {u.metric}: {u.difference:+.4f} [{u.low:+.4f}, {u.high:+.4f}]"
                f"{' significant' if u.significant else ''}; detectable ±{u.mde:.4f}, "
                f"visitors needed {needed}"
            )
        lines.append("decision: " + ("RETRAIN" if self.decision.retrain else "no retraining"))
        lines += [f"  - {c}" for c in self.decision.causes]
        lines += [f"  - held back: {c}" for c in self.decision.suppressed]
        if self.retraining:
            lines.append(f"retraining: {self.retraining.model_dump(exclude_none=True)}")
        if self.report:
            lines.append(f"report: {self.report}")
        return "\n".join(lines)


def _deployment_exists(name: str) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            client.read_deployment_by_name(name)
    except ObjectNotFound:
        return False
    return True


def retrain(params: MonitorParams, reason: str) -> Retraining:
    """Start `nightly` with the reason recorded in its parameters (and run name)."""
    mode = params.retrain
    if mode == "auto":
        mode = "deployment" if _deployment_exists(params.deployment) else "inline"
    nightly_params = params.nightly.model_copy(update={"reason": reason})
    if mode == "deployment":
        run = run_deployment(
            params.deployment,
            parameters={"params": nightly_params.model_dump(mode="json")},
            flow_run_name=f"retrain: {reason[:80]}",
            tags=["retrain"],
            timeout=0,  # do not wait: the nightly deployment runs on its own
        )
        return Retraining(mode=mode, reason=reason, flow_run_id=str(run.id))
    try:
        summary = nightly(nightly_params)
    except GateRefusedError as refused:
        return Retraining(mode=mode, reason=reason, refused=str(refused).splitlines()[-1])
    return Retraining(mode=mode, reason=reason, published_version=summary.published_version)


@flow(name="monitor")
def monitor(params: MonitorParams = MonitorParams()) -> MonitorReport:  # noqa: B008 (UI form)
    """Measure drift and live performance since the published model's training data; retrain
    when a threshold is passed (once per cause within the cooldown)."""
    data_root = Path(params.nightly.data_root)
    published = read_published(data_root, params.shown)
    run = RunFolder.new(data_root, runtime.flow_run.id, area="monitor")
    source = params.nightly.resolved_source()
    dataset = DatasetSpec.from_toml(params.nightly.resolved_dataset_config(source))
    snapshot = extract(source, dataset, run, max_unjoined_share=1.0)
    known = known_tables(data_root, published)
    drift, unknown, windows = measure_drift(
        snapshot, dataset, published, params.reference_days, params.drift, known
    )
    performance, lift = measure_live_performance(snapshot, dataset, published, params.shown)
    state = load_state(data_root)
    decision = decide_retraining(
        drift,
        unknown,
        performance,
        published,
        params.live,
        state,
        params.cooldown_hours,
        datetime.now(UTC),
    )
    report = MonitorReport(
        run_id=run.run_id,
        folder=run.path,
        published_version=published.version,
        windows=windows,
        drift=drift,
        unknown=unknown,
        live=performance,
        uplift=lift,
        decision=decision,
    )
    if decision.retrain and params.retrain != "off":
        reason = "monitoring: " + "; ".join(decision.causes)
        get_run_logger().warning("retraining: %s", reason)
        save_state(data_root, remember_retrain(state, decision, published.version))
        report.retraining = retrain(params, reason)
    report.report = write_monitor_report(report.model_dump(mode="json"), drift, run.path)
    write_index(data_root)
    return report


def main(argv: list[str] | None = None) -> int:
    params = parse_params(
        MonitorParams, argv, prog="python -m flows.monitor", description=monitor.__doc__ or ""
    )
    return run_cli(lambda: monitor(params), lambda report: report.render())


if __name__ == "__main__":
    raise SystemExit(main())
