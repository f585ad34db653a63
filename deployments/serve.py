"""Serve the pipeline's deployments from one process (a single machine, no work pool).

    make server     # terminal 1: prefect server start on 127.0.0.1:4200
    make serve      # terminal 2: this module; runs `nightly` and `monitor` on schedule

The same deployments are declared in deployments/prefect.yaml for a work pool
(`prefect deploy --all --prefect-file deployments/prefect.yaml`); `definitions()` is the
single description both follow (a test compares them).

Schedules come from the environment (tasks.settings): RECS_TIMEZONE (default UTC),
RECS_NIGHTLY_CRON (default "0 2 * * *"), RECS_MONITOR_CRON (default "0 6 * * *").
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from prefect import Flow, serve
from prefect.schedules import Cron

from flows.monitor import monitor
from flows.nightly import nightly
from flows.rollback import rollback
from tasks.settings import Settings, get_settings


@dataclass(frozen=True)
class Definition:
    """What a deployment is, independent of how it is run (served or on a work pool)."""

    flow: Flow
    name: str
    description: str
    cron: str | None = None  # None = manual runs only
    concurrency_limit: int | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def full_name(self) -> str:
        return f"{self.flow.name}/{self.name}"


def definitions(settings: Settings | None = None) -> list[Definition]:
    settings = settings or get_settings()
    return [
        Definition(
            nightly,
            "nightly",
            "Extract, validate, train, evaluate, gate and publish top-N recommendations.",
            cron=settings.nightly_cron,
            concurrency_limit=1,  # two nightly runs never write at once
            tags=("recs", "nightly"),
        ),
        Definition(
            monitor,
            "monitor",
            "Drift and live performance since the last training; retrains when they call for it.",
            cron=settings.monitor_cron,
            concurrency_limit=1,
            tags=("recs", "monitor"),
        ),
        Definition(
            rollback,
            "rollback",
            "Point `latest` back at an earlier published version (manual only).",
            tags=("recs", "rollback"),
        ),
    ]


def runner_deployments(settings: Settings | None = None) -> list[Any]:
    """The definitions as RunnerDeployments for `prefect.serve`."""
    settings = settings or get_settings()
    return [
        d.flow.to_deployment(
            name=d.name,
            description=d.description,
            schedules=[Cron(d.cron, timezone=settings.timezone)] if d.cron else None,
            concurrency_limit=d.concurrency_limit,
            enforce_parameter_schema=True,
            tags=list(d.tags),
        )
        for d in definitions(settings)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.serve", description=__doc__)
    parser.add_argument(
        "--limit", type=int, default=2, help="flow runs executed at the same time (default 2)"
    )
    args = parser.parse_args(argv)
    serve(*runner_deployments(), limit=args.limit)


if __name__ == "__main__":
    main()
