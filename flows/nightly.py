"""The nightly flow: ingest (extract → validate → central dataset) → split → features →
tune → train (with the champion) → evaluate → gate → refit → check the refit (canary) →
register → publish → promote.

python -m flows.nightly --help
"""

from __future__ import annotations

import json

from prefect import flow, get_run_logger, runtime

from flows.cli import parse_params, run_cli
from flows.ingest import ingest
from flows.params import NightlyParams
from flows.publish import release
from tasks.dataset import DatasetSpec
from tasks.errors import GateRefusedError
from tasks.evaluation.canary import check_refit
from tasks.evaluation.evaluate import evaluate_candidates
from tasks.evaluation.gate import gate
from tasks.evaluation.run_report import metrics_document, write_run_metrics
from tasks.features.build import build_stage_features
from tasks.features.split import split_events
from tasks.locking import exclusive_run
from tasks.publishing.release import finish_if_published, refuse, refuse_refit
from tasks.reporting.data_report import write_data_report
from tasks.reporting.evaluation_report import write_evaluation_report
from tasks.reporting.run_index import write_index
from tasks.reporting.summary import RunSummary
from tasks.run_context import RunFolder
from tasks.training.champion import with_champion
from tasks.training.refit import refit
from tasks.training.registry import ModelRecord, current_champion
from tasks.training.train import BLEND, POPULARITY, train_candidates
from tasks.training.tune import tune
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
    record_inputs(run, params, source)
    if params.reason:
        get_run_logger().info("started because: %s", params.reason)

    # Ingest: read the source, set bad rows aside, keep the central dataset.
    snapshot, validation = ingest(source, dataset, run, params.ingest)
    summary = RunSummary.of_data(run, snapshot, validation, params.reason)
    # Same snapshot, same settings, same code: same version id, found published and intact.
    version = run_version(
        snapshot.fingerprint, snapshot.high_water_mark, run_inputs(params, dataset)
    )
    if done := finish_if_published(params.data_root, version, run, params.reason):
        return summary.found_published(*done)

    # Features: the split first, then each stage's features from its own training events.
    data_report = write_data_report(snapshot, dataset, run)
    split = split_events(
        snapshot, dataset, run, params.holdout(), params.split_cutoff, params.holdout_warn_share
    )
    summary = summary.split_by(split)
    features = build_stage_features(snapshot, dataset, run, split)

    # Training: tune on the validation transactions, train every candidate, and the champion.
    context = params.training(snapshot, dataset, run)
    models = params.starting_models()
    tuning = tune(split, features.tune, models, params.tuning, context, params.gate.min_coverage)
    keep_states = params.refit_epochs is not None  # the refit continues from these models
    candidates = train_candidates(
        split.train_events, features.evaluate, tuning.config, context, keep_states=keep_states
    )
    champion = current_champion(params.data_root)
    candidates = with_champion(
        candidates, champion, tuning.config, split.train_events, features.evaluate, context
    )

    # Evaluation and the gate: every candidate on the same test users, then the decision.
    evaluated = evaluate_candidates(
        candidates,
        split,
        snapshot,
        dataset,
        run,
        max_users=params.max_test_users,
        seed=params.seed,
        champion=champion,
    )
    metrics = evaluated.metrics
    candidates, config = evaluated.judged(candidates, tuning.config)  # the blend or one alone
    decision = gate(metrics, BLEND, POPULARITY, params.gate, run, evaluated.stored_champion)
    continued = params.continued_epochs(config.lightfm.epochs)
    document = write_run_metrics(
        metrics_document(
            metrics,
            decision,
            split,
            snapshot,
            run,
            tuning,
            params.reason,
            continued,
            evaluated.stored_champion,
            not params.hogwild,
            evaluated.blend_settlement,
        ),
        run,
    )
    summary = summary.judged(
        metrics, config, decision, data_report.path, not params.hogwild, evaluated.blend_settlement
    )
    record = ModelRecord.judged(version, document, BLEND, config)
    if not decision.passed:
        refuse(record, candidates[BLEND].vectors, document, summary, snapshot, dataset, run)

    # Refit on every event (LightFM continues from the judged model), then publish.
    final = refit(snapshot.tables["events"], features.final, config, candidates, continued, context)
    check = check_refit(candidates[BLEND], final, snapshot, dataset, params.gate, params.seed)
    document = write_run_metrics(document.model_copy(update={"refit_check": check}), run)
    refuse_refit(check, version, document, snapshot, dataset, run)
    publication = release(final.vectors, record, snapshot, dataset, document, params)
    report = write_evaluation_report(document, snapshot, dataset, run, publication.recommendations)
    write_index(params.data_root)
    return summary.published_as(publication, report.path)


def record_inputs(run: RunFolder, params: NightlyParams, source: str) -> None:
    """`inputs.json`: the parameters and the dataset.toml text the run was given."""
    document = {
        "params": params.model_dump(mode="json"),
        "dataset_toml": params.resolved_dataset_config(source).read_text(),
    }
    run.inputs.write_text(json.dumps(document, indent=2))


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
