"""Errors of sources, and URLs made safe to show."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from tasks.errors import SourceError

__all__ = ["SourceError", "masked_url"]


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
