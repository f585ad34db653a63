"""The HTTP JSON API source against a real local server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest

from flows.nightly import nightly
from flows.params import NightlyParams
from tasks.evaluation.gate import GateParams
from tasks.ingest.sources import SourceError
from tasks.ingest.sources.http_api import read_paginated_json
from tasks.training.models.lightfm_hybrid import LightFMParams

from tests.conftest import REPO, raw_store_tables

PAGE_SIZE = 25


class Catalogue:
    """What the fake shop API serves, and what it should do wrong."""

    def __init__(self, products: pd.DataFrame) -> None:
        self.records = json.loads(products.to_json(orient="records"))
        self.fail_first: dict[int, list[int]] = {}  # page -> statuses to answer first
        self.broken_page: int | None = None
        self.requests: Counter = Counter()


@pytest.fixture
def catalogue_api(tiny_store_db):
    catalogue = Catalogue(raw_store_tables(tiny_store_db)["products"])

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            parts = urlsplit(self.path)
            if parts.path != "/api/products":
                self.send_error(404)
                return
            page = int(parse_qs(parts.query).get("page", ["1"])[0])
            catalogue.requests[page] += 1
            if catalogue.fail_first.get(page):
                self.send_error(catalogue.fail_first[page].pop(0))
                return
            if page == catalogue.broken_page:
                body = b"<html>maintenance</html>"
            else:
                start = (page - 1) * PAGE_SIZE
                items = catalogue.records[start : start + PAGE_SIZE]
                more = start + PAGE_SIZE < len(catalogue.records)
                next_url = f"/api/products?page={page + 1}" if more else None
                body = json.dumps({"items": items, "next": next_url}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/api/products", catalogue
    finally:
        server.shutdown()
        server.server_close()


def test_all_pages_are_read_and_5xx_is_retried(catalogue_api):
    url, catalogue = catalogue_api
    catalogue.fail_first = {2: [503, 502]}
    products = read_paginated_json(url, retries=3)
    assert len(products) == len(catalogue.records) > 2 * PAGE_SIZE
    assert list(products["product_id"]) == [r["product_id"] for r in catalogue.records]
    assert catalogue.requests[2] == 3  # two server errors, then the page


def test_a_malformed_page_fails_naming_the_page(catalogue_api):
    url, catalogue = catalogue_api
    catalogue.broken_page = 2
    with pytest.raises(SourceError, match=r"page=2 \(page 2\): the answer is not JSON"):
        read_paginated_json(url)


def test_client_errors_are_not_retried(catalogue_api):
    url, catalogue = catalogue_api
    catalogue.fail_first = {1: [404]}
    with pytest.raises(SourceError, match="answered 404") as failure:
        read_paginated_json(url, retries=3)
    assert catalogue.requests[1] == 1
    assert failure.value.transient is False


def test_persistent_server_errors_fail_after_the_retries(catalogue_api):
    url, catalogue = catalogue_api
    catalogue.fail_first = {1: [500, 500, 500]}
    with pytest.raises(SourceError, match="failed after 3 attempts: HTTP 500") as failure:
        read_paginated_json(url, retries=2)
    assert failure.value.transient is True


def test_unreachable_api_times_out_with_a_clear_error():
    with pytest.raises(SourceError, match="failed after 1 attempts"):
        read_paginated_json("http://127.0.0.1:9/api/products", retries=0, timeout_s=1)


def test_nightly_reads_the_catalogue_from_the_api(catalogue_api, data_root, tmp_path):
    url, catalogue = catalogue_api
    config = tmp_path / "dataset.toml"
    config.write_text(
        (REPO / "dataset.toml").read_text()
        + f'\n[sources.products]\nkind = "http"\nurl = "{url}"\nretries = 2\n'
    )
    summary = nightly(
        NightlyParams(
            data_root=data_root,
            dataset_config=config,
            model=LightFMParams(no_components=8, epochs=3),
            gate=GateParams(min_lift=-1.0, relaxed_on_purpose="the HTTP source is under test"),
        )
    )
    assert summary.counts["products"] == len(catalogue.records)
    assert summary.published_path is not None
    recs = pd.read_parquet(summary.published_path)
    assert set(recs["product_id"]) <= {r["product_id"] for r in catalogue.records}
