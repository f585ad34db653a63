"""Serve the pipeline's deployments from one process (a single machine, no work pool).

    make server     # terminal 1: prefect server start on 127.0.0.1:4200
    make serve      # terminal 2: this module; runs `nightly` and `monitor` on schedule

`definitions()` is the one description of the deployments: this module serves them, and
deployments/prefect.yaml (for a work pool: `prefect deploy --all --prefect-file
deployments/prefect.yaml`) is generated from it by `python -m deployments.serve
--write-prefect-yaml` (a test fails when the file and the description differ).

Schedules come from the environment (tasks.settings): RECS_TIMEZONE (default UTC),
RECS_NIGHTLY_CRON (default "0 2 * * *"), RECS_MONITOR_CRON (default "0 6 * * *").
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import prefect
import yaml
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


PREFECT_YAML = Path(__file__).with_name("prefect.yaml")
WORK_POOL = "recs-process"
PREFECT_YAML_HEADER = f"""\
# Generated from deployments/serve.py::definitions by
#   python -m deployments.serve --write-prefect-yaml
# (edit the definitions, not this file; a test fails when they differ).
# The pipeline's deployments for a work pool (production). From the repository root:
#   prefect work-pool create {WORK_POOL} --type process
#   prefect deploy --all --prefect-file deployments/prefect.yaml
#   prefect worker start --pool {WORK_POOL}
# Schedules: the cron lines are read in `timezone` (an IANA name such as Europe/Paris), so
# 02:00 stays 02:00 local time across daylight saving (RECS_TIMEZONE, RECS_NIGHTLY_CRON and
# RECS_MONITOR_CRON when generating).
# A process worker starts each flow run in a fresh temporary folder: the `pull` step moves
# the run into this checkout first. {{{{ $PWD }}}} is filled in by `prefect deploy` (run it
# from the repository root, on the machine the worker runs on; the worker uses that
# checkout's .venv: start it with .venv/bin/prefect worker start --pool {WORK_POOL}).
"""


def prefect_yaml(settings: Settings | None = None) -> str:
    """deployments/prefect.yaml as the definitions describe it."""
    settings = settings or get_settings()
    project = {
        "name": "beauty-recs",
        "prefect-version": prefect.__version__,
        "build": None,
        "push": None,
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $PWD }}"}}],
        "deployments": [
            {
                "name": d.name,
                "entrypoint": f"{d.flow.fn.__module__.replace('.', '/')}.py:{d.flow.fn.__name__}",
                "description": d.description,
                "tags": list(d.tags),
                "enforce_parameter_schema": True,
                **({"concurrency_limit": d.concurrency_limit} if d.concurrency_limit else {}),
                "schedules": (
                    [{"cron": d.cron, "timezone": settings.timezone, "active": True}]
                    if d.cron
                    else []
                ),
                "work_pool": {"name": WORK_POOL, "work_queue_name": "default"},
            }
            for d in definitions(settings)
        ],
    }
    return PREFECT_YAML_HEADER + yaml.safe_dump(project, sort_keys=False, width=100)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m deployments.serve", description=__doc__)
    parser.add_argument(
        "--limit", type=int, default=2, help="flow runs executed at the same time (default 2)"
    )
    parser.add_argument(
        "--write-prefect-yaml",
        action="store_true",
        help=f"write {PREFECT_YAML.name} from the definitions instead of serving",
    )
    args = parser.parse_args(argv)
    if args.write_prefect_yaml:
        PREFECT_YAML.write_text(prefect_yaml())
        print(PREFECT_YAML)
        return
    serve(*runner_deployments(), limit=args.limit)


if __name__ == "__main__":
    main()
