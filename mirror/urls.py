"""URL helpers: removing credentials before a URL is logged or recorded, and joining index URLs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit, urlunsplit

__all__ = ["redact", "redact_text", "remember_secrets", "strip_credentials", "index_project_url"]


_NETLOC_USER = re.compile(r"(//)[^/?#]*@")


def strip_credentials(url: str) -> str:
    """The URL with any user:password@ removed; what the store and logs may keep."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a valid URL (an unclosed IPv6 bracket): cut the userinfo by pattern
        return _NETLOC_USER.sub(r"\1", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def redact(url: str) -> str:
    """The URL with credentials shown as *** (for messages)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _NETLOC_USER.sub(r"\1***@", url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, "***@" + host, parts.path, parts.query, parts.fragment))


def index_project_url(index_url: str, project: str) -> str:
    return index_url.rstrip("/") + "/" + project + "/"


_USERINFO = re.compile(r"(//)[^/@\s\"'<>]+@")
# Every value this process put in for a ${VAR}: kept out of every message, whatever shape it is in.
_REMEMBERED: set[str] = set()


def remember_secrets(values: Iterable[str]) -> None:
    """Values that must never be printed (what ${VAR} expanded to)."""
    _REMEMBERED.update(v for v in values if v and len(v) >= 4)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Free text (a tool's stderr, an error) with URL credentials, the given secret values and every
    value a ${VAR} expanded to shown as ***."""
    text = _USERINFO.sub(r"\1***@", text)
    for secret in sorted({s for s in (*secrets, *_REMEMBERED) if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, "***").replace(quote(secret, safe=""), "***")
    return text
