"""A password in the database URL appears nowhere: logs, artifacts, run files, errors."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from prefect.blocks.system import Secret
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy.engine import make_url

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.evaluation.gate import GateParams
from tasks.ingest.sources import SourceError, masked_url
from tasks.ingest.sources.errors import redact
from tasks.ingest.sources.http_api import read_paginated_json
from tasks.ingest.sources.sql import read_sql
from tasks.training.models.lightfm_hybrid import LightFMParams
from tasks.training.tune import TuningParams

from tests.conftest import REPO, raw_store_tables
from tests.pipeline.test_prefect_server import PrefectServer, cli_nightly

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
            model=LightFMParams(no_components=4, epochs=2),
            gate=GateParams(min_lift=-1.0, relaxed_on_purpose="secrets are under test"),
            tuning=TuningParams(search=False),
            num_threads=1,
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


# ---- hostile passwords: SQLAlchemy's grammar, not RFC 3986 --------------------------------
# (the password SQLAlchemy reads, the password as written in the URL)
HOSTILE = [
    ("Hash#Pw2Leak", "Hash#Pw2Leak"),  # `#` would start an RFC 3986 fragment
    ("a/b?c@d%e:f", "a/b?c%40d%e:f"),  # `/`, `?`, `%`, `:` as they are; `@` must be %40
    ("Pässwörd✓", "Pässwörd✓"),
    ("Hash#Pw2Leak", "Hash%23Pw2Leak"),  # percent-encoded
    ("a/b?c@d%e:f", quote("a/b?c@d%e:f", safe="")),
    ("Pässwörd✓", quote("Pässwörd✓", safe="")),
]
TEMPLATE = "postgresql+psycopg://alice:{}@127.0.0.1:5432/test?options=-csearch_path%3Dshop"


def leaked_fragments(shown: str, url: str, secrets: list[str]) -> list[str]:
    """The secrets' fragments of four characters or more in `shown`, except those the rest
    of the URL holds too (`%3D` is in the query whatever the password)."""
    rest = url
    for secret in secrets:
        rest = rest.replace(secret, " ")
    return [
        secret[i : i + 4]
        for secret in secrets
        for i in range(len(secret) - 3)
        if secret[i : i + 4] in shown and secret[i : i + 4] not in rest
    ]


@pytest.mark.parametrize(("password", "written"), HOSTILE)
def test_masked_url_hides_any_password_sqlalchemy_reads(password, written):
    url = TEMPLATE.format(written)
    assert make_url(url).password == password  # what the driver will be given
    shown = masked_url(url)
    assert shown == TEMPLATE.format("***")
    assert password not in shown and written not in shown
    assert not leaked_fragments(shown, url, [password, written])


def test_raw_at_sign_hidden_even_where_sqlalchemy_reads_it_as_the_host():
    url = TEMPLATE.format("Pw2@Leak@Hash")
    parsed = make_url(url)  # accepted, but the password ends at the first `@`...
    assert (parsed.password, parsed.host) == ("Pw2", "Leak@Hash@127.0.0.1")
    shown = masked_url(url)  # ...and no host holds an `@`: hidden up to the last one
    assert shown == TEMPLATE.format("***")
    assert not leaked_fragments(shown, url, ["Pw2@Leak@Hash"])
    # the driver names that host in its error: the pieces are hidden there too
    message = 'failed to resolve host "Leak@Hash@127.0.0.1"'
    assert "Leak" not in redact(message, url) and "Hash" not in redact(message, url)


def test_a_url_sqlalchemy_cannot_parse_is_never_shown(tmp_path):
    # a raw `@` followed by `:`: SQLAlchemy reads "f@127.0.0.1:5432" as the port and refuses
    url = TEMPLATE.format("a/b?c@d%e:f")
    with pytest.raises(ValueError):
        make_url(url)
    shown = masked_url(url)
    assert shown.startswith("postgresql+psycopg://") and "alice" not in shown
    assert not leaked_fragments(shown, url, ["a/b?c@d%e:f"])
    with pytest.raises(SourceError) as failure:  # the reader says so without quoting it
        read_sql(url, "users")
    message = str(failure.value)
    assert "%40" in message and not leaked_fragments(message, url, ["a/b?c@d%e:f"])
    assert "f@127" not in message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8000/api/products?page=2", "http://127.0.0.1:8000/api/products?page=2"),
        ("https://bob:Hash#Pw2Leak@api.shop.example/v1/items", "https://bob:***@api.shop.example/v1/items"),
        ("https://bob:Pässwörd✓@api.shop.example/v1/items", "https://bob:***@api.shop.example/v1/items"),
        ("https://api.shop.example/v1/items?api_token=Pw2Leak&page=3", "https://api.shop.example/v1/items?api_token=***&page=3"),
        ("sqlite:////tmp/shop/store.db", "sqlite:////tmp/shop/store.db"),
        ("", ""),
    ],
)  # fmt: skip
def test_masked_url_keeps_other_urls_as_written(url, shown):
    assert masked_url(url) == shown


def test_http_source_does_not_quote_an_invalid_url():
    # httpx reads "Hash" as the port and says so ("Invalid port: 'Hash'")
    url = "http://bob:Hash#Pw2Leak@127.0.0.1:9/api/products"
    with pytest.raises(SourceError) as failure:
        read_paginated_json(url, retries=0, timeout_s=1)
    assert not leaked_fragments(str(failure.value), url, ["Hash#Pw2Leak"])
    assert "bob:***@127.0.0.1:9" in str(failure.value)


# ---- the command line against a real Prefect server ---------------------------------------
# Every character the issue names, as SQLAlchemy reads it, and as written in RECS_SOURCE.
RUN_PASSWORD = "Hash#Pw2Leak/b?c@d%e:f-Pässwörd✓"
RUN_WRITTEN = RUN_PASSWORD.replace("@", "%40")
FAIL_PASSWORD = "Fail#Pw3Leak/x?y@z%w:v-Kënnwört✓"
FAIL_WRITTEN = FAIL_PASSWORD.replace("@", "%40")
FAST_CLI = (
    "--model.no_components", "4", "--model.epochs", "2", "--no-tuning.search",
    "--max_test_users", "100", "--refit_epochs", "1", "--source_retries", "0",
)  # fmt: skip


def forms(password: str, written: str) -> list[str]:
    """Every way the password could be written down: as read, as written, percent-encoded,
    JSON-escaped, and its most distinctive piece."""
    return [
        password,
        written,
        quote(password, safe=""),
        quote_plus(password),
        json.dumps(password)[1:-1],
        password.split("#")[1].split("/")[0],  # "Pw2Leak"
    ]


def leaks(texts: dict[str, bytes | str], secrets: list[str]) -> list[str]:
    found = []
    for where, text in texts.items():
        data = text if isinstance(text, bytes) else text.encode()
        found += [f"{secret!r} in {where}" for secret in secrets if secret.encode() in data]
    return found


def files_under(*roots: Path) -> dict[str, bytes]:
    return {
        str(path): path.read_bytes()
        for root in roots
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def recorded_by(api: str) -> dict[str, str]:
    """Every log, artifact, flow run and task run the server holds, as JSON."""
    records: dict[str, str] = {}
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        for kind, read in (
            ("log", client.read_logs),
            ("artifact", client.read_artifacts),
            ("flow run", client.read_flow_runs),
            ("task run", client.read_task_runs),
        ):
            offset = 0
            while page := read(limit=200, offset=offset):
                records |= {f"{kind} {r.id}": r.model_dump_json() for r in page}
                offset += len(page)
    return records


FINAL = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}


def wait_for_task_runs(api: str, names: set[str]) -> None:
    """Task runs reach the server as events: wait until those named are recorded."""
    deadline = time.monotonic() + 30
    with temporary_settings({PREFECT_API_URL: api}), get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            final = [r.name for r in client.read_task_runs(limit=200) if r.state_type in FINAL]
            if all(any(run.startswith(f"{name}-") for run in final) for name in names):
                return
            time.sleep(0.5)
    raise AssertionError(f"the server recorded no finished task run of {names}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = PrefectServer(tmp_path_factory.mktemp("prefect"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def run_cli(server: PrefectServer, data_root: Path, source: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_nightly(data_root, *FAST_CLI),
        env=server.env | {"PREFECT_API_URL": server.api, "RECS_SOURCE": source},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def assert_nowhere(server, data_root, result, secrets, task_names):
    wait_for_task_runs(server.api, task_names)
    recorded = recorded_by(server.api)
    assert any(k.startswith("log") for k in recorded)
    places = (
        {"stdout": result.stdout, "stderr": result.stderr}
        | recorded
        | files_under(data_root, server.folder)  # the runs, PREFECT_HOME, Prefect's database
    )
    assert not leaks(places, secrets)


def test_cli_run_with_a_hostile_password_leaks_it_nowhere(
    server, tmp_path, tiny_store_db, postgres_schema
):
    engine, schema, url = postgres_schema
    for table, frame in raw_store_tables(tiny_store_db).items():
        frame.to_sql(table, engine, schema=schema, index=False)
    source = url.replace("postgres@", f"postgres:{RUN_WRITTEN}@")
    assert make_url(source).password == RUN_PASSWORD  # the run really gives it to libpq

    result = run_cli(server, tmp_path / "data", source)

    assert result.returncode == 0, result.stderr[-3000:]
    assert "published:" in result.stdout
    assert "postgres:***@127.0.0.1:5432" in result.stderr  # the source is named, masked
    assert_nowhere(server, tmp_path / "data", result, forms(RUN_PASSWORD, RUN_WRITTEN), {"extract"})
    assert b"postgres:***@127.0.0.1:5432" in b"".join(files_under(tmp_path / "data").values())


def test_cli_failing_on_a_missing_table_masks_the_password(server, tmp_path, postgres_schema):
    _, _, url = postgres_schema  # an empty schema: the users table is missing
    source = url.replace("postgres@", f"postgres:{FAIL_WRITTEN}@")
    assert make_url(source).password == FAIL_PASSWORD

    result = run_cli(server, tmp_path / "data", source)

    assert result.returncode == SourceError.exit_code, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert "postgres:***@127.0.0.1:5432" in error and '"users" does not exist' in error
    assert_nowhere(
        server, tmp_path / "data", result, forms(FAIL_PASSWORD, FAIL_WRITTEN), {"extract"}
    )
