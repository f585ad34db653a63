"""Rebuild a published version from its recorded inputs and say whether it reproduces.

    python -m flows.reproduce --version 20261031T235004Z-4d7b2f0d27 --into data/replay
    python -m flows.reproduce --version ... --into data/replay --runner dask --num_threads 1

Why: a version id names the inputs of a run (tasks/versions.py); this checks that the
inputs also fix the output. The version's run kept what it read (`snapshot/`) and what it
was given (`inputs.json`: its parameters and dataset.toml text); the nightly runs again on
them, into another data root, and the two publications are compared: the version id, then
the decisions (the tuned configuration and the epochs chosen, the gate's checks, the
candidate published), then the lists (`content_sha256` of the manifest, and where they
differ: users whose list is not the same). Exit 0 when the version is reproduced, 11 when
it is not (the differences on stdout), 10 when the version or its inputs are gone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pandas as pd
from prefect import flow
from pydantic import BaseModel, Field

from flows.cli import parse_params, run_cli
from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.errors import NotPublishedError, NotReproducedError
from tasks.evaluation.run_report import MetricsDocument
from tasks.publishing.manifest import CONTENT_COLUMNS, Manifest
from tasks.run_context import DataRoot, RunFolder
from tasks.settings import get_settings


class ReproduceParams(BaseModel):
    """Which version to rebuild, and where."""

    version: str = Field(description="the published version to rebuild")
    into: Path = Field(description="an empty data root the rebuild writes to")
    data_root: Path = Field(
        default_factory=lambda: get_settings().data_root,
        description="where the version was published (RECS_DATA_ROOT)",
    )
    runner: Literal["local", "dask"] | None = Field(
        None, description="publish the rebuild on this runner (default: the recorded one)"
    )
    num_threads: int | None = Field(
        None, ge=1, le=64, description="train the rebuild on this many threads"
    )


class Reproduction(BaseModel):
    """What the rebuild found."""

    version: str
    rebuilt_version: str | None
    decisions_differ: dict[str, list] = Field(description="key -> [original, rebuilt]")
    content_sha256: str | None
    rebuilt_content_sha256: str | None
    users_with_other_lists: int = 0
    users: int = 0

    @property
    def reproduced(self) -> bool:
        return (
            self.rebuilt_version == self.version
            and not self.decisions_differ
            and self.content_sha256 is not None
            and self.content_sha256 == self.rebuilt_content_sha256
        )

    def render(self) -> str:
        lines = [
            f"version {self.version}: " + ("REPRODUCED" if self.reproduced else "NOT reproduced"),
            f"  version id of the rebuild: {self.rebuilt_version}",
            "  decisions: "
            + (
                "the same"
                if not self.decisions_differ
                else "; ".join(f"{k}: {a} -> {b}" for k, (a, b) in self.decisions_differ.items())
            ),
            f"  lists: content {self.content_sha256} -> {self.rebuilt_content_sha256}"
            + (
                f" ({self.users_with_other_lists:,} of {self.users:,} users get another list)"
                if self.users_with_other_lists
                else ""
            ),
        ]
        return "\n".join(lines)


def decisions(document: MetricsDocument) -> dict:
    """Every choice a run makes, as recorded in its metrics.json."""
    tuning = document.tuning
    return {
        "tuned_configuration": tuning.chosen if tuning else None,
        "lightfm_choice": tuning.lightfm_choice if tuning else None,
        "gate_passed": document.gate.passed,
        "gate_checks": document.gate.checks,
        "published": document.published,
    }


def compare_lists(original: Path, rebuilt: Path) -> tuple[int, int]:
    """(users whose list differs, users) between two recommendations.parquet."""
    a = pd.read_parquet(original, columns=CONTENT_COLUMNS)
    b = pd.read_parquet(rebuilt, columns=CONTENT_COLUMNS)
    key = ["user_id", "rank"]
    merged = a.merge(b, on=key, how="outer", suffixes=("", "_rebuilt"), indicator=True)
    same = merged["_merge"] == "both"
    for column in (c for c in CONTENT_COLUMNS if c not in key):
        same &= merged[column].astype(str) == merged[f"{column}_rebuilt"].astype(str)
    differing = merged.loc[~same, "user_id"].nunique()
    return int(differing), int(merged["user_id"].nunique())


def replay_params(params: ReproduceParams) -> tuple[NightlyParams, Path]:
    """The version's recorded nightly parameters, reading its run's snapshot into `into`;
    and its published folder."""
    root = DataRoot.of(params.data_root)
    folder = root.version(params.version)
    if not (folder / "manifest.json").exists():
        raise NotPublishedError(f"{folder} holds no published version {params.version}")
    manifest = Manifest.model_validate_json((folder / "manifest.json").read_text())
    run = RunFolder(data_root=params.data_root, run_id=str(manifest.run_id))
    if not run.inputs.exists() or not run.snapshot.exists():
        raise NotPublishedError(
            f"the inputs of {params.version} are gone: {run.inputs} and {run.snapshot} are "
            "needed (runs published before inputs.json was recorded cannot be rebuilt)"
        )
    recorded = json.loads(run.inputs.read_text())
    into = Path(params.into)
    into.mkdir(parents=True, exist_ok=True)
    if any(into.iterdir()):
        raise NotPublishedError(f"{into} is not empty: the rebuild needs a data root of its own")
    config = into / "dataset.toml"
    config.write_text(recorded["dataset_toml"])
    replay = NightlyParams.model_validate(
        recorded["params"]
        | {
            "data_root": str(into),
            "source": str(run.snapshot),
            "source_secret": None,
            "dataset_config": str(config),
            "extraction": "full",
            "reason": f"reproduce {params.version}",
        }
        | ({"num_threads": params.num_threads} if params.num_threads else {})
    )
    if params.runner:  # how the work is spread: never what it gives
        publishing = replay.publishing.model_copy(update={"runner": params.runner})
        replay = replay.model_copy(update={"publishing": publishing})
    return replay, folder


@flow(name="reproduce")
def reproduce(params: ReproduceParams) -> Reproduction:
    """Rebuild `params.version` into `params.into` and compare (see the module)."""
    replay, original = replay_params(params)
    summary = nightly(replay)
    rebuilt = DataRoot.of(params.into).version(str(summary.published_version))
    before = Manifest.model_validate_json((original / "manifest.json").read_text())
    after = Manifest.model_validate_json((rebuilt / "manifest.json").read_text())
    was = decisions(MetricsDocument.model_validate_json((original / "metrics.json").read_text()))
    now = decisions(MetricsDocument.model_validate_json((rebuilt / "metrics.json").read_text()))
    differing, users = compare_lists(
        original / "recommendations.parquet", rebuilt / "recommendations.parquet"
    )
    result = Reproduction(
        version=params.version,
        rebuilt_version=summary.published_version,
        decisions_differ={k: [was[k], now[k]] for k in was if was[k] != now[k]},
        content_sha256=before.content_sha256,
        rebuilt_content_sha256=after.content_sha256,
        users_with_other_lists=differing,
        users=users,
    )
    if not result.reproduced:
        raise NotReproducedError(result.render())
    return result


def main(argv: list[str] | None = None) -> int:
    params = parse_params(
        ReproduceParams,
        argv,
        prog="python -m flows.reproduce",
        description="Rebuild a published version from its recorded inputs and compare.",
    )
    return run_cli(lambda: reproduce(params), Reproduction.render)


if __name__ == "__main__":
    raise SystemExit(main())
