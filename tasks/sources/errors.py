"""Errors of sources, and URLs made safe to show."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


class SourceError(RuntimeError):
    """A source could not be read; the message names the source and the table.

    `transient` errors (the database or API did not answer) are retried; the others (a
    missing table or column, a bad URL, a malformed page) would fail the same way again.
    """

    def __init__(self, message: str, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def masked_url(url: str) -> str:
    """The URL as it may be shown to people: any password replaced by ***."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
