"""The run's metrics.json: every candidate's metrics, the gate decision, what was published.

The keys `candidates`, `published` and `gate` are read by other programs (the published
version carries the same document): MetricsDocument keeps every key, and its JSON Schema
(docs/schemas/metrics.schema.json) is generated from it and checked against real runs.
"""

from __future__ import annotations

from datetime import datetime

from prefect import task
from pydantic import ConfigDict, Field

from tasks.config_schema import StrictModel
from tasks.evaluation.canary import RefitCheck
from tasks.evaluation.gate import GateDecision
from tasks.evaluation.metrics import CandidateMetrics
from tasks.evaluation.settle import BlendSettlement
from tasks.evaluation.stored_champion import StoredChampion
from tasks.run_context import RunFolder, Snapshot, Split
from tasks.training.tune import TuningResult

REFIT_NOTE = (
    "the metrics are those of the model trained on the split (test transactions held out); "
    "the published lists come from the same configuration refit on all data, the held-out "
    "latest transactions included"
)


class Strict(StrictModel):
    """A record of the metrics document: unknown keys refused, aliased keys by name too."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class GateRecord(Strict):
    """The gate's decision as recorded: passed, the reason of every check, and each check."""

    passed: bool
    reasons: list[str]
    candidate: str
    baseline: str
    metric: str
    checks: dict[str, bool]
    champion: str | None = None  # the champion version compared with, if any
    not_judged: dict[str, str] = Field(
        {}, description="checks that could not be judged (check -> why), never skipped silently"
    )
    relaxed: list[str] = Field(
        [], description="gate settings weaker than the defaults (empty: the default gate)"
    )
    relaxed_on_purpose: str | None = Field(None, description="why the gate was relaxed")

    @classmethod
    def of(cls, decision: GateDecision) -> GateRecord:
        return cls.model_validate(decision.model_dump())


class PublishedModelRecord(Strict):
    refit_on_all_data: bool = True
    note: str = REFIT_NOTE
    lightfm_continued_epochs: int | None = Field(
        None, description="the refit's LightFM epochs from the evaluated model (None: scratch)"
    )
    deterministic: bool | None = Field(
        None,
        description="every fit repeatable (LightFM single-threaded per fit); false: Hogwild "
        "threads, two runs on the same inputs publish different lists (None: older runs)",
    )


class TuningRecord(Strict):
    chosen: dict = Field(description="the chosen model configuration (ModelConfig)")
    validation_ndcg: dict[str, float] = Field(alias="validation_NDCG@10")
    lightfm_trials: int
    lightfm_choice: dict
    blend_trials: int

    @classmethod
    def of(cls, tuning: TuningResult) -> TuningRecord:
        return cls(
            chosen=tuning.config.model_dump(mode="json"),
            validation_ndcg=tuning.validation_ndcg,
            lightfm_trials=len(tuning.lightfm_trials),
            lightfm_choice=tuning.lightfm_choice,
            blend_trials=len(tuning.blend_trials),
        )


class SplitRecord(Strict):
    rule: str
    validation_users: int
    test_users: int
    test_repeat_purchases_not_rankable: int
    train_events: int
    holdout_removed_events: int = Field(
        0, description="events before a held-out transaction that the holdout rule removed"
    )
    holdout_removed_share: float = Field(
        0.0, description="... as a share of all events before the held-out transactions"
    )

    @classmethod
    def of(cls, split: Split) -> SplitRecord:
        return cls(
            rule=split.rule,
            validation_users=split.n_validation_users,
            test_users=split.n_test_users,
            test_repeat_purchases_not_rankable=split.n_test_repeat,
            train_events=split.n_train_events,
            holdout_removed_events=split.n_holdout_removed,
            holdout_removed_share=split.holdout_removed_share,
        )


class DataRecord(Strict):
    counts: dict[str, int]
    fingerprint: str
    data_until: datetime | None = Field(None, description="the newest event of the snapshot")


class MetricsDocument(Strict):
    """metrics.json of a run and of a published version."""

    candidates: dict[str, CandidateMetrics]
    published: str | None = Field(description="the candidate published (None: refused)")
    gate: GateRecord
    published_model: PublishedModelRecord
    tuning: TuningRecord | None
    split: SplitRecord
    data: DataRecord
    run_id: str
    trigger: str | None = Field(
        description="why the run was started (None: scheduled or started by hand)"
    )
    already_published: str | None = Field(
        None, description="a rerun that found this version published (no retraining)"
    )
    refit_check: RefitCheck | None = Field(
        None, description="the published (refit) model's check before publication (canary)"
    )
    stored_champion: StoredChampion | None = Field(
        None, description="the challenger against the champion's stored model (gate (b))"
    )
    blend_settlement: BlendSettlement | None = Field(
        None,
        description="the tuned blend against each candidate alone on the test users; when "
        "one alone was better, it is what was judged",
    )

    def to_json(self) -> str:
        """The file's text: keys by their on-disk names; `already_published` only on a
        rerun that found its version."""
        unset = {
            name
            for name in ("already_published", "refit_check", "stored_champion")
            if getattr(self, name) is None
        }
        return self.model_dump_json(by_alias=True, indent=2, exclude=unset)


def metrics_document(
    metrics: dict[str, CandidateMetrics],
    decision: GateDecision,
    split: Split,
    snapshot: Snapshot,
    run: RunFolder,
    tuning: TuningResult | None = None,
    trigger: str | None = None,
    continued_epochs: int | None = None,
    stored_champion: StoredChampion | None = None,
    deterministic: bool | None = None,
    blend_settlement: BlendSettlement | None = None,
) -> MetricsDocument:
    """trigger: why the run was started (None for scheduled and hand-started runs);
    continued_epochs: the refit's LightFM epochs from the evaluated model (None: from
    scratch)."""
    return MetricsDocument(
        candidates=metrics,
        published=decision.candidate if decision.passed else None,
        gate=GateRecord.of(decision),
        published_model=PublishedModelRecord(
            lightfm_continued_epochs=continued_epochs, deterministic=deterministic
        ),
        tuning=TuningRecord.of(tuning) if tuning else None,
        split=SplitRecord.of(split),
        data=DataRecord(
            counts=snapshot.counts,
            fingerprint=snapshot.fingerprint,
            data_until=snapshot.high_water_mark,
        ),
        run_id=run.run_id,
        trigger=trigger,
        stored_champion=stored_champion,
        blend_settlement=blend_settlement,
    )


@task(name="write-run-metrics")
def write_run_metrics(document: MetricsDocument, run: RunFolder) -> MetricsDocument:
    run.sub("metrics.json").write_text(document.to_json())
    return document
