"""HTTP JSON API source: a paginated endpoint, e.g. a product catalogue.

Each page is a JSON object holding a list of records under `items_key` and the URL of the
next page under `next_key` (absolute or relative; null or absent on the last page):

    {"items": [{"product_id": "P1", ...}, ...], "next": "/api/products?page=2"}

Requests time out after `timeout_s`; a 5xx answer, a timeout or a refused connection is
retried `retries` times with exponential backoff; a 4xx answer or a malformed page fails at
once, naming the page. This module is the worked example of adding a source (README).
"""

from __future__ import annotations

import time
from urllib.parse import urljoin

import httpx
import pandas as pd

from tasks.ingest.sources.errors import SourceError, masked_url, redact

MAX_PAGES = 100_000
BACKOFF_S = 0.5


def _get_page(client: httpx.Client, url: str, retries: int) -> httpx.Response:
    shown = masked_url(url)
    for attempt in range(retries + 1):
        try:
            response = client.get(url)
        except httpx.InvalidURL:
            # httpx's message quotes a piece of the URL ("Invalid port: 'Hash'"), which may
            # be a piece of the password: it is not shown.
            raise SourceError(
                f"GET {shown}: not a valid URL (percent-encode any #, /, ?, @ or : in "
                "the user name or password)"
            ) from None
        except (httpx.TimeoutException, httpx.TransportError) as error:
            problem = f"{type(error).__name__}: {redact(str(error), url)}"
        else:
            if response.status_code < 500:
                if response.is_error:
                    raise SourceError(f"GET {shown} answered {response.status_code}")
                return response
            problem = f"HTTP {response.status_code}"
        if attempt < retries:
            time.sleep(BACKOFF_S * 2**attempt)
    raise SourceError(f"GET {shown} failed after {retries + 1} attempts: {problem}", transient=True)


def read_paginated_json(
    url: str,
    items_key: str = "items",
    next_key: str = "next",
    timeout_s: float = 10.0,
    retries: int = 3,
) -> pd.DataFrame:
    """Follow `next` links from `url` and return all records as one DataFrame."""
    records: list[dict] = []
    seen: set[str] = set()
    page_url: str | None = url
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        for page in range(1, MAX_PAGES + 1):
            if page_url is None:
                break
            if page_url in seen:
                raise SourceError(
                    f"{masked_url(page_url)}: page {page} links back to a page already read"
                )
            seen.add(page_url)
            response = _get_page(client, page_url, retries)
            where = f"{masked_url(page_url)} (page {page})"
            try:
                body = response.json()
            except ValueError:
                raise SourceError(f"{where}: the answer is not JSON") from None
            if not isinstance(body, dict) or not isinstance(body.get(items_key), list):
                raise SourceError(f"{where}: expected an object with a list under {items_key!r}")
            items = body[items_key]
            if not all(isinstance(item, dict) for item in items):
                raise SourceError(f"{where}: every item under {items_key!r} must be an object")
            records += items
            next_url = body.get(next_key)
            if next_url is not None and not isinstance(next_url, str):
                raise SourceError(f"{where}: {next_key!r} must be a URL or null")
            page_url = urljoin(page_url, next_url) if next_url else None
        else:
            raise SourceError(f"{masked_url(url)}: more than {MAX_PAGES} pages")
    return pd.DataFrame.from_records(records)
