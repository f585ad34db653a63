"""Rollback: point `latest` back at an earlier published version.

python -m flows.rollback --version 20261127T020000Z-abc123def0
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field, field_validator

from flows.cli import parse_params, run_cli
from tasks.errors import NotPublishedError
from tasks.publish import current_latest, switch_latest, verify_version
from tasks.settings import confine, get_settings
from tasks.versions import VERSION_PATTERN


class RollbackParams(BaseModel):
    """Which published version `latest` should serve again."""

    version: str = Field(
        ...,
        pattern=VERSION_PATTERN.pattern,
        description="a folder name under data/published/ (see `ls data/published`)",
    )
    data_root: Path = Field(
        default_factory=lambda: get_settings().data_root,
        description="folder holding published/",
    )

    @field_validator("data_root")
    @classmethod
    def _inside_allowed_roots(cls, value: Path) -> Path:
        return confine(value, "data_root")


class RollbackResult(BaseModel):
    previous: str | None
    current: str
    rows: int


@flow(name="rollback")
def rollback(params: RollbackParams) -> RollbackResult:
    """Check the version's files against its manifest, then switch `latest` to it."""
    published_root = Path(params.data_root) / "published"
    folder = published_root / params.version
    if not folder.is_dir():
        kept = sorted(p.name for p in published_root.glob("2*") if p.is_dir())
        raise NotPublishedError(
            f"no published version {params.version!r} under {published_root}; kept: {kept}"
        )
    manifest = verify_version(folder)
    previous = current_latest(published_root)
    switch_latest(published_root, params.version)
    create_markdown_artifact(
        key="rollback",
        markdown=f"## Rolled back\n\n`latest`: `{previous}` → `{params.version}` "
        f"({manifest['row_count']:,} rows, checksum verified)",
    )
    return RollbackResult(previous=previous, current=params.version, rows=manifest["row_count"])


def main(argv: list[str] | None = None) -> int:
    params = parse_params(
        RollbackParams, argv, prog="python -m flows.rollback", description=rollback.__doc__ or ""
    )
    return run_cli(
        lambda: rollback(params),
        lambda result: f"latest: {result.previous} -> {result.current} ({result.rows:,} rows)",
    )


if __name__ == "__main__":
    raise SystemExit(main())
