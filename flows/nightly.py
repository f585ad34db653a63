"""The nightly flow: extract → validate → features → split → train → evaluate → gate → publish.

python -m flows.nightly --help
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger, runtime
from pydantic import BaseModel

from flows.cli import parse_params, run_cli
from flows.params import NightlyParams
from flows.publish import publish
from tasks.dataset import DatasetSpec
from tasks.errors import GateRefusedError
from tasks.evaluation.evaluate import evaluate_candidates
from tasks.evaluation.gate import CHAMPION, gate
from tasks.evaluation.run_report import metrics_document, write_run_metrics
from tasks.features.build import build_features
from tasks.features.split import split_events
from tasks.ingest.central import commit_central
from tasks.ingest.extract import extract
from tasks.locking import exclusive_run
from tasks.publishing.publish import (
    Publication,
    find_publication,
    published_data_counts,
    switch_latest,
)
from tasks.reporting.data_report import write_data_report
from tasks.reporting.evaluation_report import write_evaluation_report
from tasks.reporting.run_index import write_index
from tasks.run_context import RunFolder
from tasks.training.registry import (
    artifact_path,
    current_champion,
    find_entry,
    mark_published,
    promote_champion,
    register_model,
)
from tasks.training.train import BLEND, POPULARITY, ModelConfig, train_candidates
from tasks.training.tune import tune
from tasks.validation.validate import validate_snapshot
from tasks.versions import run_inputs, run_version


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
    metrics: dict[str, dict[str, float]]
    chosen_blend: dict[str, float] = {}
    reason: str | None = None
    gate_passed: bool
    gate_reasons: list[str]
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
        for name, m in self.metrics.items():
            lines.append(
                f"{name:>22}: NDCG@10 {m['NDCG@10']:.4f}  HR@10 {m['HR@10']:.4f}  "
                f"precision@10 {m['precision@10']:.4f}  recall@10 {m['recall@10']:.4f}"
            )
        if self.chosen_blend:
            lines.append(f"blend (tuned on the validation transaction): {self.chosen_blend}")
        lines.append(f"gate: {'PASSED' if self.gate_passed else 'REFUSED'}")
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


@flow(name="nightly")
def nightly(params: NightlyParams = NightlyParams()) -> RunSummary:  # noqa: B008 (the UI form)
    """Turn the shop's data into published top-N recommendations, if the model earns it.
    One run at a time per data root (RunInProgressError for a second one)."""
    with exclusive_run(params.data_root, "nightly"):
        return _nightly(params)


def _nightly(params: NightlyParams) -> RunSummary:
    source = params.resolved_source()
    dataset = DatasetSpec.from_toml(params.resolved_dataset_config(source))  # before any I/O
    run = RunFolder.new(params.data_root, runtime.flow_run.id)
    if params.reason:
        get_run_logger().info("started because: %s", params.reason)

    incremental = params.extraction == "incremental"
    snapshot = extract.with_options(retries=params.source_retries)(
        source, dataset, run, params.max_unjoined_share, incremental, params.late_arrival_hours
    )
    snapshot, validation = validate_snapshot(
        snapshot,
        dataset,
        run,
        params.max_quarantine_share,
        previous_counts=published_data_counts(params.data_root),
    )
    commit_central(
        params.data_root,
        run,
        snapshot.new_events,
        not incremental,
        snapshot.high_water_mark,
        snapshot.sources,
    )
    summary = RunSummary(
        run_id=run.run_id,
        run_folder=run.path,
        counts=snapshot.counts,
        quarantined=snapshot.quarantined,
        row_accounting={t: a.model_dump() for t, a in validation.accounts.items()},
        data_docs=validation.data_docs,
        new_events=snapshot.n_new_events,
        already_ingested=snapshot.n_already_ingested,
        ignored_event_types=snapshot.ignored_event_types,
        reason=params.reason,
        metrics={},
        gate_passed=False,
        gate_reasons=[],
    )
    # Same snapshot, same settings, same code: same version id. If it is published and
    # intact, the rerun has nothing to do (and finishes a publication a kill interrupted).
    version = run_version(
        snapshot.fingerprint, snapshot.high_water_mark, run_inputs(params, dataset)
    )
    if (done := _finish_if_published(params.data_root, version, summary, run)) is not None:
        write_index(params.data_root)
        return done

    summary.data_report = write_data_report(snapshot, dataset, run).path
    split = split_events(snapshot, dataset, run, params.holdout_gap_hours, params.split_cutoff)
    # Behaviour features per stage, each from that stage's training events only.
    features = {
        stage: build_features(snapshot, dataset, run, events, stage)
        for stage, events in (
            ("tune", split.tune_train_events),
            ("evaluate", split.train_events),
            ("final", snapshot.tables["events"]),
        )
    }
    common = dict(
        snapshot=snapshot,
        dataset=dataset,
        seed=params.seed,
        num_threads=params.num_threads,
        run=run,
    )
    tuning = tune(
        split,
        features=features["tune"],
        config=params.starting_models(),
        params=params.tuning,
        min_coverage=params.gate.min_coverage,
        **common,
    )
    training = common | {"config": tuning.config}
    candidates = train_candidates(
        split.train_events,
        features=features["evaluate"],
        **training,
        keep_states=params.refit_epochs is not None,
    )
    champion = current_champion(params.data_root)
    if champion is not None and ModelConfig.model_validate(champion.config) == tuning.config:
        # Same configuration, same split, same seed: its retraining is the challenger.
        candidates[CHAMPION] = candidates[BLEND]
    elif champion is not None:
        # Re-trained on this split with its own configuration: its stored artifact has
        # seen today's test purchases, so scoring it as-is would flatter it.
        rerun = train_candidates(
            split.train_events,
            features=features["evaluate"],
            **common,
            config=ModelConfig.model_validate(champion.config),
            stage="champion",
            only_blend=True,
        )
        candidates[CHAMPION] = rerun[BLEND]
    metrics = evaluate_candidates(
        candidates,
        split,
        snapshot,
        dataset,
        run,
        max_users=params.max_test_users,
        seed=params.seed,
    )
    decision = gate(
        metrics,
        BLEND,
        POPULARITY,
        params.gate,
        run.path / "evaluation" / "per_user_ndcg.parquet",
        champion.version if champion else None,
    )
    document = metrics_document(metrics, decision, split, snapshot, run, tuning)
    document["trigger"] = params.reason  # None for scheduled and hand-started runs
    continued_epochs = (
        min(params.refit_epochs, tuning.config.lightfm.epochs) if params.refit_epochs else None
    )  # the refit's LightFM epochs from the evaluated model (None: from scratch)
    document["published_model"]["lightfm_continued_epochs"] = continued_epochs
    write_run_metrics(document, run)

    summary.metrics = {name: {k: float(v) for k, v in m.items()} for name, m in metrics.items()}
    summary.chosen_blend = tuning.config.blend
    summary.gate_passed = decision.passed
    summary.gate_reasons = decision.reasons
    registration = dict(
        data_root=params.data_root,
        run_id=run.run_id,
        config=tuning.config.model_dump(mode="json"),
        metrics=metrics[BLEND],
        gate=document["gate"],
        data_fingerprint=snapshot.fingerprint,
    )
    if not decision.passed:
        summary.evaluation_report = write_evaluation_report(document, snapshot, dataset, run).path
        register_model(
            model_path=candidates[BLEND].vectors,
            version=version,
            refit_on_all_data=False,
            published=False,
            created_at=datetime.now(UTC),
            **registration,
        )
        write_index(params.data_root)
        raise GateRefusedError(summary.render())

    # The gate judged the model trained without the test purchases; the published one
    # is refit with the same settings on everything, so the latest purchases count too
    # (LightFM continues from the judged model for a few epochs: refit_epochs).
    final = train_candidates(
        snapshot.tables["events"],
        features=features["final"],
        **training,
        stage="final",
        only_blend=True,
        continue_from=candidates,
        continue_epochs=continued_epochs,
    )
    # Registered first, then published from the registry's copy: every scoring process
    # loads the model only if its files still hash to what the registry recorded.
    created_at = datetime.now(UTC)
    entry = register_model(
        model_path=final[BLEND].vectors,
        version=version,
        refit_on_all_data=True,
        published=False,
        created_at=created_at,
        **registration,
    )
    publication = publish(
        artifact_path(params.data_root, version),
        snapshot,
        dataset,
        document,
        params.top_n,
        params.data_root,
        params.publishing,
        model_sha256=entry.artifact_sha256,
        version=version,
        created_at=created_at,
    )
    promote_champion(params.data_root, publication.version)
    mark_published(params.data_root, version)  # last: `published: true` means all done
    summary.evaluation_report = write_evaluation_report(
        document, snapshot, dataset, run, publication.recommendations
    ).path
    summary.published_version = publication.version
    summary.published_path = publication.recommendations
    summary.users_per_tier = publication.users_per_tier
    summary.catalog_coverage_per_tier = publication.catalog_coverage_per_tier
    write_index(params.data_root)
    return summary


def _finish_if_published(
    data_root: Path, version: str, summary: RunSummary, run: RunFolder
) -> RunSummary | None:
    """If `version` is registered and its publication is complete and intact, finish what a
    killed run may have left (the `latest` switch, the champion, the registry's flag),
    record in this run's metrics.json which version it found, and return the summary of
    that publication; otherwise None (the run goes on)."""
    entry = find_entry(data_root, version)
    if entry is None:
        return None
    publication: Publication | None = find_publication(data_root, version, entry.artifact_sha256)
    if publication is None:
        return None
    if not entry.published:  # killed after the folder was complete: finish the switch
        switch_latest(Path(data_root) / "published", version)
        promote_champion(data_root, version)
        mark_published(data_root, version)
    document = json.loads((publication.path / "metrics.json").read_text())
    write_run_metrics(
        document | {"run_id": run.run_id, "already_published": version, "trigger": summary.reason},
        run,
    )
    return summary.model_copy(
        update={
            "already_published": True,
            "metrics": document["candidates"],
            "chosen_blend": (document.get("tuning") or {}).get("chosen", {}).get("blend", {}),
            "gate_passed": document["gate"]["passed"],
            "gate_reasons": document["gate"]["reasons"],
            "published_version": publication.version,
            "published_path": publication.recommendations,
            "users_per_tier": publication.users_per_tier,
            "catalog_coverage_per_tier": publication.catalog_coverage_per_tier,
        }
    )


def main(argv: list[str] | None = None) -> int:
    params = parse_params(
        NightlyParams,
        argv,
        prog="python -m flows.nightly",
        description="Run the nightly recommendation pipeline once.",
    )
    return run_cli(lambda: nightly(params), RunSummary.render)


if __name__ == "__main__":
    raise SystemExit(main())
