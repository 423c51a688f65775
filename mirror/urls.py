"""URL helpers: removing credentials before a URL is logged or recorded, and joining index URLs."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact", "strip_credentials", "index_project_url"]


def strip_credentials(url: str) -> str:
    """The URL with any user:password@ removed; what the store and logs may keep."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def redact(url: str) -> str:
    """The URL with credentials shown as *** (for messages)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))


def index_project_url(index_url: str, project: str) -> str:
    return index_url.rstrip("/") + "/" + project + "/"
