"""Fetching what was chosen (the fetch policy): files start downloading while uv still resolves
(`EarlyDownloads`), then the rest with the build requirements of the sdists, each recorded in the catalog.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from packaging.utils import canonicalize_name

from airgap_mirror import logs
from airgap_mirror.fetch import FetchItem
from airgap_mirror.resolve import (
    IndexConfig,
    Pin,
    PinnedFile,
)
from airgap_mirror.resolve.memo import ResolutionMemo
from airgap_mirror.resolve.targets import PythonTarget
from airgap_mirror.resolve.upstream import FileStatus, ProjectPage, page_url, project_pages
from airgap_mirror.store import Store
from airgap_mirror.sync.checks import compiled_sdists, confusion_warnings, page_requests, source_index
from airgap_mirror.sync.cooldown import cooled
from airgap_mirror.sync.early import EarlyDownloads, catalog_entry
from airgap_mirror.sync.jobs import Job, MemoRecord, Resolved, resolve_jobs
from airgap_mirror.sync.options import MAX_BUILD_DEPTH
from airgap_mirror.sync.provenance import Wanted, fetch_provenances
from airgap_mirror.sync.state import SyncRun

_log = logs.get(__name__)


@dataclass(slots=True, kw_only=True)
class Fetched:
    """What step 3 of a sync leaves for the locks and the snapshot."""

    errors: list[str]
    fetched: int
    present: int
    bytes: int
    confusion: dict[str, list[str]]  # app → dependency-confusion warnings
    compiled: dict[str, list[str]]  # app → sdists with compiled code a target gets (built inside)
    build_pins: dict[str, list[Pin]]  # target id → build requirements of its sdists
    bad_files: set[str]  # sha256 of files that could not be fetched
    # canonical project → (status, reason) as each page read in full gave it (PEP 792; "active" too)
    statuses: dict[str, tuple[str, str | None]] = dataclasses.field(default_factory=dict)
    # What the sync says but does not fail for (a provenance its index named that was not had).
    warnings: list[str] = dataclasses.field(default_factory=list)


_Pending = list[tuple[str, PythonTarget, list[Pin], IndexConfig]]  # (owner, target, pins, index) to fetch


def fetch_with_build_requirements(run: SyncRun, memo: ResolutionMemo, early: EarlyDownloads) -> Fetched:
    """Fetch every resolved file into the store (or wait for those started while uv resolved) and
    catalog it; then resolve and fetch the build requirements of every sdist, level by level, until
    none are new."""
    fetcher = _Fetcher(run, memo, early)
    pending: _Pending = [(job.key[0], job.target, res.pins, job.index) for job in run.jobs
                         if isinstance(res := run.resolved[job.key], Resolved)]
    records = run.records
    for depth in range(MAX_BUILD_DEPTH + 1):
        pages = fetcher.level(pending, records, depth)
        records = []  # (handed to the memo with this level's pages)
        if depth == 0:
            fetcher.check(pending, pages)
        next_jobs = fetcher.build_jobs(pending, pages) + (fetcher.project_build_jobs() if depth == 0 else [])
        if not next_jobs:
            break
        next_jobs = cooled(run, next_jobs)
        run.reporter.phase("resolving build requirements", len(next_jobs))
        build_res, records = resolve_jobs(next_jobs, run, memo, early)
        pending = []
        for job in next_jobs:
            res = build_res[job.key]
            if isinstance(res, Resolved):
                pending.append((job.key[0], job.target, res.pins, job.index))
                fetcher.got.build_pins.setdefault(job.target.id, []).extend(res.pins)
            else:
                fetcher.got.errors.append(f"build requirements {' '.join(job.requirements)} for {job.target.id}: {res}")
    # (builds deeper than MAX_BUILD_DEPTH would be a cycle in practice; uv's own resolution bounds them)
    memo.record_later(records)
    return fetcher.got


class _Fetcher:
    """The fetch step's state across the levels of build requirements: what was fetched and found,
    the files by sha256, the index pages' verdicts (confusion, compiled sdists), the builds seen."""

    def __init__(self, run: SyncRun, memo: ResolutionMemo, early: EarlyDownloads) -> None:
        self.run, self.memo, self.early = run, memo, early
        self.public = run.opts.index.index_url
        self.got = Fetched(errors=[], fetched=0, present=0, bytes=0, confusion={}, compiled={}, build_pins={},
                           bad_files=set())
        self.used: dict[str, tuple[Pin, PinnedFile]] = {}
        self.compiled_known: dict[tuple[str, str], bool] = {}
        self.seen_build: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()
        # A lock's own files from the public index alone: no page to read for them (its lock gives
        # their hashes and upload times; what they need is read from the files): reading them cost
        # a cold sync of dash-app's uv.lock 0.2 s more (0.51-0.56 s against 0.73-0.87 s). With
        # --refresh they are read, for what only a page says (statuses, provenance).
        self.no_pages = set() if run.opts.refresh else {
            (job.key[0], job.target.id) for job in run.jobs if job.prelocked is not None
            and all(u == self.public for u in job.index.search_order)}

    def level(self, pending: _Pending, records: list[MemoRecord], depth: int
              ) -> dict[tuple[str, str], dict[str, FileStatus]]:
        """One level's files downloaded (and counted) while the index pages they need are read."""
        run, downloads, got = self.run, self.early.downloads, self.got
        items: list[FetchItem] = []
        for _, _, pins, _ in pending:
            for pin in pins:
                for f in pin.files:
                    if f.sha256 not in self.used:
                        self.used[f.sha256] = (pin, f)
                        items.append(FetchItem(url=f.url, sha256=f.sha256, filename=f.filename, size=f.size))
        total_size = sum(i.size or 0 for i in items)
        run.reporter.phase("downloading" if depth == 0 else "downloading build requirements", total_size or None)
        # What the store has is found before any page is read: alongside a page-reading thread each
        # of the corpus's 2,170 stat calls waited for the interpreter lock (1.2 s).
        present_before = {i.sha256 for i in items if not downloads.started(i) and run.store.has_blob(i.sha256)}
        items = [i for i in items if i.sha256 not in present_before]
        with cf.ThreadPoolExecutor(max_workers=1) as side:
            pages_future = side.submit(self._pages, pending, records)
            if total_size:  # what arrived while uv resolved, then the rest as it comes
                run.reporter.advance(sum(downloads.received_for(i) for i in items))

            def counted(n: int) -> None:
                if total_size:
                    run.reporter.advance(n)
                run.on_bytes(n)

            downloads.on_bytes = counted
            report = downloads.wait(items, on_done=lambda item: self.early.landed(self.used[item.sha256][1], item))
            pages = pages_future.result()
        got.fetched += len(report.fetched)
        got.present += len(report.present) + len(present_before)
        got.bytes += report.bytes_fetched
        for item, exc in report.failed:
            got.errors.append(str(exc))
            got.bad_files.add(item.sha256)
        return pages

    def _pages(self, pending: _Pending, records: list[MemoRecord]) -> dict[tuple[str, str], dict[str, FileStatus]]:
        """What the indexes say of files new to the catalog (yanked, requires-python), and for apps
        with private indexes where each project is also on the public index: read while the files
        download (found out there too: the catalog lookups wait on the downloads' writes), and once:
        the memo reads the pages uv read (their digests make its records) and, in full, these too;
        what it could not give is read after."""
        run, memo = self.run, self.memo
        wanted = page_requests([p for p in pending if (p[0], p[1].id) not in self.no_pages], self.public, run.store,
                               every=run.opts.refresh)
        recording = memo.record_later(records, parse={page_url(i, p) for i, p in wanted})
        if recording is not None:
            try:
                recording.result()
            except Exception:  # noqa: BLE001  (its failure is the memo's: finish raises it)
                _log.debug("recording resolutions in the memo failed (raised again when it finishes)", exc_info=True)
        return project_pages(wanted, concurrency=run.opts.concurrency, credentials=run.credentials, known=memo.parsed)

    def check(self, pending: _Pending, pages: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
        """The apps' dependency-confusion and compiled-sdist warnings, from the pages read."""
        confusion, compiled = self.got.confusion, self.got.compiled
        for owner, target, pins, idx in pending:
            for pin in pins:  # each project's status, as the index it comes from gives it
                source = source_index(pages, idx, pin.name)
                page = pages.get((source, pin.name)) if source else None
                if isinstance(page, ProjectPage):
                    self.got.statuses[canonicalize_name(pin.name)] = (page.status, page.reason)
            if owner in self.run.results:
                confusion.setdefault(owner, [])
                confusion[owner] += [w for w in confusion_warnings(pins, idx, self.public, pages)
                                     if w not in confusion[owner]]
                compiled.setdefault(owner, []).extend(compiled_sdists(target, pins, idx, pages, self.compiled_known))

    def _provenances(self, pending: _Pending, pages: Mapping[tuple[str, str], Mapping[str, FileStatus]]) -> dict[str, str]:
        """The PEP 740 provenance of each file new to the catalog whose page names one, fetched (file
        sha256 → its blob); what could not be kept is said."""
        store, wanted = self.run.store, []
        for _, _, pins, idx in pending:
            for pin in pins:
                source = source_index(pages, idx, pin.name)
                page = pages.get((source, pin.name), {}) if source else {}
                for f in pin.files:
                    st = page.get(f.filename)
                    if st is None or not st.provenance or f.sha256 in self.got.bad_files:
                        continue
                    known = store.pyfile(f.sha256, f.filename)  # (one catalogued before: its page read anew)
                    if known is None or known.provenance_sha256 is None:
                        wanted.append(Wanted(sha256=f.sha256, filename=f.filename, url=st.provenance))
        if not wanted:
            return {}
        kept, said = fetch_provenances(store, wanted, credentials=self.run.credentials, concurrency=self.run.opts.concurrency)
        self.got.warnings.extend(said)
        return kept

    def project_build_jobs(self) -> list[Job]:
        """A packaged uv project's own build requirements for each of its app's targets (uv builds the
        project on `uv sync`, from the site's index), as an sdist's are."""
        out: list[Job] = []
        run = self.run
        for app, targets in run.apps:
            if not app.build_requires or app.name not in run.prepared or not run.results[app.name].ok:
                continue
            idx, reqs = run.prepared[app.name][0], tuple(sorted(set(app.build_requires)))
            for t in targets:
                if (t.id, reqs, idx.search_order) not in self.seen_build:
                    self.seen_build.add((t.id, reqs, idx.search_order))
                    out.append(Job(key=("build:" + " ".join(reqs), t.id), target=t, index=idx, requirements=reqs,
                                   exclude_newer=run.opts.exclude_newer))
        return out

    def build_jobs(self, pending: _Pending, pages: Mapping[tuple[str, str], Mapping[str, FileStatus]]) -> list[Job]:
        """Each file catalogued (with its provenance); the build requirements of the sdists, per
        target, not resolved yet."""
        next_jobs: list[Job] = []
        provenances = self._provenances(pending, pages)
        for _, target, pins, idx in pending:
            for pin in pins:
                source = source_index(pages, idx, pin.name)
                for f in pin.files:
                    if f.sha256 in self.got.bad_files:
                        continue
                    entry = catalog_entry(self.run.store, pin, f,
                                          pages.get((source, pin.name), {}).get(f.filename) if source else None,
                                          self.early.facts.get(f.sha256), provenances.get(f.sha256))
                    if entry.kind == "sdist" and entry.build_requires is not None:
                        reqs = tuple(sorted(set(entry.build_requires)))
                        if not reqs or (target.id, reqs, idx.search_order) in self.seen_build:
                            continue
                        self.seen_build.add((target.id, reqs, idx.search_order))
                        next_jobs.append(Job(key=("build:" + " ".join(reqs), target.id), target=target,
                                             index=idx, requirements=reqs, exclude_newer=self.run.opts.exclude_newer))
        return next_jobs


def correct_sdist_facts(store: Store) -> None:
    """Once per store: the catalog's .zip sdists read again by their content (the reader took a
    blob for a tar by its name, and recorded the legacy build requirements for every .zip sdist)."""
    flag = store.base / "migrations" / "sdists-by-content-v1"
    if flag.exists():
        return
    with store.db() as db:
        rows = db.execute("SELECT sha256, filename FROM pyfiles WHERE kind = 'sdist' AND lower(filename) LIKE '%.zip'"
                          ).fetchall()
    if rows:  # (the reader loaded only then: not on every sync's way to uv)
        from airgap_mirror.store.distinfo import read_sdist
    for sha, filename in rows:
        known = store.pyfile(sha, filename)
        if known is None or not store.has_blob(sha):
            continue
        info = read_sdist(store.blob_path(sha))
        store.record_pyfile(dataclasses.replace(known, requires_python=known.requires_python or info.requires_python,
                                                build_requires=info.build_requires))
    flag.parent.mkdir(parents=True, exist_ok=True)
    flag.write_text("the catalog's .zip sdists were read again by their content\n")
