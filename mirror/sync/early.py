"""Files that start downloading while uv still resolves (`EarlyDownloads`: the versions uv picks, heard
from its log), and what the catalog records of each file that lands.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from airgap_mirror import logs
from airgap_mirror.fetch import Downloads, FetchItem
from airgap_mirror.resolve import (
    Pin,
    PinnedFile,
    pick_files,
)
from airgap_mirror.resolve.memo import ResolutionMemo
from airgap_mirror.resolve.targets import PythonTarget
from airgap_mirror.resolve.upstream import FileStatus, page_url
from airgap_mirror.store import CatalogFile, Store
from airgap_mirror.urls import strip_credentials

if TYPE_CHECKING:
    from .jobs import Job  # (relative, as jobs.py names this module: the import cycle is one module pair)

_log = logs.get(__name__)



FileFacts = tuple["str | None", "str | None", "tuple[str, ...] | None"]  # requires-python, metadata blob, build requires


def file_facts(store: Store, f: PinnedFile) -> FileFacts:
    """What a stored file says of itself: a wheel's METADATA (kept as a blob, for PEP 658) and its
    Requires-Python; an sdist's Requires-Python and build requirements."""
    from airgap_mirror.store.distinfo import read_sdist, read_wheel  # (after the downloads: not on the way to uv)

    path = store.blob_path(f.sha256)
    if f.kind == "wheel":
        info = read_wheel(path)
        return (info.requires_python, store.put_bytes(info.metadata), None) if info is not None else (None, None, None)
    sinfo = read_sdist(path)
    return sinfo.requires_python, None, sinfo.build_requires


class EarlyDownloads:
    """Files fetched while uv is still resolving. uv's log names each version its resolver picks, as
    it picks it, and the file it read that version's metadata from: that file starts downloading
    at once (its hash is checked when the lock gives it). The memo is reading the project's page
    meanwhile (uv has just read it), and from it the other files the target takes of that version
    (`pick_files`, as the lock's are picked: a second wheel for another tag) start too. The fetch
    phase then waits for them with the rest, instead of starting after the whole resolution. A
    version that backtracking drops leaves its files in the store unreferenced, until `mirror gc`;
    so once uv picks a second version of a project in a resolution (it is backtracking, as it may
    through dozens of botocore versions), that resolution starts nothing more ahead of its lock."""

    def __init__(self, store: Store, memo: ResolutionMemo, downloads: Downloads) -> None:
        self.store, self.memo, self.downloads = store, memo, downloads
        self.facts: dict[str, FileFacts] = {}  # what each file landed early says of itself
        self._seen: set[tuple[str, str, str, tuple[str, ...]]] = set()
        self._urls: dict[str, str] | None = None
        self._picks: dict[tuple[tuple[str, str], str], str] = {}  # (job, project) → the version picked first
        self._backtracking: set[tuple[str, str]] = set()  # jobs whose uv changed a pick
        self._lock = threading.Lock()
        self._pool = cf.ThreadPoolExecutor(max_workers=4, thread_name_prefix="early")

    def hearing(self, job: Job) -> Callable[[str, str, str | None, Sequence[str]], None]:
        """uv_compile's on_select for `job`: start the files of each version uv picks."""
        def heard(name: str, version: str, file_url: str | None, pages: Sequence[str]) -> None:
            try:  # called from uv's log loop: a head start never stops a resolution
                start(name, version, file_url, pages)
            except Exception:  # noqa: BLE001
                _log.debug("no early download for %s %s", name, version, exc_info=True)

        def start(name: str, version: str, file_url: str | None, pages: Sequence[str]) -> None:
            key = (job.target.id, canonicalize_name(name), version, job.index.search_order)
            if key[1] in job.direct:
                return
            with self._lock:
                first = self._picks.setdefault((job.key, key[1]), version)
                if first != version:
                    self._backtracking.add(job.key)
                if job.key in self._backtracking:
                    return
            if file_url and file_url.startswith(("https://", "http://")):  # (each URL is started once)
                url = strip_credentials(file_url)  # (credentials go by host, as for every download)
                sha = self._catalogued().get(url, "")  # a file the store has had: by its hash (skipped if there)
                filename = url.rsplit("/", 1)[-1]
                f = PinnedFile(filename=filename, url=url, sha256=sha, kind="wheel" if filename.endswith(".whl") else "sdist")
                self.downloads.add(FetchItem(url=url, sha256=sha, filename=filename), on_done=functools.partial(self.landed, f))
            with self._lock:
                if key in self._seen:
                    return
                self._seen.add(key)
            read = set(pages)
            candidates = [u for u in (page_url(i, name) for i in job.index.search_order) if u in read]
            if candidates:
                self._pool.submit(self._start, job.target, key[1], version, candidates)
        return heard

    def _catalogued(self) -> dict[str, str]:
        """URL → sha256 of the files the catalog knows, read once (a re-resolution picks mostly files
        the store has: started by URL alone they would be fetched again)."""
        with self._lock:
            if self._urls is None:
                self._urls = self.store.pyfile_urls()
            return self._urls

    def _start(self, target: PythonTarget, name: str, version: str, candidates: list[str]) -> None:
        try:  # a guess that cannot be made costs only the wait for the lock
            self._guess(target, name, version, candidates)
        except Exception:  # noqa: BLE001
            _log.debug("no early guess for %s %s", name, version, exc_info=True)

    def _guess(self, target: PythonTarget, name: str, version: str, candidates: list[str]) -> None:
        want = Version(version)
        for url in candidates:  # as uv's first-index: the first page that has the version
            files = [f for filename, st in (self.memo.page_files(url) or {}).items()  # (a cheap test first:
                     if version in filename and (f := page_file(filename, st, name, want)) is not None]  # 4,415 on numpy's)
            if files:
                for f in pick_files(files, target):
                    self.downloads.add(FetchItem(url=f.url, sha256=f.sha256, filename=f.filename, size=f.size),
                                       on_done=functools.partial(self.landed, f))
                return

    def landed(self, f: PinnedFile, item: FetchItem) -> None:
        """In the download's thread, as soon as a new file is in (`item`, with its sha256): read what it
        says of itself while the others still download (the catalog needs the index pages too, so it
        waits), into `facts`."""
        f = dataclasses.replace(f, sha256=item.sha256)
        if f.sha256 and self.store.has_blob(f.sha256) and self.store.pyfile(f.sha256, f.filename) is None:
            self.facts[f.sha256] = file_facts(self.store, f)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def page_file(filename: str, st: FileStatus, name: str, version: Version) -> PinnedFile | None:
    """An index page's file as the lock would give it, when it is a wheel or sdist of name==version."""
    if not st.url or not st.sha256:
        return None
    try:
        if filename.endswith(".whl"):
            fname, fversion, *_ = parse_wheel_filename(filename)
            kind = "wheel"
        else:
            fname, fversion = parse_sdist_filename(filename)
            kind = "sdist"
    except ValueError:  # (packaging's InvalidWheelFilename and InvalidSdistFilename are ValueErrors)
        return None
    if fname != name or fversion != version:
        return None
    return PinnedFile(filename=filename, url=st.url, sha256=st.sha256, kind=kind)


def catalog_entry(store: Store, pin: Pin, f: PinnedFile, status: FileStatus | None = None,
             facts: FileFacts | None = None, provenance: str | None = None) -> CatalogFile:
    """Catalog entry for a fetched file, reading its metadata once (or given it, as read when the
    file landed); `provenance`: the blob of its PEP 740 provenance, fetched as its page named it."""
    known = store.pyfile(f.sha256, f.filename)
    if known is not None and provenance and known.provenance_sha256 != provenance:
        known = dataclasses.replace(known, provenance_sha256=provenance)  # (its page read anew names one)
        store.record_pyfile(known)
    if known is not None:
        return known
    path = store.blob_path(f.sha256)
    requires_python, metadata_sha, build_requires = facts if facts is not None else file_facts(store, f)
    if status is not None:
        requires_python = requires_python or status.requires_python
    entry = CatalogFile(
        sha256=f.sha256, filename=f.filename, project=pin.name, version=pin.version, kind=f.kind,
        size=path.stat().st_size, url=strip_credentials(f.origin or f.url), requires_python=requires_python,
        yanked=status.yanked if status is not None else None,
        upload_time=f.upload_time, metadata_sha256=metadata_sha, build_requires=build_requires,
        provenance_sha256=provenance,
    )
    store.record_pyfile(entry)
    return entry
