"""What an upstream simple index says of a project's files beyond the lock: yanked, requires-python.

Parsing is pure (`parse_project_page`); `project_pages` is the one adapter that fetches pages.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from packaging.utils import canonicalize_name

from airgap_mirror import logs
from airgap_mirror.urls import index_project_url, strip_credentials

if TYPE_CHECKING:
    from airgap_mirror.credentials import Credentials

_log = logs.get(__name__)

__all__ = ["FileStatus", "parse_project_page", "project_pages", "page_digests", "page_url"]

_ACCEPT = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"


@dataclass(frozen=True, slots=True, kw_only=True)
class FileStatus:
    yanked: str | None  # None: not yanked; "" yanked without a reason
    requires_python: str | None
    sha256: str | None = None
    url: str | None = None  # where the file is (absolute; without the fragment)
    provenance: str | None = None  # its PEP 740 provenance's URL (absolute), where the index names one


class ProjectPage(dict[str, FileStatus]):
    """A project page's files by name, and the project's status as the index gives it (PEP 792:
    `active`, `archived`, `quarantined` or `deprecated`; a page that says none is `active`)."""

    status: str = "active"
    reason: str | None = None


@functools.cache
def _links_parser() -> type:
    """The PEP 503 page parser's class, made when an HTML page is first read: html.parser is 5 ms of
    every start, and PyPI and most indexes answer in JSON."""
    from html.parser import HTMLParser

    class _Links(HTMLParser):
        def __init__(self, base: str) -> None:
            super().__init__()
            self._base = base
            self.files: dict[str, FileStatus] = {}
            self.meta: dict[str, str] = {}  # <meta name=... content=...> (PEP 792's project status)
            self._attrs: dict[str, str | None] | None = None
            self._text: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag == "a":
                self._attrs = dict(attrs)
                self._text = []
            elif tag == "meta":
                named = dict(attrs)
                if named.get("name") and named.get("content") is not None:
                    self.meta[str(named["name"])] = str(named["content"])

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
                    url=urljoin(self._base, href) if href else None,  # (the parser unescaped it)
                    provenance=urljoin(self._base, p) if (p := self._attrs.get("data-provenance")) else None,
                )
                self._attrs = None

    return _Links


def parse_project_page(body: bytes, content_type: str, base: str = "") -> ProjectPage:
    """Filename → status, from a PEP 691 JSON or PEP 503 HTML project page; file URLs relative to
    the page are made absolute against `base`, the page's URL. The project's PEP 792 status with it."""
    if "json" in content_type:
        doc = json.loads(body)
        out = ProjectPage()
        status = doc.get("project-status") if isinstance(doc, dict) else None
        if isinstance(status, dict) and isinstance(status.get("status"), str):
            out.status = status["status"]
            out.reason = status.get("reason") if isinstance(status.get("reason"), str) else None
        new = FileStatus.__new__
        for f in doc.get("files", []):
            y = f.get("yanked", False)
            url = f.get("url")
            if url and not url.startswith(("https://", "http://")):  # (PyPI's are absolute: no urljoin for 4,000 files)
                url = urljoin(base, url)
            # A numpy page has 4,415 files: built without the frozen dataclass's __init__ (8x faster).
            st = new(FileStatus)
            prov = f.get("provenance")
            for k, v in (("yanked", None if y is False else ("" if y is True else str(y))),
                         ("requires_python", f.get("requires-python")), ("sha256", (f.get("hashes") or {}).get("sha256")),
                         ("url", url.partition("#")[0] if url else None),
                         ("provenance", urljoin(base, prov) if isinstance(prov, str) and prov else None)):
                object.__setattr__(st, k, v)
            out[f["filename"]] = st
        return out
    parser = _links_parser()(base)
    parser.feed(body.decode("utf-8", "replace"))
    page = ProjectPage(parser.files)
    page.status = parser.meta.get("pypi:project-status") or "active"  # (PEP 792's meta tags)
    page.reason = parser.meta.get("pypi:project-status-reason")
    return page


def page_url(index_url: str, project: str) -> str:
    """The URL of a project's page on an index, as uv's log names it (no credentials)."""
    return strip_credentials(index_project_url(index_url, canonicalize_name(project)))


def project_pages(requests: list[tuple[str, str]], *, concurrency: int = 16,
                  credentials: Credentials | None = None,
                  known: Mapping[str, dict[str, FileStatus]] | None = None) -> dict[tuple[str, str], dict[str, FileStatus]]:
    """Fetch (index_url, project) pages in parallel, but those `known` by URL; a page that cannot be
    had is left out.

    Keys carry index URLs as the caller has them (possibly with credentials): they stay in memory.
    """
    known = known or {}
    out: dict[tuple[str, str], dict[str, FileStatus]] = {}
    by_url: dict[str, list[tuple[str, str]]] = {}
    for key in dict.fromkeys(requests):
        url = page_url(*key)
        if url in known:  # read in this run already (the resolution memo's read of the same page)
            out[key] = known[url]
        else:
            by_url.setdefault(url, []).append(key)

    def one(client: Any, url: str) -> None:
        try:
            resp = client.get(url, headers={"Accept": _ACCEPT})
            if resp.status_code == 200:
                files = parse_project_page(resp.content, resp.headers.get("content-type", ""), url)
                out.update((key, files) for key in by_url[url])
        except Exception:  # noqa: BLE001  (best effort: the lock already pins the file)
            _log.debug("the page %s for a lock's upload times could not be read", url, exc_info=True)

    from airgap_mirror.fetch import for_each_url

    for_each_url(list(by_url), one, concurrency=concurrency, credentials=credentials)
    return out


Validator = tuple["str | None", "str | None", "str | None"]  # (etag, last-modified, digest)


class Validated(tuple):  # type: ignore[type-arg]
    """A Validator that also says until when the index lets it be used without asking again: its
    `Cache-Control: max-age` (less `Age`), as time.time() seconds; None: ask every time."""

    fresh_until: float | None

    def __new__(cls, value: Validator, fresh_until: float | None) -> Validated:
        obj = super().__new__(cls, value)
        obj.fresh_until = fresh_until
        return obj


_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.I)


def fresh_until(headers: Any, now: float) -> float | None:
    """How long a response may be used without revalidation, by its Cache-Control (RFC 9111):
    max-age less Age; none when it says no-cache or no-store, or gives no max-age."""
    cc = str(headers.get("cache-control") or "")
    if not cc or re.search(r"no-cache|no-store", cc, re.I):
        return None
    m = _MAX_AGE.search(cc)
    if not m or int(m.group(1)) <= 0:
        return None
    try:
        age = int(str(headers.get("age") or "0").strip())
    except ValueError:
        age = 0
    return now + int(m.group(1)) - max(0, age)


def _settled(modified: str | None, date: str | None) -> str | None:
    """Last-Modified as a validator only when it is older than the response by 2 s or more: it has
    one-second resolution, so a page changed again within that second would answer 304."""
    from email.utils import parsedate_to_datetime

    try:
        if modified and date and (parsedate_to_datetime(date) - parsedate_to_datetime(modified)).total_seconds() >= 2:
            return modified
    except (TypeError, ValueError):
        pass
    return None


def page_digests(requests: Mapping[str, Validator], *, concurrency: int = 32,
                 credentials: Credentials | None = None,
                 on_body: Callable[[str, bytes, str], None] | None = None) -> dict[str, Validator]:
    """Read each page URL, conditionally when a validator is known; → (etag, last-modified, digest).

    The digest is sha256 of the body ("absent" for 404/410); 304 keeps the known digest. A page that
    cannot be read has digest None, so nothing that depends on it is taken as unchanged. Each body
    read (200) is also handed to `on_body(url, body, content_type)`.
    """
    out: dict[str, Validator] = {}

    lock = threading.Lock()  # on_body's callers expect one body at a time

    def one(client: Any, url: str) -> None:
        etag, modified, digest = requests[url]
        headers = {"Accept": _ACCEPT}
        if digest is not None and etag:
            headers["If-None-Match"] = etag
        if digest is not None and modified:
            headers["If-Modified-Since"] = modified
        try:
            resp = client.get(url, headers=headers)
        except Exception:  # noqa: BLE001  (unknown: the resolution that read it runs again)
            _log.debug("revalidating %s failed", url, exc_info=True)
            out[url] = (None, None, None)
            return
        fresh = fresh_until(resp.headers, time.time())
        if resp.status_code == 304 and digest is not None:
            out[url] = Validated((etag, modified, digest), fresh)
        elif resp.status_code == 200:
            if on_body is not None:
                with lock:
                    on_body(url, resp.content, resp.headers.get("content-type", ""))
            out[url] = Validated((resp.headers.get("etag"), _settled(resp.headers.get("last-modified"), resp.headers.get("date")),
                                  "sha256:" + hashlib.sha256(resp.content).hexdigest()), fresh)
        elif resp.status_code in (404, 410):
            out[url] = (None, None, "absent")
        else:
            out[url] = (None, None, None)

    from airgap_mirror.fetch import for_each_url

    for_each_url(list(requests), one, concurrency=concurrency, credentials=credentials)
    return out
