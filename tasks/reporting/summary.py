"""What a nightly run did, built from the stages' results: the summary the command line
prints and the flow returns (and, refused, the message of GateRefusedError)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from tasks.evaluation.gate import GateDecision
from tasks.evaluation.metrics import CandidateMetrics
from tasks.evaluation.run_report import MetricsDocument
from tasks.evaluation.settle import BlendSettlement
from tasks.publishing.publish import Publication
from tasks.run_context import RunFolder, Snapshot, Split
from tasks.training.train import ModelConfig
from tasks.validation.validate import ValidationReport


class RunSummary(BaseModel):
    run_id: str
    run_folder: Path
    counts: dict[str, int]
    quarantined: dict[str, int] = {}
    row_accounting: dict[str, dict] = {}
    data_docs: Path | None = None
    data_report: Path | None = None
    evaluation_report: Path | None = None
    new_events: int = 0
    already_ingested: int = 0
    ignored_event_types: dict[str, int] = {}
    metrics: dict[str, CandidateMetrics]
    chosen_blend: dict[str, float] = {}
    blend_settlement: str | None = None  # the tuned blend against each candidate alone
    reason: str | None = None
    gate_passed: bool
    gate_reasons: list[str]
    gate_relaxed: list[str] = []  # gate settings weaker than the defaults
    deterministic: bool | None = None  # training repeatable (None: not trained)
    split_rule: str | None = None  # how the evaluation split held transactions out
    holdout_removed: int = 0  # events before a held-out transaction the rule removed
    holdout_removed_share: float | None = None  # ... of those before the held-out ones
    published_version: str | None = None
    published_path: Path | None = None
    users_per_tier: dict[str, int] = {}
    catalog_coverage_per_tier: dict[str, float] = {}
    already_published: bool = False

    def render(self) -> str:
        lines = [
            f"run {self.run_id} ({self.run_folder})",
            *([f"started because: {self.reason}"] if self.reason else []),
            "data: " + ", ".join(f"{n:,} {table}" for table, n in self.counts.items()),
        ]
        if self.already_ingested:
            lines.append(
                f"incremental: {self.new_events:,} new events, "
                f"{self.already_ingested:,} already in the central dataset"
            )
        for table, account in self.row_accounting.items():
            line = (
                f"{table}: read {account['read']:,} = clean {account['clean']:,} "
                f"+ quarantined {account['quarantined']:,}"
            )
            reasons = "; ".join(f"{n:,} {r}" for r, n in account["reasons"].items())
            lines.append(line + (f" ({reasons})" if reasons else ""))
        if self.data_docs:
            lines.append(f"data docs: {self.data_docs / 'index.html'}")
        if self.data_report:
            lines.append(f"data report: {self.data_report}")
        if self.evaluation_report:
            lines.append(f"evaluation report: {self.evaluation_report}")
        if self.ignored_event_types:
            lines.append(
                f"event types ignored (no weight in dataset.toml): {self.ignored_event_types}"
            )
        if self.split_rule:
            lines.append(f"split: {self.split_rule}")
        if self.holdout_removed_share is not None:
            lines.append(
                f"holdout: {self.holdout_removed:,} training events removed, "
                f"{self.holdout_removed_share:.1%} of those before the held-out transactions"
            )
        for name, m in self.metrics.items():
            lines.append(
                f"{name:>22}: NDCG@10 {m.ndcg_at_10:.4f}  HR@10 {m.hr_at_10:.4f}  "
                f"precision@10 {m.precision_at_10:.4f}  recall@10 {m.recall_at_10:.4f}"
            )
        if self.chosen_blend:
            lines.append(f"blend judged: {self.chosen_blend}")
        if self.blend_settlement:
            lines.append(f"  ({self.blend_settlement})")
        if self.deterministic is not None:
            lines.append(
                "training: repeatable (the same inputs publish the same lists)"
                if self.deterministic
                else "training: Hogwild LightFM (--hogwild): NOT repeatable, a rerun on the "
                "same inputs publishes different lists"
            )
        relaxed = f" (RELAXED gate: {'; '.join(self.gate_relaxed)})" if self.gate_relaxed else ""
        lines.append(f"gate: {'PASSED' if self.gate_passed else 'REFUSED'}{relaxed}")
        lines += [f"  - {reason}" for reason in self.gate_reasons]
        if self.already_published:
            lines.append(
                "already published from this snapshot with these settings: nothing retrained"
            )
        if self.published_path:
            lines.append(f"published: {self.published_path} (version {self.published_version})")
            tiers = ", ".join(
                f"{n:,} {tier} (catalogue coverage {self.catalog_coverage_per_tier[tier]:.0%})"
                for tier, n in self.users_per_tier.items()
            )
            lines.append(f"users per tier: {tiers}")
        else:
            lines.append("published: nothing (the previous `latest` stays)")
        return "\n".join(lines)

    @classmethod
    def of_data(
        cls,
        run: RunFolder,
        snapshot: Snapshot,
        validation: ValidationReport,
        reason: str | None,
    ) -> RunSummary:
        """What was read, kept and quarantined; nothing judged yet."""
        return cls(
            run_id=run.run_id,
            run_folder=run.path,
            counts=snapshot.counts,
            quarantined=snapshot.quarantined,
            row_accounting={t: a.model_dump() for t, a in validation.accounts.items()},
            data_docs=validation.data_docs,
            new_events=snapshot.n_new_events,
            already_ingested=snapshot.n_already_ingested,
            ignored_event_types=snapshot.ignored_event_types,
            reason=reason,
            metrics={},
            gate_passed=False,
            gate_reasons=[],
        )

    def split_by(self, split: Split) -> RunSummary:
        """With the evaluation split's rule and what its holdout removed."""
        return self.model_copy(
            update={
                "split_rule": split.rule,
                "holdout_removed": split.n_holdout_removed,
                "holdout_removed_share": split.holdout_removed_share,
            }
        )

    def judged(
        self,
        metrics: dict[str, CandidateMetrics],
        config: ModelConfig,
        decision: GateDecision,
        data_report: Path,
        deterministic: bool | None = None,
        settlement: BlendSettlement | None = None,
    ) -> RunSummary:
        """With every candidate's metrics, the blend judged and the gate's decision."""
        return self.model_copy(
            update={
                "metrics": metrics,
                "chosen_blend": config.blend,
                "blend_settlement": settlement.describe() if settlement else None,
                "gate_passed": decision.passed,
                "gate_reasons": decision.reasons,
                "gate_relaxed": decision.relaxed,
                "data_report": data_report,
                "deterministic": deterministic,
            }
        )

    def published_as(
        self, publication: Publication, evaluation_report: Path | None = None
    ) -> RunSummary:
        """With the version that now serves."""
        return self.model_copy(
            update={
                "evaluation_report": evaluation_report or self.evaluation_report,
                "published_version": publication.version,
                "published_path": publication.recommendations,
                "users_per_tier": publication.users_per_tier,
                "catalog_coverage_per_tier": publication.catalog_coverage_per_tier,
            }
        )

    def found_published(self, publication: Publication, document: MetricsDocument) -> RunSummary:
        """A rerun that found its version published: that publication's figures."""
        return self.published_as(publication).model_copy(
            update={
                "already_published": True,
                "metrics": document.candidates,
                "chosen_blend": (
                    document.blend_settlement.judged
                    if document.blend_settlement
                    else document.tuning.chosen.get("blend", {})
                    if document.tuning
                    else {}
                ),
                "blend_settlement": (
                    document.blend_settlement.describe() if document.blend_settlement else None
                ),
                "gate_passed": document.gate.passed,
                "gate_reasons": document.gate.reasons,
                "gate_relaxed": document.gate.relaxed,
                "deterministic": document.published_model.deterministic,
            }
        )
