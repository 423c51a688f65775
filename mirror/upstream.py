"""What an upstream simple index says of a project's files beyond the lock: yanked, requires-python.

Parsing is pure (`parse_project_page`); `project_pages` is the one adapter that fetches pages.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from .errors import MirrorError
from .urls import index_project_url, strip_credentials

if TYPE_CHECKING:
    from .credentials import Credentials

__all__ = ["FileStatus", "parse_project_page", "project_pages"]

_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileStatus:
    yanked: str | None  # None: not yanked; "" yanked without a reason
    requires_python: str | None
    sha256: str | None = None


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.files: dict[str, FileStatus] = {}
        self._attrs: dict[str, str | None] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._attrs = dict(attrs)
            self._text = []

    def handle_data(self, data: str) -> None:
        if self._attrs is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._attrs is not None:
            href, _, fragment = (self._attrs.get("href") or "").partition("#")
            name = "".join(self._text).strip() or href.rsplit("/", 1)[-1]
            yanked = self._attrs.get("data-yanked")
            self.files[name] = FileStatus(
                yanked=(yanked or "") if "data-yanked" in self._attrs else None,
                requires_python=self._attrs.get("data-requires-python"),
                sha256=fragment[len("sha256="):] if fragment.startswith("sha256=") else None,
            )
            self._attrs = None


def parse_project_page(body: bytes, content_type: str) -> dict[str, FileStatus]:
    """Filename → status, from a PEP 691 JSON or PEP 503 HTML project page."""
    if "json" in content_type:
        doc = json.loads(body)
        out = {}
        for f in doc.get("files", []):
            y = f.get("yanked", False)
            out[f["filename"]] = FileStatus(
                yanked=None if y is False else ("" if y is True else str(y)),
                requires_python=f.get("requires-python"),
                sha256=(f.get("hashes") or {}).get("sha256"),
            )
        return out
    parser = _Links()
    parser.feed(body.decode("utf-8", "replace"))
    return parser.files


def project_pages(requests: list[tuple[str, str]], *, concurrency: int = 16,
                  credentials: "Credentials | None" = None) -> dict[tuple[str, str], dict[str, FileStatus]]:
    """Fetch (index_url, project) pages in parallel; a page that cannot be had is left out.

    Keys carry index URLs as the caller has them (possibly with credentials): they stay in memory.
    """
    from .fetch import make_client

    async def go() -> dict[tuple[str, str], dict[str, FileStatus]]:
        out: dict[tuple[str, str], dict[str, FileStatus]] = {}
        sem = asyncio.Semaphore(concurrency)
        async with make_client(concurrency=concurrency, credentials=credentials) as client:

            async def one(key: tuple[str, str]) -> None:
                async with sem:
                    try:
                        url = strip_credentials(index_project_url(key[0], canonicalize_name(key[1])))
                        resp = await client.get(url, headers={"Accept": _ACCEPT})
                        if resp.status_code == 200:
                            out[key] = parse_project_page(resp.content, resp.headers.get("content-type", ""))
                    except (Exception, MirrorError):  # best effort: the lock already pins the file
                        pass

            await asyncio.gather(*(one(k) for k in dict.fromkeys(requests)))
        return out

    return asyncio.run(go()) if requests else {}
