"""Errors of sources, and URLs made safe to show.

A database URL is read by SQLAlchemy (`sqlalchemy.engine.make_url`), whose grammar is not
RFC 3986: everything between `user:` and the first `@` is the password, `#`, `/`, `?`, `:`
and non-ASCII characters included. `masked_url` finds the password as SQLAlchemy does (and
as RFC 3986 does, for the HTTP source) and replaces it in the text as written, so nothing
else of the URL changes; a URL it cannot parse is never shown at all. `redact` cleans any
other text (a driver's error message) of the URL and of the secrets in it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, unquote_plus, urlsplit

from sqlalchemy.engine import make_url

from tasks.errors import SourceError

__all__ = ["SourceError", "masked_url", "redact"]

MASK = "***"
UNPARSEABLE = "<a URL that cannot be parsed, not shown>"

# SQLAlchemy's own grammar (sqlalchemy/engine/url.py:_parse_url) up to the host: the user
# is everything up to the first `:` or `/`, the password everything up to the first `@`.
_SCHEME = re.compile(r"[\w+]+://")
_USERINFO = re.compile(r"(?P<user>[^:/]*)(?::(?P<password>[^@]*))?@")
# Query parameters whose value is a credential (psycopg's `password`, an API's `token`).
_SECRET_PARAMETER = re.compile(r"pass|pwd|secret|token|key|auth|credential|signature", re.I)


def _sqlalchemy_spans(url: str) -> list[tuple[int, int]]:
    """Where the password is in `url` as SQLAlchemy reads it; ValueError if it cannot."""
    try:
        parsed = make_url(url)
    except Exception as error:  # ArgumentError, or ValueError for a bad port
        raise ValueError("unparseable") from error
    scheme = _SCHEME.match(url)
    if scheme is None:
        raise ValueError("unparseable")
    start = scheme.end()
    userinfo = _USERINFO.match(url, start)
    if userinfo is None or userinfo.group("password") is None:
        if parsed.password is not None:  # SQLAlchemy's grammar changed: show nothing
            raise ValueError("unparseable")
        return []
    begin, end = userinfo.span("password")
    if unquote(userinfo.group("password")) != parsed.password:
        raise ValueError("unparseable")
    # A raw `@` in the password ends it early; SQLAlchemy then takes the rest as part of the
    # host ("b@127.0.0.1"), which no host name can be: hide up to the host's last `@`.
    host_end = len(url)
    for stop in "/?":
        found = url.find(stop, userinfo.end())
        if found != -1:
            host_end = min(host_end, found)
    last_at = url.rfind("@", userinfo.end(), host_end)
    if last_at != -1:
        end = last_at
    return [(begin, end)]


def _rfc3986_spans(url: str) -> list[tuple[int, int]]:
    """Where the password is in `url` as RFC 3986 (urllib, httpx) reads it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    userinfo, at, _ = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return []
    begin = url.find("//" + parts.netloc)
    if begin == -1:
        return []
    begin += 2 + userinfo.index(":") + 1
    return [(begin, begin + len(userinfo) - userinfo.index(":") - 1)]


def _query_spans(url: str) -> list[tuple[int, int]]:
    """Values of query parameters named like credentials (`?password=`, `&api_token=`)."""
    spans = []
    for parameter in re.finditer(r"[?&](?P<name>[^=&]*)=(?P<value>[^&]*)", url):
        if _SECRET_PARAMETER.search(unquote(parameter.group("name"))) and parameter.group("value"):
            spans.append(parameter.span("value"))
    return spans


def _spans(url: str) -> list[tuple[int, int]]:
    """Every secret's place in `url`, merged; ValueError if it cannot be parsed."""
    found = _sqlalchemy_spans(url) + _rfc3986_spans(url) + _query_spans(url)
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(found):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def masked_url(url: str) -> str:
    """The URL as it may be shown to people: its password (and any credential in its
    query) replaced by ***, everything else as written. A URL that cannot be parsed is
    replaced as a whole: its scheme, if it has one, and a placeholder."""
    if not url:
        return url
    try:
        spans = _spans(url)
    except ValueError:
        scheme = re.match(r"[A-Za-z][\w+.-]{0,40}://", url)
        return (scheme.group(0) if scheme else "") + UNPARSEABLE
    shown, last = [], 0
    for begin, end in spans:
        shown += [url[last:begin], MASK]
        last = end
    return "".join(shown + [url[last:]])


def secrets_in(url: str) -> list[str]:
    """The texts of `url` that must never be shown: each password and credential, as
    written and decoded; the whole URL when it cannot be parsed."""
    try:
        spans = _spans(url)
    except ValueError:
        return [url] if url else []
    found = set()
    for begin, end in spans:
        raw = url[begin:end]
        # after a raw `@`, SQLAlchemy reads the rest as the host, which drivers do show
        tails = {raw.split("@", cut)[-1] for cut in range(1, raw.count("@") + 1)}
        for value in {raw, unquote(raw), unquote_plus(raw)} | tails:
            # as written, decoded, and quoted the way libpq's conninfo quotes it
            found |= {value, value.replace("\\", "\\\\").replace("'", "\\'")}
    return sorted((s for s in found if s), key=len, reverse=True)


def redact(text: str, url: str) -> str:
    """`text` (a driver's message, say) with `url` masked and any of its secrets of four
    characters or more replaced by ***; shorter ones would blank ordinary words."""
    text = text.replace(url, masked_url(url))
    for secret in secrets_in(url):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text
