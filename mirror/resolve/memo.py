"""The resolution memo: a resolution is reused when nothing uv read for it has changed.

A nightly sync re-resolves every app. uv revalidates every index page and every wheel's metadata
it reads, and from an index or proxy that sends no cache headers it downloads and parses them all
again: on the corpus that was 80 % of a no-op resync. A resolution is a function of its inputs
(requirements, constraints, target, indexes, options, uv's version) and of the index pages uv
read; wheel files and their metadata never change under a URL that names their hash. So each
resolution records the pages uv read (from uv's own log of its HTTP cache) and a digest of each.
The next sync fetches those pages itself, once each however many apps read them, with a
conditional request when the index gave a validator; when none changed, the recorded result
(a lock, or a deterministic failure such as "no solution") is used and uv does not run.

Not reused: anything after `--refresh`, a record older than `MAX_AGE`, a failure that may be
transient (network), and a record one of whose pages cannot be read now.

Layout: cache/resolutions/<key[:2]>/<key>.json, and cache/pages.json (validators and digests of
page bodies). Both are caches: deleting them costs one slow sync, nothing else. Page URLs are
recorded without credentials; credentials are applied by host when the pages are fetched.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airgap_mirror import logs
from airgap_mirror.resolve.upstream import FileStatus, Validated, Validator, parse_project_page
from airgap_mirror.store import atomic_write
from airgap_mirror.store.canonical import canonical_json
from airgap_mirror.urls import strip_credentials

_log = logs.get(__name__)

__all__ = ["MEMO_FORMAT", "MAX_AGE", "Recorded", "ResolutionMemo", "memo_key", "pages_read", "is_deterministic",
           "expired_records"]

MEMO_FORMAT = 1
MAX_AGE = timedelta(days=7)

# uv's cached HTTP client logs every URL it reads from cache or network, under -v.
_LOGGED_URL = re.compile(r"(?:No cache entry for|Found (?:fresh|stale) response for): (\S+)")
# Distribution files (and their .metadata) are immutable: only pages can change under a URL.
_FILE_SUFFIXES = (".whl", ".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".metadata", ".egg")
# Failures that the same pages will give again; anything naming the network is not one of them.
_DETERMINISTIC = ("No solution found", "Failed to build", "has invalid metadata")
_TRANSIENT = ("Request failed", "Failed to fetch", "error sending request", "dns error", "timed out",
              "Connection", "connection", "network")


def pages_read(uv_log: str) -> tuple[str, ...]:
    """The index and find-links pages in uv's -v log (credentials stripped), in first-read order."""
    out: dict[str, None] = {}
    for m in _LOGGED_URL.finditer(uv_log):
        url = m.group(1).rstrip(".,;")
        path = url.split("?", 1)[0].split("#", 1)[0]
        if not path.lower().endswith(_FILE_SUFFIXES):
            out.setdefault(strip_credentials(url), None)
    return tuple(out)


def is_deterministic(error: str) -> bool:
    """Whether a resolution failure would recur with the same inputs and pages."""
    return any(s in error for s in _DETERMINISTIC) and not any(s in error for s in _TRANSIENT)


def memo_key(fields: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of everything a resolution depends on besides the pages."""
    return hashlib.sha256(canonical_json({"memo_format": MEMO_FORMAT, **fields})).hexdigest()


def folder_digest(folder: Path) -> str:
    """A find-links folder's listing (names, sizes, times): a new or replaced file changes it."""
    h = hashlib.sha256()
    for p in sorted(folder.iterdir()):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True, slots=True, kw_only=True)
class Recorded:
    """One recorded resolution: its pylock, or its deterministic error, and the pages it read."""

    created: str
    pylock: str | None
    error: str | None
    pages: Mapping[str, str]  # page URL (no credentials) → digest of its body when resolved

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": MEMO_FORMAT, "created": self.created, "pylock": self.pylock,
                "error": self.error, "pages": dict(sorted(self.pages.items()))}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Recorded:
        return cls(created=d["created"], pylock=d.get("pylock"), error=d.get("error"), pages=dict(d["pages"]))


# Reads pages given what was known of each, (etag, last-modified, digest) or (None, None, None),
# handing each body read to `on_body(url, body, content_type)`; the network adapter is
# mirror.upstream.page_digests.
PageReader = Callable[..., Mapping[str, Validator]]


class ResolutionMemo:
    """Recorded resolutions under `cache`, and the page digests of this run (each page read once)."""

    def __init__(self, cache: Path, read_pages: PageReader, *, now: datetime | None = None) -> None:
        self.root = cache / "resolutions"
        self._validators_file = cache / "pages.json"
        self._read_pages = read_pages
        self._now = now or datetime.now(UTC)
        self._validators: dict[str, Validator] | None = None
        self.current: dict[str, str | None] = {}  # digests read in this run
        self.reused = 0  # resolutions answered from the memo in this run
        self.resolved = 0  # resolutions uv ran
        self.fresh = 0  # pages not asked again: the index said they were still fresh
        self._lock = threading.RLock()  # `read` from the sync and from the recording thread
        self._recorder: cf.ThreadPoolExecutor | None = None
        self._recording: list[cf.Future[None]] = []
        # Pages the sync also wants parsed (yanked, requires-python of files new to the catalog):
        # read once, here, for both. URL → filename → FileStatus.
        self.parsed: dict[str, dict[str, FileStatus]] = {}
        self._inflight: dict[str, threading.Event] = {}  # pages being read now, by any thread
        self._prefetcher: cf.ThreadPoolExecutor | None = None

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def load(self, key: str) -> Recorded | None:
        try:
            rec = Recorded.from_dict(json.loads(self._path(key).read_bytes()))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # none yet, or unreadable: resolve again
        try:
            created = datetime.fromisoformat(rec.created)
        except ValueError:
            return None
        return rec if self._now - created <= MAX_AGE else None

    def read(self, urls: Iterable[str], parse: Iterable[str] = ()) -> None:
        """Digest every page in `urls` not read yet in this run (concurrently). A page the index said
        is still fresh (its Cache-Control max-age, as pip honours it) is not asked again. Pages in
        `parse` are read in full (not conditionally) and kept parsed in `parsed`. A page another
        thread is reading is waited for, not read twice."""
        urls, parse = list(dict.fromkeys(urls)), set(parse)
        while True:
            with self._lock:
                validators = self._load_validators()
                now = time.time()
                todo, bodies, waits = [], set(), []
                for url in dict.fromkeys([*urls, *parse]):
                    body = url in parse and url not in self.parsed
                    if url in self._inflight:
                        waits.append(self._inflight[url])
                    elif body:
                        todo.append(url)
                        bodies.add(url)
                    elif url in self.current:
                        continue
                    elif (v := validators.get(url)) is not None and v[2] is not None and (getattr(v, "fresh_until", None) or 0) > now:
                        self.current[url] = v[2]
                        self.fresh += 1
                    else:
                        todo.append(url)
                done = threading.Event()
                for url in todo:
                    self._inflight[url] = done
            if todo:
                got: Mapping[str, Validator] = {}
                try:
                    known = {u: (None, None, None) if u in bodies else validators.get(u, (None, None, None)) for u in todo}
                    got = (self._read_pages(known, on_body=lambda u, b, t: self._keep(u, b, t) if u in bodies else None)  # noqa: B023 (read in this iteration)
                           if bodies else self._read_pages(known))
                finally:
                    with self._lock:
                        for url in todo:
                            v = got.get(url, (None, None, None))
                            self.current[url] = v[2]
                            if v[2] is not None:
                                validators[url] = v
                            del self._inflight[url]
                    done.set()
            if not waits:
                return
            for event in waits:  # then once more: what they read may not have been in full
                event.wait()
            urls = [u for u in urls if u not in self.current]

    def prefetch(self, url: str) -> None:
        """Start reading a page uv has just started to read, in full when nothing is known of it
        (a page new to the memo is usually wanted parsed too): by the time uv is done, the pages it
        read are digested. Never raises; `finish` waits."""
        if url in self.current or url in self._inflight:
            return
        with self._lock:
            if self._prefetcher is None:
                self._prefetcher = cf.ThreadPoolExecutor(max_workers=32, thread_name_prefix="prefetch")
            unknown = url not in self._load_validators()
            self._prefetcher.submit(self._quietly, url, unknown)

    def _quietly(self, url: str, body: bool) -> None:
        try:  # a page that cannot be read now is read again when needed
            self.read([url], [url] if body else [])
        except Exception:  # noqa: BLE001
            _log.debug("reading %s ahead failed; it is read again when needed", url, exc_info=True)

    def _keep(self, url: str, body: bytes, content_type: str) -> None:
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):  # unreadable: left out
            self.parsed[url] = parse_project_page(body, content_type, url)

    def page_files(self, url: str) -> Mapping[str, FileStatus] | None:
        """A page's files as this run read it: waits for the page being read; reads it (in full)
        when nothing read it yet. None when it was read only for its digest (unchanged since the
        last run, so most of its files are in the store already) or cannot be read now."""
        with self._lock:
            if url in self.parsed:
                return self.parsed[url]
            event = self._inflight.get(url)
            unread = event is None and url not in self.current
        if event is not None:
            event.wait()
        elif unread:
            self._quietly(url, True)
        return self.parsed.get(url)

    def record_later(self, done: Sequence[tuple[str, bytes | None, str | None, Sequence[str]]],
                     parse: Iterable[str] = ()) -> cf.Future[None] | None:
        """Read the pages of these (key, pylock, error, pages), and those in `parse` in full, and
        `record` each, in a thread of its own, so the sync downloads meanwhile; `finish` waits for
        it, and so does the returned future."""
        parse = list(parse)
        if not done and not parse:
            return None
        if self._recorder is None:
            self._recorder = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="memo")

        def work() -> None:
            self.read((u for *_, pages in done for u in pages), parse)
            for key, pylock, error, pages in done:
                self.record(key, pylock=pylock, error=error, pages=pages)

        fut = self._recorder.submit(work)
        self._recording.append(fut)
        return fut

    def finish(self) -> None:
        """Wait for the records being written, then keep the validators for the next run."""
        if self._prefetcher is not None:
            self._prefetcher.shutdown(wait=True)
        if self._recorder is not None:
            for fut in self._recording:
                fut.result()
            self._recorder.shutdown()
        self.parsed.clear()
        self.save_validators()

    def unchanged(self, rec: Recorded) -> bool:
        """Whether every page `rec` read has the same digest now (read them first with `read`)."""
        return all(self.current.get(u) is not None and self.current.get(u) == d for u, d in rec.pages.items())

    def record(self, key: str, *, pylock: bytes | None, error: str | None, pages: Sequence[str]) -> bool:
        """Keep a resolution whose pages were read in this run; False when a page could not be read."""
        digests = {u: self.current.get(u) for u in pages}
        if any(d is None for d in digests.values()):
            return False
        rec = Recorded(created=self._now.isoformat(timespec="seconds"),
                       pylock=pylock.decode("utf-8") if pylock is not None else None, error=error,
                       pages={u: d for u, d in digests.items() if d is not None})
        try:
            atomic_write(self._path(key), canonical_json(rec.to_dict()))
        except OSError:  # a cache: a full disk costs the next sync a uv run, not this sync its result
            return False
        return True

    def save_validators(self) -> None:
        if self._validators is not None:
            with contextlib.suppress(OSError):
                atomic_write(self._validators_file, canonical_json(
                    {u: [*v, getattr(v, "fresh_until", None)] for u, v in sorted(self._validators.items())}))

    def _load_validators(self) -> dict[str, Validator]:
        if self._validators is None:
            try:
                raw = json.loads(self._validators_file.read_bytes())
                self._validators = {u: Validated((v[0], v[1], v[2]), v[3] if len(v) > 3 else None)
                                    for u, v in raw.items()}
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                self._validators = {}
        return self._validators


def expired_records(cache: Path, now: datetime | None = None) -> list[Path]:
    """Records no sync will use again (older than MAX_AGE, or unreadable): what `mirror gc` removes."""
    now = now or datetime.now(UTC)
    out = []
    for path in sorted((cache / "resolutions").glob("??/*.json")):
        try:
            created = datetime.fromisoformat(json.loads(path.read_bytes())["created"])
        except (OSError, ValueError, KeyError, TypeError):
            out.append(path)
            continue
        if now - created > MAX_AGE:
            out.append(path)
    return out
