"""One typed settings object: where data lives and which source is the default.

Values come from environment variables prefixed `RECS_` (e.g. `RECS_DATA_ROOT=/srv/recs`),
so a deployment can move the data without touching code or flow parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

# No internet here and no phoning home from users' nightly jobs: telemetry off by default.
for _name, _value in {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "False",
    # The ephemeral API's first start migrates its database: give a slow disk time.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}.items():
    os.environ.setdefault(_name, _value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RECS_", extra="ignore")

    data_root: Path = Path("data")
    # The shop's database URL or data folder; a URL may hold a password, so it comes from
    # the environment (RECS_SOURCE), never from a flow parameter that the UI would show.
    source: str | None = None
    # The demo store's description; a files source may bring its own dataset.toml.
    dataset_config: Path = Path(__file__).resolve().parent.parent / "dataset.toml"
    expectations_dir: Path = Path(__file__).resolve().parent.parent / "expectations"

    def demo_store_path(self, data_root: Path | None = None) -> Path:
        return Path(data_root or self.data_root) / "demo" / "store.db"

    def default_source(self, data_root: Path | None = None) -> str:
        """RECS_SOURCE if set, else the embedded demo store under data_root."""
        return self.source or f"sqlite:///{self.demo_store_path(data_root)}"


def get_settings() -> Settings:
    return Settings()
