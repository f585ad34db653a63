"""A password in the database URL appears nowhere: logs, artifacts, run files, errors."""

from __future__ import annotations

import logging

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.gate import GateParams
from tasks.models.lightfm_hybrid import LightFMParams
from tasks.sources import SourceError

from .conftest import raw_store_tables

PASSWORD = "Sup3r-S3cret-pw"


def everything_written(root) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file())


def test_password_from_a_secret_block_never_leaks(tmp_path, tiny_store_db, postgres_schema, caplog):
    engine, schema, url = postgres_schema
    for table, frame in raw_store_tables(tiny_store_db).items():
        frame.to_sql(table, engine, schema=schema, index=False)
    # Trust auth accepts any password: the run works, so every stage sees the URL.
    secret_url = url.replace("postgres@", f"postgres:{PASSWORD}@")
    Secret(value=secret_url).save("shop-db", overwrite=True)

    caplog.set_level(logging.DEBUG)
    data_root = tmp_path / "data"
    summary = nightly(
        NightlyParams(
            data_root=data_root,
            source_secret="shop-db",
            model=LightFMParams(no_components=8, epochs=3),
            gate=GateParams(min_lift=-1.0),
        )
    )
    assert summary.published_path is not None

    written = everything_written(data_root)
    assert b"127.0.0.1:5432" in written  # the source is recorded...
    assert PASSWORD.encode() not in written  # ...without its password
    assert b"postgres:***@" in written
    assert PASSWORD not in caplog.text

    with get_client(sync_client=True) as client:
        logs = client.read_logs()
        artifacts = client.read_artifacts()
        flow_runs = client.read_flow_runs()
    assert logs and artifacts
    assert not [log.message for log in logs if PASSWORD in log.message]
    assert not [a.key for a in artifacts if PASSWORD in str(a.data) + str(a.description)]
    assert not [r.name for r in flow_runs if PASSWORD in str(r.parameters)]


def test_password_is_masked_in_errors(tmp_path, postgres_schema, monkeypatch):
    _, _, url = postgres_schema  # an empty schema: the users table is missing
    monkeypatch.setenv("RECS_SOURCE", url.replace("postgres@", f"postgres:{PASSWORD}@"))
    with pytest.raises(SourceError) as failure:
        nightly(NightlyParams(data_root=tmp_path / "data", source_retries=0))
    message = str(failure.value)
    assert PASSWORD not in message
    assert "postgres:***@127.0.0.1:5432" in message and "users" in message
    assert PASSWORD.encode() not in everything_written(tmp_path / "data")
