"""The nightly flow: extract → validate → split → features → tune → train → evaluate → gate
→ refit → register → publish.

python -m flows.nightly --help
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from prefect import flow, get_run_logger, runtime

from flows.cli import parse_params, run_cli
from flows.params import NightlyParams
from flows.publish import publish
from tasks.dataset import DatasetSpec
from tasks.errors import GateRefusedError
from tasks.evaluation.evaluate import evaluate_candidates
from tasks.evaluation.gate import gate
from tasks.evaluation.run_report import metrics_document, write_run_metrics
from tasks.features.build import build_features
from tasks.features.split import split_events
from tasks.ingest.central import commit_central
from tasks.ingest.extract import extract
from tasks.locking import exclusive_run
from tasks.publishing.publish import Publication, published_data_counts
from tasks.publishing.release import finish_if_published
from tasks.reporting.data_report import write_data_report
from tasks.reporting.evaluation_report import write_evaluation_report
from tasks.reporting.run_index import write_index
from tasks.reporting.summary import RunSummary
from tasks.run_context import RunFolder, Snapshot
from tasks.training.champion import with_champion
from tasks.training.registry import (
    RegistryEntry,
    artifact_path,
    current_champion,
    mark_published,
    promote_champion,
    register_model,
)
from tasks.training.train import BLEND, POPULARITY, train_candidates
from tasks.training.tune import tune
from tasks.validation.validate import validate_snapshot
from tasks.versions import run_inputs, run_version

__all__ = ["GateRefusedError", "RunSummary", "main", "nightly"]


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
    summary = RunSummary.of_data(run.run_id, run.path, snapshot, validation, params.reason)
    # Same snapshot, same settings, same code: same version id, found published and intact.
    version = run_version(
        snapshot.fingerprint, snapshot.high_water_mark, run_inputs(params, dataset)
    )
    if done := finish_if_published(params.data_root, version, run, params.reason):
        write_index(params.data_root)
        return summary.found_published(*done)

    data_report = write_data_report(snapshot, dataset, run)
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
    candidates = train_candidates(
        split.train_events,
        features=features["evaluate"],
        config=tuning.config,
        keep_states=params.refit_epochs is not None,
        **common,
    )
    champion = current_champion(params.data_root)
    candidates = with_champion(
        candidates, champion, tuning.config, split.train_events, features["evaluate"], **common
    )
    metrics = evaluate_candidates(
        candidates, split, snapshot, dataset, run, max_users=params.max_test_users, seed=params.seed
    )
    decision = gate(
        metrics,
        BLEND,
        POPULARITY,
        params.gate,
        run.path / "evaluation" / "per_user_ndcg.parquet",
        champion.version if champion else None,
    )
    continued = params.continued_epochs(tuning.config.lightfm.epochs)
    document = metrics_document(
        metrics,
        decision,
        split,
        snapshot,
        run,
        tuning,
        trigger=params.reason,
        continued_epochs=continued,
    )
    write_run_metrics(document, run)
    summary = summary.judged(metrics, tuning, decision, data_report.path)
    register = partial(
        register_model,
        data_root=params.data_root,
        version=version,
        run_id=run.run_id,
        config=tuning.config.model_dump(mode="json"),
        metrics=metrics[BLEND],
        gate=document["gate"],
        data_fingerprint=snapshot.fingerprint,
    )
    if not decision.passed:
        report = write_evaluation_report(document, snapshot, dataset, run)
        register(
            model_path=candidates[BLEND].vectors,
            refit_on_all_data=False,
            published=False,
            created_at=datetime.now(UTC),
        )
        write_index(params.data_root)
        raise GateRefusedError(
            summary.model_copy(update={"evaluation_report": report.path}).render()
        )

    # The gate judged the model trained without the test purchases; the published one
    # is refit with the same settings on everything, so the latest purchases count too
    # (LightFM continues from the judged model for a few epochs: refit_epochs).
    final = train_candidates(
        snapshot.tables["events"],
        features=features["final"],
        config=tuning.config,
        stage="final",
        only_blend=True,
        continue_from=candidates,
        continue_epochs=continued,
        **common,
    )
    publication = release(
        register, final[BLEND].vectors, params, version, snapshot, dataset, document
    )
    report = write_evaluation_report(document, snapshot, dataset, run, publication.recommendations)
    write_index(params.data_root)
    return summary.published_as(publication, report.path)


def release(
    register: Callable[..., RegistryEntry],
    model_path: Path,
    params: NightlyParams,
    version: str,
    snapshot: Snapshot,
    dataset: DatasetSpec,
    document: dict,
) -> Publication:
    """Register the refit model, publish from the registry's copy (every scoring process
    loads the model only if its files still hash to what the registry recorded), then make
    it the champion; `published: true` in the registry is written last, meaning all done."""
    created_at = datetime.now(UTC)
    entry = register(
        model_path=model_path, refit_on_all_data=True, published=False, created_at=created_at
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
    mark_published(params.data_root, version)
    return publication


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
