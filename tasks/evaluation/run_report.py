"""The run's metrics.json: every candidate's metrics, the gate decision, what was published."""

from __future__ import annotations

import json
from pathlib import Path

from prefect import task

from tasks.evaluation.gate import GateDecision
from tasks.run_context import RunFolder, Snapshot, Split
from tasks.training.tune import TuningResult


def metrics_document(
    metrics: dict[str, dict[str, float]],
    decision: GateDecision,
    split: Split,
    snapshot: Snapshot,
    run: RunFolder,
    tuning: TuningResult | None = None,
    trigger: str | None = None,
    continued_epochs: int | None = None,
) -> dict:
    """The keys `candidates`, `published` and `gate` are read by other programs: keep them.
    trigger: why the run was started (None for scheduled and hand-started runs);
    continued_epochs: the refit's LightFM epochs from the evaluated model (None: from
    scratch)."""
    return {
        "candidates": metrics,
        "published": decision.candidate if decision.passed else None,
        "gate": {
            "passed": decision.passed,
            "reasons": decision.reasons,
            "candidate": decision.candidate,
            "baseline": decision.baseline,
            "metric": decision.metric,
            "checks": decision.checks,
            "champion": decision.champion,
        },
        "published_model": {
            "refit_on_all_data": True,
            "note": "the metrics are those of the model trained on the split (test "
            "transactions held out); the published lists come from the same configuration "
            "refit on all data, the held-out latest transactions included",
            "lightfm_continued_epochs": continued_epochs,
        },
        "tuning": (
            {
                "chosen": tuning.config.model_dump(mode="json"),
                "validation_NDCG@10": tuning.validation_ndcg,
                "lightfm_trials": len(tuning.lightfm_trials),
                "lightfm_choice": tuning.lightfm_choice,
                "blend_trials": len(tuning.blend_trials),
            }
            if tuning
            else None
        ),
        "split": {
            "rule": split.rule,
            "validation_users": split.n_validation_users,
            "test_users": split.n_test_users,
            "test_repeat_purchases_not_rankable": split.n_test_repeat,
            "train_events": split.n_train_events,
        },
        "data": {"counts": snapshot.counts, "fingerprint": snapshot.fingerprint},
        "run_id": run.run_id,
        "trigger": trigger,
    }


@task(name="write-run-metrics")
def write_run_metrics(document: dict, run: RunFolder) -> Path:
    path = run.sub("metrics.json")
    path.write_text(json.dumps(document, indent=2))
    return path
