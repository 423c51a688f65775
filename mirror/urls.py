"""URL helpers: removing credentials before a URL is logged or recorded, and joining index URLs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["redact", "redact_text", "strip_credentials", "index_project_url"]


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


_USERINFO = re.compile(r"(//)[^/@\s\"'<>]+@")


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text (a tool's stderr) with URL credentials and any known secret values shown as ***."""
    text = _USERINFO.sub(r"\1***@", text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
    return text
