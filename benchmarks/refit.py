"""Benchmark: the published model's refit continued from the evaluated model (the nightly's
`refit_epochs`) against training it again from scratch.

    python -m benchmarks.refit --preset demo --refit-epochs 1 3 5

The nightly refits on every event the model it evaluated had not seen (each user's test
transaction), so nothing is left to score that refit on. The benchmark moves the same
step one transaction back: the "evaluated" LightFM hybrid trains on the events before each
user's validation transaction, the refits add those transactions, and every model is
scored on the test transaction, which none of them saw (NDCG@10 over all products, bought
ones excluded). Prints one line per model; the LAST line is one JSON object; the same
figures go to docs/results/refit.json (`--results` for elsewhere) for docs/render.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
from prefect import flow

from benchmarks.results import record
from demo_store import PRESETS, generate_store, write_store
from flows.params import NightlyParams
from tasks.dataset import DatasetSpec
from tasks.evaluation.evaluate import evaluation_for
from tasks.features.build import build_features
from tasks.features.split import split_events
from tasks.ingest.extract import extract
from tasks.run_context import DataRoot, RunFolder
from tasks.training.train import HYBRID, ModelConfig, fit_candidate, training_data


@flow(name="refit-benchmark")
def refit_benchmark(data_root: Path, refit_epochs: list[int], seed: int) -> dict:
    params = NightlyParams(data_root=data_root)
    source = params.resolved_source()
    dataset = DatasetSpec.from_toml(params.resolved_dataset_config(source))
    config = ModelConfig(lightfm=params.model)
    run = RunFolder.new(data_root, area="benchmarks")
    snapshot = extract(source, dataset, run)
    split = split_events(snapshot, dataset, run, params.holdout())

    def stage_data(events: Path, stage: str):
        features = build_features(snapshot, dataset, run, events, stage)
        return training_data(pd.read_parquet(events), snapshot, features, dataset, config)

    before = stage_data(split.tune_train_events, "tune")
    after = stage_data(split.train_events, "evaluate")
    evaluation = evaluation_for(split.train_events, split.test, snapshot, dataset)
    state = run.sub("models", "evaluated.state.npz")
    epochs = config.lightfm.epochs
    results = {}

    def timed(name: str, data, **kwargs) -> None:
        started = time.perf_counter()
        model = fit_candidate(HYBRID, data, config, seed, params.num_threads, **kwargs)
        seconds = time.perf_counter() - started
        results[name] = {"NDCG@10": round(evaluation.ndcg(model), 5), "seconds": round(seconds, 1)}
        print(f"{name:>32}: NDCG@10 {results[name]['NDCG@10']:.4f}  {seconds:7.1f} s", flush=True)

    timed(f"evaluated ({epochs} epochs, no refit)", before, state_path=state)
    timed(f"refit from scratch ({epochs} epochs)", after)
    for k in refit_epochs:
        timed(
            f"refit continued ({k} epochs)",
            after,
            lightfm_params=config.lightfm.model_copy(update={"epochs": k}),
            warm_start=state,
        )
    return {"test_users": len(evaluation.rows), "models": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.refit")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo")
    parser.add_argument("--refit-epochs", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--results", type=Path, default=None, help="default: docs/results/refit.json"
    )
    command = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    data_root = Path("data") / "bench" / args.preset
    db = DataRoot.of(data_root).demo_store
    if not db.exists():
        write_store(generate_store(args.preset, args.seed), db)
    result = refit_benchmark(data_root, args.refit_epochs, args.seed)
    figures = {"preset": args.preset} | result
    record("refit", "benchmarks.refit", command, figures, args.results)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
