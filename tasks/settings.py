"""One typed settings object: where data lives and which source is the default.

Values come from environment variables prefixed `RECS_` (e.g. `RECS_DATA_ROOT=/srv/recs`),
so a deployment can move the data without touching code or flow parameters.
"""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tasks.errors import PathOutsideAllowedRootsError

# No internet here and no phoning home from users' nightly jobs: telemetry off by default,
# for this process and every process it starts (the Makefile exports the same for the
# commands it runs that are not ours, such as `prefect server start`).
OFFLINE_ENVIRONMENT = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "False",
}
for _name, _value in {
    **OFFLINE_ENVIRONMENT,
    # The ephemeral API's first start migrates its database: give a slow disk time.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}.items():
    os.environ.setdefault(_name, _value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECS_", extra="ignore")

    data_root: Path = Field(
        Path("data"),
        description="where runs, models and published recommendations go (the flows' "
        "default `data_root`); relative to the working directory",
    )
    # The shop's database URL or data folder; a URL may hold a password, so it comes from
    # the environment (RECS_SOURCE), never from a flow parameter that the UI would show.
    source: str | None = None
    # The demo store's description; a files source may bring its own dataset.toml.
    dataset_config: Path = Path(__file__).resolve().parent.parent / "dataset.toml"
    expectations_dir: Path = Field(
        Path(__file__).resolve().parent.parent / "expectations",
        description="the Great Expectations suites, one JSON per table",
    )
    # When the deployments run (deployments/serve.py, deployments/prefect.yaml): the cron
    # lines are read in `timezone`, so 02:00 stays 02:00 local time across daylight saving.
    timezone: str = "UTC"
    # Folders that path parameters (data_root, dataset_config, a folder or SQLite source)
    # must stay inside, separated by the OS path separator (`:`): a run started from the UI
    # cannot read or write elsewhere. Empty = data_root alone.
    allowed_roots: str = ""
    nightly_cron: str = Field(
        "0 2 * * *",
        description="when `make serve` runs the nightly deployment (in RECS_TIMEZONE)",
    )
    monitor_cron: str = Field(
        "0 6 * * *",
        description="when `make serve` runs the monitor deployment (in RECS_TIMEZONE)",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(
                f"RECS_TIMEZONE={value!r} is not an IANA time zone (e.g. Europe/Paris)"
            ) from error
        return value

    def demo_store_path(self, data_root: Path | None = None) -> Path:
        from tasks.run_context import DataRoot

        return DataRoot.of(data_root or self.data_root).demo_store

    def default_source(self, data_root: Path | None = None) -> str:
        """RECS_SOURCE if set, else the embedded demo store under data_root."""
        return self.source or f"sqlite:///{self.demo_store_path(data_root)}"


def confine(path: Path | str, parameter: str) -> Path:
    """`path` unchanged if it resolves (`..` and symlinks followed) inside one of the
    allowed roots (RECS_ALLOWED_ROOTS, else RECS_DATA_ROOT); otherwise a
    PathOutsideAllowedRootsError naming the parameter, the path and the roots."""
    settings = get_settings()
    roots = [Path(r) for r in settings.allowed_roots.split(os.pathsep) if r.strip()]
    roots = [r.expanduser().resolve() for r in roots or [settings.data_root]]
    resolved = Path(path).expanduser().resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise PathOutsideAllowedRootsError(
            f"{parameter}={str(path)!r} resolves to {resolved}, outside the allowed folders "
            f"({allowed}); path parameters must stay inside them (set RECS_ALLOWED_ROOTS "
            "to allow more)"
        )
    return Path(path)


def confine_database(url: str, parameter: str) -> str:
    """`url` unchanged; a SQLite URL's file must lie inside the allowed roots (other
    databases are not files on this machine). ValueError for a URL SQLAlchemy cannot read."""
    if not url.startswith("sqlite"):
        return url
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        database = make_url(url).database
    except (ArgumentError, ValueError):
        raise ValueError(f"{parameter} is not a valid database URL") from None
    if database and database != ":memory:":
        confine(database, parameter)
    return url


def get_settings() -> Settings:
    return Settings()
