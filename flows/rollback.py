"""Rollback: point `latest` back at an earlier published version.

python -m flows.rollback --version 20261127T020000Z-abc123def0

A rollback holds the nightly run's lock (`<data_root>/.nightly.lock`) while it checks and
switches, so it never lands in the middle of a nightly run, and a nightly run never starts
in the middle of it: whichever comes second stops at once with RunInProgressError. A
nightly rerun afterwards finds its version already published and leaves `latest` alone.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field, field_validator

from flows.cli import parse_params, run_cli
from tasks.errors import DamagedPublicationError, NotPublishedError, RunInProgressError
from tasks.locking import exclusive_run
from tasks.publishing.publish import current_latest, switch_latest, verify_version
from tasks.reporting.run_index import write_index
from tasks.run_context import DataRoot
from tasks.settings import confine, get_settings
from tasks.training.registry import find_entry, mark_published
from tasks.versions import VERSION_PATTERN

# The files every complete version holds; a manifest that does not list them is refused.
REQUIRED_FILES = ("recommendations.parquet", "metrics.json")


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


def kept_versions(published_root: Path) -> list[str]:
    """The version folders under `published/` (not `latest`, not staging, not symlinks)."""
    if not published_root.is_dir():
        return []
    return sorted(
        p.name
        for p in published_root.iterdir()
        if VERSION_PATTERN.match(p.name) and p.is_dir() and not p.is_symlink()
    )


def _checked_manifest(folder: Path) -> dict:
    """The version's manifest once every file it lists (at least the recommendations and
    metrics) matches its sha256; DamagedPublicationError naming the file otherwise."""
    manifest_path = folder / "manifest.json"
    try:
        manifest = verify_version(folder)
        listed = set(manifest["files"])
        rows = int(manifest["row_count"])
    except DamagedPublicationError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DamagedPublicationError(
            f"{manifest_path}: not a readable manifest ({type(error).__name__}: {error}); "
            "this version cannot be served"
        ) from None
    if missing := [name for name in REQUIRED_FILES if name not in listed]:
        raise DamagedPublicationError(
            f"{manifest_path}: lists no checksum for {', '.join(missing)}; "
            "this version cannot be served"
        )
    return manifest | {"row_count": rows}


def _settle_previous(data_root: Path, previous: str | None) -> None:
    """A run killed between switching `latest` and marking its version published leaves
    that version served but `published: false`; its rerun would finish the switch and undo
    this rollback. It was served, so it is recorded as published before `latest` moves."""
    if previous is None or not VERSION_PATTERN.match(previous):
        return
    entry = find_entry(data_root, previous)
    if entry is not None and not entry.published:
        mark_published(data_root, previous)
        get_run_logger().info(
            "%s was served but not marked published (an interrupted run): marked now, so "
            "its rerun leaves this rollback in place",
            previous,
        )


@flow(name="rollback")
def rollback(params: RollbackParams) -> RollbackResult:
    """Check the version's files against its manifest, then switch `latest` to it.
    Holds the nightly run's lock: RunInProgressError while a nightly run is going."""
    data_root = Path(params.data_root)
    published_root = DataRoot.of(data_root).published
    if not published_root.is_dir():  # checked first: a mistyped data root is not created
        raise NotPublishedError(f"nothing is published under {data_root} (no published/)")
    try:
        with exclusive_run(data_root, "nightly", holder="rollback"):
            return _rollback(data_root, params.version)
    except RunInProgressError as busy:
        raise RunInProgressError(
            f"rollback to {params.version} not done, `latest` still serves "
            f"{current_latest(published_root)}: {busy}"
        ) from None


def _rollback(data_root: Path, version: str) -> RollbackResult:
    published_root = DataRoot.of(data_root).published
    folder = published_root / version
    kept = kept_versions(published_root)
    if version not in kept:
        if folder.is_symlink():
            raise DamagedPublicationError(
                f"{folder} is a symlink, not a published version folder; it cannot be served"
            )
        raise NotPublishedError(
            f"no published version {version!r} under {published_root}; "
            f"kept: {', '.join(kept) or 'none'}"
        )
    manifest = _checked_manifest(folder)
    previous = current_latest(published_root)
    _settle_previous(data_root, previous)
    switch_latest(published_root, version)
    write_index(data_root)  # the index page says what `latest` serves now
    create_markdown_artifact(
        key="rollback",
        markdown=f"## Rolled back\n\n`latest`: `{previous}` → `{version}` "
        f"({manifest['row_count']:,} rows, checksum verified)",
    )
    return RollbackResult(previous=previous, current=version, rows=manifest["row_count"])


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
