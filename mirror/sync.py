"""One sync: app folders → resolution per target → verified fetch → catalog → snapshot.

The order of work and what is recorded; the pieces (parsing, resolving, fetching, storing) live in
their own modules. A failing app does not stop the others: its error is reported and, if an
earlier snapshot held it, its previous locks are kept.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import functools
import importlib
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import Version

from airgap_mirror.apps import AppRules, AppSpec, load_app
from airgap_mirror.apps.locks import MANAGER_FILES
from airgap_mirror.apps.reqfile import ReqLine
from airgap_mirror.credentials import Credentials, expand
from airgap_mirror.errors import InputError, IntegrityError, MirrorError, ResolutionError
from airgap_mirror.fetch import Downloads, FetchItem, unknown_host
from airgap_mirror.fetch.client import load_httpx
from airgap_mirror.interfaces import ExtensionOutcome, QuietReporter, Reporter, SyncContext, SyncExtension, sync_extensions
from airgap_mirror.resolve import (
    IndexConfig,
    Pin,
    PinnedFile,
    UvResolution,
    pick_files,
    select_files,
    uv_binary,
    uv_compile,
    uv_env,
    uv_version,
)
from airgap_mirror.resolve.lockfile import render_requirements_lock
from airgap_mirror.resolve.memo import Recorded, ResolutionMemo, folder_digest, is_deterministic, memo_key
from airgap_mirror.resolve.targets import DEFAULT_PLATFORM, DEFAULT_PYTHON, PythonTarget
from airgap_mirror.resolve.upstream import FileStatus, page_digests, page_url, project_pages
from airgap_mirror.store import CatalogFile, Store
from airgap_mirror.store.model import AppEntry, AppTarget, DirectRef, PythonFile, PythonPart, Section, TargetEntry
from airgap_mirror.store.snapshots import Snapshot
from airgap_mirror.urls import redact_text, strip_credentials

if TYPE_CHECKING:
    from airgap_mirror.apps.direct import DirectDist

__all__ = ["SyncOptions", "SyncResult", "AppResult", "run_sync", "Reporter", "SNAPSHOT_FORMAT"]

SNAPSHOT_FORMAT = 1
from airgap_mirror.defaults import DEFAULT_INSTALLERS  # noqa: E402  (re-exported)

_MAX_BUILD_DEPTH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncOptions:
    apps: tuple[Path, ...]
    pythons: tuple[str, ...] = ()
    platforms: tuple[str, ...] = (DEFAULT_PLATFORM,)
    # Explicit (python, platform) pairs; the pythons x platforms product is added when cross_product.
    targets: tuple[tuple[str, str], ...] = ()
    cross_product: bool = True
    default_python: str = DEFAULT_PYTHON
    index: IndexConfig = field(default_factory=IndexConfig)
    installers: tuple[str, ...] = DEFAULT_INSTALLERS
    concurrency: int = 16
    resolver_jobs: int = 4
    refresh: bool = False
    # Dependency confusion (a private index's project also on the public index with other files) fails the app.
    strict: bool = False
    # Requirements files read in each app besides the platform's own (requirements.txt, ...).
    requirement_files: tuple[str, ...] = ()
    # For every app, as pip's flags: wheels only for these projects (":all:" for every one), and
    # the newest version with a wheel for the target over a newer sdist.
    only_binary: tuple[str, ...] = ()
    prefer_binary: bool = False
    # Local paths and includes outside an app's own folder are mirrored (off: refused, naming the line).
    allow_outside: bool = False
    # Settings of sync extensions (the APT side), by extension name; see mirror.extensions.
    extensions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Apps of the store's current snapshot that this sync does not name: kept as they were (False),
    # or removed (True: `--prune`).
    prune: bool = False
    # This run names its targets (flags on the command line): the synced apps' other targets are
    # kept as they were, as apps not named are (unless prune).
    narrowed: bool = False
    # The package-manager files the platform reads, in its order, and whether the first present
    # wins over refusing several (mirror.toml [apps] package-managers, package-manager-first-wins).
    package_managers: tuple[str, ...] = tuple(MANAGER_FILES)
    package_manager_first_wins: bool = False


@dataclass(slots=True, kw_only=True)
class AppResult:
    name: str
    path: str
    ok: bool
    targets: list[str] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    kept_previous: bool = False
    conda_not_mirrored: list[str] = field(default_factory=list)
    # How the platform reads the app: its package-manager file, its Python and where that came from.
    package_manager: str | None = None
    python: str | None = None
    python_from: str | None = None


@dataclass(slots=True, kw_only=True)
class SyncResult:
    snapshot_id: str | None
    previous_id: str | None
    apps: list[AppResult]
    targets: list[str]
    files_total: int = 0
    files_fetched: int = 0
    files_present: int = 0
    bytes_fetched: int = 0
    fetch_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    resolutions_run: int = 0  # by uv
    resolutions_reused: int = 0  # from the memo: nothing they read had changed
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (wall), in order
    # The store's apps this sync did not name: kept as they were, or removed with --prune.
    kept_apps: list[str] = field(default_factory=list)
    removed_apps: list[str] = field(default_factory=list)
    kept_targets: dict[str, list[str]] = field(default_factory=dict)  # app → its targets this run did not name

    @property
    def changed(self) -> bool:
        return self.snapshot_id is not None and self.snapshot_id != self.previous_id

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.apps) and not self.fetch_errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot_id, "previous": self.previous_id, "changed": self.changed, "ok": self.ok,
            "targets": self.targets,
            "files": {"total": self.files_total, "fetched": self.files_fetched, "present": self.files_present},
            "bytes_fetched": self.bytes_fetched, "fetch_errors": self.fetch_errors, "warnings": self.warnings,
            "resolutions": {"run": self.resolutions_run, "reused": self.resolutions_reused},
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "kept_apps": self.kept_apps, "removed_apps": self.removed_apps, "kept_targets": self.kept_targets,
            "apps": [
                {"name": a.name, "path": a.path, "ok": a.ok, "targets": a.targets,
                 "error": redact_text(a.error) if a.error else a.error, "warnings": [redact_text(w) for w in a.warnings], "kept_previous": a.kept_previous, "conda_not_mirrored": a.conda_not_mirrored,
                 "package_manager": a.package_manager, "python": a.python, "python_from": a.python_from}
                for a in self.apps
            ],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class _Job:
    key: tuple[str, str]  # (owner, target id): owner is an app name, "installers" or "build:<reqs>"
    target: PythonTarget
    requirements: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    index: IndexConfig
    prerelease: bool = False
    no_binary: tuple[str, ...] = ()
    only_binary: tuple[str, ...] = ()
    prefer_binary: bool = False
    direct: Mapping[str, tuple[PinnedFile, ...]] = field(default_factory=dict)
    # A lock's pins: taken as they are (uv's --no-deps: nothing re-resolved), each file checked
    # against the hashes the lock lists for that release.
    no_deps: bool = False
    # The app's own lock as PEP 751 (its uv.lock as uv exports it, or its pylock.toml), for every
    # environment: its files are taken as they are, markers evaluated for the target; uv does not run.
    prelocked: bytes | None = None
    hashes: Mapping[tuple[str, str], frozenset[str]] = field(default_factory=dict)  # (name, version) → sha256s
    lock: str = ""


def _app_index(app: AppSpec, base: IndexConfig) -> IndexConfig:
    """The app's indexes with ${VAR} expanded (raises naming a missing variable and its line)."""
    o = app.options

    def exp(url: str) -> str:
        return expand(url, where=o.origin(url) or app.name)

    find_links = []
    for link in o.find_links:
        if "://" in link:
            find_links.append(exp(link))
        else:
            folder = Path(exp(link)).expanduser()
            folder = folder if folder.is_absolute() else app.path / folder
            if not folder.is_dir():
                raise InputError(f"{o.origin(link) or app.name}: --find-links {link} is not a folder in the app "
                                 f"({folder} does not exist)")
            find_links.append(str(folder.resolve()))
    return IndexConfig(
        index_url=exp(o.index_url) if o.index_url else base.index_url,
        extra_index_urls=tuple(dict.fromkeys((*base.extra_index_urls, *(exp(u) for u in o.extra_index_urls)))),
        find_links=(*base.find_links, *find_links),
        trusted_hosts=tuple(dict.fromkeys((*base.trusted_hosts, *o.trusted_hosts))),
    )


def _direct_requirement(line: ReqLine, dist: DirectDist, target: PythonTarget) -> str | None:
    """The requirement uv resolves for a direct reference: the project at the file we built."""
    feed = dist.feed(target)
    if feed is None:
        return None
    ref = line.direct
    assert ref is not None
    extras = f"[{','.join(ref.extras)}]" if ref.extras else ""
    return f"{dist.name}{extras} @ {feed.url}" + (f" ; {ref.marker}" if ref.marker else "")


def _unexpected(where: object, exc: BaseException) -> str:
    """An error the reader did not foresee, told without quoting what it read (it may be a secret)."""
    return (f"{where}: could not be read ({type(exc).__name__}); this is a bug in airgap-mirror, please report it "
            "with the file's shape (not its content)")


def _conda_side(opts: SyncOptions) -> bool:
    """An environment.yml's conda packages are mirrored (by the conda plug-in, unless --no-conda)."""
    return (any(e.name == "conda" for e in sync_extensions())
            and bool(opts.extensions.get("conda", {}).get("enabled", True)))


def _app_targets(app: AppSpec, opts: SyncOptions) -> list[PythonTarget]:
    out = [PythonTarget.parse(py, plat) for py, plat in opts.targets]
    if opts.cross_product:
        pythons = opts.pythons or (app.python or opts.default_python,)
        out += [PythonTarget.parse(py, plat) for py in pythons for plat in opts.platforms]
    return list(dict.fromkeys(out))


def _page_requests(pending: list[tuple[str, PythonTarget, list[Pin], IndexConfig]], public: str,
                   store: Store) -> list[tuple[str, str]]:
    """(index, project) pages to read: every index of the app for files new to the catalog; for apps
    with a private index, every project on every index and on the public one (confusion check)."""
    wanted: set[tuple[str, str]] = set()
    known = store.catalogued((f.sha256, f.filename) for _, _, pins, _ in pending for pin in pins for f in pin.files)
    for _, _, pins, idx in pending:
        private = any(u != public for u in idx.search_order)
        for pin in pins:
            if any(f.origin for f in pin.files):
                continue  # built or copied by us: no index page
            new = any((f.sha256, f.filename) not in known for f in pin.files)
            sdist_only = all(f.kind == "sdist" for f in pin.files)  # warned of on every sync (_compiled_sdists)
            if new or private or sdist_only:
                wanted.update((u, pin.name) for u in idx.search_order)
            if private:
                wanted.add((public, pin.name))
    return sorted(wanted)


def _source_index(pages: Mapping[tuple[str, str], Mapping[str, Any]], idx: IndexConfig, name: str) -> str | None:
    """The index a project came from under first-index: the first in uv's order that lists it."""
    if len(idx.search_order) == 1:
        return idx.search_order[0]
    return next((u for u in idx.search_order if pages.get((u, name))), None)


def _confusion(pins: list[Pin], idx: IndexConfig, public: str, pages: Mapping[tuple[str, str], Mapping[str, Any]]
               ) -> list[str]:
    """Projects taken from a private index whose name the public index also has, with other files."""
    if all(u == public for u in idx.search_order):
        return []
    out = []
    for pin in pins:
        if any(f.origin for f in pin.files):
            continue
        source = _source_index(pages, idx, pin.name)
        public_page = pages.get((public, pin.name))
        if source is None or source == public or not public_page:
            continue
        public_hashes = {st.sha256 for st in public_page.values()}
        if all(f.sha256 in public_hashes for f in pin.files):
            continue  # the private index proxies the public one: the same files
        out.append(f"dependency confusion risk: {pin.name} {pin.version} is taken from {strip_credentials(source)} "
                   f"(the first index that has it), but {strip_credentials(public)} also has a project named "
                   f"{pin.name} with other files; check it is yours, and rename or reserve the name (--strict makes this an error)")
    return out


def _compiled_only(page: Mapping[str, Any]) -> bool:
    """Whether a project page lists wheels, none of them pure (`any`). A wheel's platform tags are
    the last part of its name (`...-cp311-cp311-manylinux_2_28_x86_64.whl`, several joined by dots):
    read off the name, stopping at the first pure one (pages list thousands)."""
    wheels = False
    for fname in page:
        if fname.endswith(".whl") and fname.count("-") >= 4:
            wheels = True
            if "any" in fname[:-4].rsplit("-", 1)[1].split("."):
                return False
    return wheels


def _compiled_sdists(target: PythonTarget, pins: list[Pin], idx: IndexConfig,
                     pages: Mapping[tuple[str, str], Mapping[str, Any]], known: dict[tuple[str, str], bool]) -> list[str]:
    """Projects the target gets only as an sdist although they have compiled code (the index has
    platform wheels and no pure one): they are built inside the gap, which needs a compiler there.
    `known`: the answer by page, for the sync (the same pages come up in app after app)."""
    out = []
    for pin in pins:
        if not all(f.kind == "sdist" and not f.origin for f in pin.files):
            continue
        source = _source_index(pages, idx, pin.name)
        if source is None:
            continue
        key = (source, pin.name)
        if key not in known:
            known[key] = _compiled_only(pages.get(key, {}))
        if known[key]:
            out.append(f"{pin.name} {pin.version}: {target.id} gets only the sdist, and the project ships compiled "
                       f"wheels for other platforms, so it will be built inside the gap (a compiler and headers "
                       f"needed there). --prefer-binary takes the newest version with a wheel for {target.id}; "
                       f"--only-binary {pin.name} fails instead (flags of sync, [python] in mirror.toml, or lines "
                       f"in the app's requirements.txt)")
    return out


def _portable_pylock(data: bytes, pins: list[Pin], direct: Mapping[str, tuple[PinnedFile, ...]]) -> bytes:
    """uv's pylock with our build folders' paths cut to the file names the mirror serves them as."""
    from urllib.parse import unquote, urlsplit

    for files in direct.values():
        for f in files:
            path = unquote(urlsplit(f.url).path)
            data = data.replace(path.encode(), f.filename.encode())
    return data


def _memo_fields(job: _Job) -> dict[str, Any]:
    """Everything a resolution depends on besides the pages it reads (no credentials)."""
    idx = job.index
    links = [strip_credentials(u) if "://" in u else [u, folder_digest(Path(u))] for u in idx.find_links]
    return {
        "uv": uv_version(), "build_python": sys.version,
        "python": job.target.python, "platform": job.target.uv_platform(),
        "requirements": list(job.requirements), "constraints": list(job.constraints),
        "index": [strip_credentials(u) for u in idx.search_order], "find_links": links,
        "trusted_hosts": list(idx.trusted_hosts), "prerelease": job.prerelease,
        "no_binary": list(job.no_binary), "only_binary": list(job.only_binary),
        **({"prefer_binary": True} if job.prefer_binary else {}),
        **({"no_deps": True} if job.no_deps else {}),
    }


def _sdist_only(pins: list[Pin]) -> list[str]:
    """Projects a target gets only as an sdist from an index (not ones the app builds itself)."""
    return [p.name for p in pins if all(f.kind == "sdist" and not f.origin for f in p.files)]


def _finish(job: _Job, pylock: bytes) -> tuple[bytes, list[Pin]]:
    """A job's lock as served (our build paths cut to file names) and the files chosen per pin."""
    pins = select_files(pylock, job.target, label=job.key[0], direct=job.direct, evaluate_markers=job.prelocked is not None)
    for pin in pins:  # a lock is the truth: never another file under a locked name
        allowed = job.hashes.get((canonicalize_name(pin.name), str(Version(str(pin.version))))) or frozenset()
        for f in pin.files if allowed else ():
            if f.sha256 not in allowed and not f.origin:
                raise IntegrityError(
                    f"{job.key[0]} for {job.target.id}: the index's {f.filename} has sha256 {f.sha256}, which "
                    f"{job.lock} does not list for {pin.name} {pin.version}: not mirrored (the index serves another file "
                    "under that name, or the lock was made against another index: relock against the one mirrored)")
    return _portable_pylock(pylock, pins, job.direct), pins


def _answer_from_memo(jobs: list[_Job], recorded: Mapping[tuple[str, str], Recorded], memo: ResolutionMemo,
                      out: dict[tuple[str, str], tuple[bytes, list[Pin]] | MirrorError], reporter: Reporter,
                      public: str, again: set[str]) -> list[_Job]:
    """Fill `out` for every job (each has a record) whose recorded resolution read only pages that
    are unchanged now (each page read once, all at once); return the jobs uv must resolve. Pages the
    sync will want parsed after (`again`, and the confusion check's) are read in full by that read."""
    memo.read((u for r in recorded.values() for u in r.pages), parse=again | _confusion_pages(jobs, recorded, public))
    todo: list[_Job] = []
    for job in jobs:
        rec = recorded[job.key]
        if not memo.unchanged(rec):
            todo.append(job)
            continue
        memo.reused += 1
        try:
            out[job.key] = (_finish(job, rec.pylock.encode("utf-8")) if rec.pylock is not None else
                            ResolutionError(f"{rec.error}\n(unchanged since {rec.created[:10]}: the same "
                                            "requirements and index pages; --refresh retries it)"))
        except MirrorError as exc:
            out[job.key] = exc
        reporter.advance()
    return todo


def _sdist_pages(previous: Snapshot | None, jobs: list[_Job]) -> set[str]:
    """The pages of the projects each app got only as an sdist in the previous snapshot, on the app's
    indexes: read in full after every resolution, for the compiled-sdist warning (in the corpus's
    no-op resync, 119 pages read a second time: 0.9 s); so read in full by the memo's one read."""
    if previous is None:
        return set()
    kinds: dict[tuple[str, str], set[str]] = {}
    for f in previous.python.files.values():
        kinds.setdefault((canonicalize_name(f.project or ""), f.version or ""), set()).add(f.kind or "")
    out: set[str] = set()
    for job in jobs:
        app = previous.apps.get(job.key[0])
        entry = app.targets.get(job.target.id) if app is not None else None
        for name, version in (entry.package_versions() if entry is not None else {}).items():
            if kinds.get((canonicalize_name(name), version)) == {"sdist"}:
                out.update(page_url(u, name) for u in job.index.search_order)
    return out


def _confusion_pages(jobs: list[_Job], recorded: Mapping[tuple[str, str], Recorded], public: str) -> set[str]:
    """The pages the dependency-confusion check will read in full for apps with a private index
    (each project's page on each of the app's indexes and on the public one), as far as the recorded
    resolutions name the projects: read in full by the memo's one read, not read again after it
    (the corpus's no-op resync read them twice: 1.4 s)."""
    out: set[str] = set()
    for job in jobs:
        search = job.index.search_order
        if all(u == public for u in search):
            continue
        bases = [strip_credentials(u).rstrip("/") + "/" for u in search]
        names = {u[len(b):].strip("/") for u in recorded[job.key].pages for b in bases if u.startswith(b)}
        out.update(page_url(u, n) for n in names if n and "/" not in n for u in (*search, public))
    return out


_Record = tuple[str, "bytes | None", "str | None", tuple[str, ...]]  # memo key, pylock, error, pages read


def _resolve_jobs(jobs: list[_Job], store: Store, opts: SyncOptions, reporter: Reporter, memo: ResolutionMemo,
                  early: _Early, previous: Snapshot | None = None, on_wait: Callable[[], None] = lambda: None
                  ) -> tuple[dict[tuple[str, str], tuple[bytes, list[Pin]] | MirrorError], list[_Record]]:
    """Each job's lock and pins, or its error; and what the memo is to record of the resolutions uv
    ran (the caller hands them to `memo.record_later` with the pages it wants read too). A job whose
    recorded resolution read only pages that are unchanged now is answered from the memo; the others
    run uv (4 at a time), and the files of the versions it picks start downloading (`early`).
    `on_wait()` is called when this thread first waits, on uv or on the memo's page reads."""
    out: dict[tuple[str, str], tuple[bytes, list[Pin]] | MirrorError] = {}
    for job in [j for j in jobs if j.prelocked is not None]:  # a lock's files, as they are: no uv, no pages
        try:
            out[job.key] = _finish(job, job.prelocked)  # type: ignore[arg-type]
        except MirrorError as exc:
            out[job.key] = exc
        reporter.advance()
    jobs = [j for j in jobs if j.prelocked is None]

    keys = {job.key: memo_key(_memo_fields(job)) for job in jobs}

    def compile_(job: _Job, only_binary: tuple[str, ...]) -> UvResolution:
        return uv_compile(
            list(job.requirements), job.target, index=job.index, constraints=list(job.constraints),
            cache_dir=store.cache / "uv", prerelease=job.prerelease, no_binary=job.no_binary,
            only_binary=only_binary, no_deps=job.no_deps, label=job.key[0], refresh=opts.refresh, on_page=memo.prefetch,
            on_select=early.hearing(job), on_start=on_wait,
        )

    def run(job: _Job) -> UvResolution:
        # An index whose host name does not exist fails the resolution, as it would fail in uv, but
        # at once: uv retries it for 4 s, every sync (the corpus's no-op resync spent 7 s there).
        for url in (*job.index.search_order, *(u for u in job.index.find_links if "://" in u)):
            if (host := unknown_host(url)) is not None:
                exc = ResolutionError(f"{job.key[0]} for {job.target.id}: the index {strip_credentials(url)} cannot be "
                                      f"reached: {host} is not a known host name (DNS); fix the URL, or this machine's "
                                      "DNS if the host is an internal one")
                exc.pages = ()
                raise exc
        res = compile_(job, job.only_binary)
        if not job.prefer_binary:
            return res
        # pip's --prefer-binary: where the target got an sdist, the newest version with a wheel for
        # it instead, when there is one (uv has no such flag: resolve again with those names binary-only).
        sdist_only = _sdist_only(select_files(res.pylock, job.target, label=job.key[0], direct=job.direct))
        if not sdist_only:
            return res

        def binary(names: list[str]) -> UvResolution | None:
            try:
                return compile_(job, tuple(dict.fromkeys((*job.only_binary, *names))))
            except ResolutionError:
                return None

        again = binary(sdist_only)
        if again is None:  # some have no wheel for the target in any version: keep their sdists
            have_wheel = [n for n in sdist_only if binary([n]) is not None]
            again = binary(have_wheel) if have_wheel else None
        if again is None:
            return res
        return UvResolution(pylock=again.pylock, pages=tuple(dict.fromkeys((*res.pages, *again.pages))))

    done: list[tuple[_Job, bytes | None, str | None, tuple[str, ...]]] = []
    with cf.ThreadPoolExecutor(max_workers=max(1, opts.resolver_jobs)) as pool:
        # A job with nothing recorded goes to uv at once; the others once the memo has read their pages.
        recorded = {} if opts.refresh else {k: r for k, r in ((k, memo.load(key)) for k, key in keys.items()) if r}
        fresh = [job for job in jobs if job.key not in recorded]
        futures = {pool.submit(run, job): job for job in fresh}
        answerable = [job for job in jobs if job.key in recorded]
        if answerable:
            on_wait()
        changed = _answer_from_memo(answerable, recorded, memo, out, reporter, opts.index.index_url,
                                    _sdist_pages(previous, answerable))
        futures.update({pool.submit(run, job): job for job in changed})
        todo = [*fresh, *changed]
        for fut in cf.as_completed(futures):
            job = futures[fut]
            try:
                res = fut.result()
                done.append((job, res.pylock, None, res.pages))
                out[job.key] = _finish(job, res.pylock)
            except ResolutionError as exc:
                if is_deterministic(str(exc)):
                    done.append((job, None, str(exc), exc.pages))
                out[job.key] = exc
            except MirrorError as exc:
                out[job.key] = exc
            reporter.advance()
    memo.resolved += len(todo)
    return out, [(keys[job.key], pylock, error, pages) for job, pylock, error, pages in done]


_Facts = tuple["str | None", "str | None", "tuple[str, ...] | None"]  # requires-python, metadata blob, build requires


def _file_facts(store: Store, f: PinnedFile) -> _Facts:
    """What a stored file says of itself: a wheel's METADATA (kept as a blob, for PEP 658) and its
    Requires-Python; an sdist's Requires-Python and build requirements."""
    from airgap_mirror.store.distinfo import read_sdist, read_wheel  # (after the downloads: not on the way to uv)

    path = store.blob_path(f.sha256)
    if f.kind == "wheel":
        info = read_wheel(path)
        return (info.requires_python, store.put_bytes(info.metadata), None) if info is not None else (None, None, None)
    sinfo = read_sdist(path)
    return sinfo.requires_python, None, sinfo.build_requires


class _Early:
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
        self.facts: dict[str, _Facts] = {}  # what each file landed early says of itself
        self._seen: set[tuple[str, str, str, tuple[str, ...]]] = set()
        self._urls: dict[str, str] | None = None
        self._picks: dict[tuple[tuple[str, str], str], str] = {}  # (job, project) → the version picked first
        self._backtracking: set[tuple[str, str]] = set()  # jobs whose uv changed a pick
        self._lock = threading.Lock()
        self._pool = cf.ThreadPoolExecutor(max_workers=4, thread_name_prefix="early")

    def hearing(self, job: _Job) -> Callable[[str, str, str | None, Sequence[str]], None]:
        """uv_compile's on_select for `job`: start the files of each version uv picks."""
        def heard(name: str, version: str, file_url: str | None, pages: Sequence[str]) -> None:
            with contextlib.suppress(Exception):  # called from uv's log loop: a head start never stops a resolution
                start(name, version, file_url, pages)

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
        with contextlib.suppress(Exception):  # a guess that cannot be made costs only the wait for the lock
            want = Version(version)
            for url in candidates:  # as uv's first-index: the first page that has the version
                files = [f for filename, st in (self.memo.page_files(url) or {}).items()  # (a cheap test first:
                         if version in filename and (f := _page_file(filename, st, name, want)) is not None]  # 4,415 on numpy's)
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
            self.facts[f.sha256] = _file_facts(self.store, f)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _page_file(filename: str, st: FileStatus, name: str, version: Version) -> PinnedFile | None:
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


def _catalog(store: Store, pin: Pin, f: PinnedFile, status: FileStatus | None = None,
             facts: _Facts | None = None) -> CatalogFile:
    """Catalog entry for a fetched file, reading its metadata once (or given it, as read when the
    file landed)."""
    known = store.pyfile(f.sha256, f.filename)
    if known is not None:
        return known
    path = store.blob_path(f.sha256)
    requires_python, metadata_sha, build_requires = facts if facts is not None else _file_facts(store, f)
    if status is not None:
        requires_python = requires_python or status.requires_python
    entry = CatalogFile(
        sha256=f.sha256, filename=f.filename, project=pin.name, version=pin.version, kind=f.kind,
        size=path.stat().st_size, url=strip_credentials(f.origin or f.url), requires_python=requires_python,
        yanked=status.yanked if status is not None else None,
        upload_time=f.upload_time, metadata_sha256=metadata_sha, build_requires=build_requires,
    )
    store.record_pyfile(entry)
    return entry


def _prepare_apps(apps: list[tuple[AppSpec, list[PythonTarget]]], results: dict[str, AppResult], store: Store,
                  opts: SyncOptions, reporter: Reporter) -> dict[str, tuple[IndexConfig, dict[int, DirectDist]]]:
    """Each app's indexes (credentials expanded) and its git / path / URL packages built into files.

    An app whose variable is missing or whose package does not build is marked failed in `results`.
    """
    prepared: dict[str, tuple[IndexConfig, dict[int, DirectDist]]] = {}
    direct_count = sum(1 for app, _ in apps for r in app.requirements if r.direct is not None)
    if direct_count:
        from airgap_mirror.apps.direct import materialise  # (git, tarfile, zipfile: only for apps that name such packages)

        reporter.phase("building git and local packages", direct_count)
    for app, _ in apps:
        if not app.has_python:
            continue
        result = results[app.name]
        try:
            index = _app_index(app, opts.index)
            dists: dict[int, DirectDist] = {}
            for i, line in enumerate(app.requirements):
                if line.direct is None:
                    continue
                dist = materialise(line.direct, where=line.where, app_dir=app.path, cache=store.cache,
                                   index=index, refresh=opts.refresh, allow_outside=opts.allow_outside)
                reporter.advance()
                if line.direct.name and canonicalize_name(line.direct.name) != dist.key:
                    raise InputError(f"{line.where}: the requirement says {line.direct.name!r} but "
                                     f"{line.direct.display} is {dist.name!r}: fix the name")
                if line.direct.editable:
                    result.warnings.append(f"{line.where}: -e {line.direct.display} is mirrored as a regular "
                                           f"package ({dist.name}=={dist.version}); inside it installs non-editable")
                result.warnings.extend(dist.warnings)
                dists[i] = dist
        except MirrorError as exc:
            result.ok = False
            result.error = redact_text(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001  (one app's folder never stops the others)
            result.ok = False
            result.error = _unexpected(app.path, exc)
            continue
        prepared[app.name] = (index, dists)
    return prepared


def _locked_hashes(app: AppSpec) -> dict[tuple[str, str], frozenset[str]]:
    """A lock's hashes by (project, version): a lock may pin two versions of one project (uv's forks
    for two Python ranges), each with its own files."""
    out: dict[tuple[str, str], frozenset[str]] = {}
    for line in app.requirements:
        req = line.requirement
        pinned = [sp.version for sp in req.specifier if sp.operator in ("==", "===")] if req is not None else []
        if req is None or not line.hashes or not pinned:
            continue
        key = (canonicalize_name(req.name), str(Version(pinned[0])))
        out[key] = out.get(key, frozenset()) | frozenset(h.split(":", 1)[-1] for h in line.hashes)
    return out


def _app_jobs(apps: list[tuple[AppSpec, list[PythonTarget]]], prepared: dict[str, tuple[IndexConfig, dict[int, DirectDist]]],
              results: dict[str, AppResult], opts: SyncOptions) -> list[_Job]:
    """One resolution per prepared app and target; direct references point uv at the files we built."""
    jobs: list[_Job] = []
    for app, targets in apps:
        if app.name not in prepared:
            continue
        index, dists = prepared[app.name]
        direct_files = {d.key: d.files for d in dists.values()}
        for t in targets:
            reqs: list[str] = []
            for i, line in enumerate(app.requirements):
                if i in dists:
                    text = _direct_requirement(line, dists[i], t)
                    if text is None:
                        results[app.name].warnings.append(
                            f"{line.where}: {dists[i].name} has no file {t.id} can install; left out for that target")
                        continue
                    reqs.append(text)
                else:
                    reqs.append(str(line.requirement))
            jobs.append(_Job(
                key=(app.name, t.id), target=t, index=index, requirements=tuple(reqs),
                constraints=tuple(str(c.requirement) for c in app.constraints),
                prerelease=app.options.pre, no_binary=app.options.no_binary,
                only_binary=tuple(dict.fromkeys((*opts.only_binary, *app.options.only_binary))),
                prefer_binary=opts.prefer_binary or app.options.prefer_binary,
                direct=direct_files,
                no_deps=app.locked, lock=app.package_manager or "",
                prelocked=app.lock_pylock if app.lock_pylock is not None and not dists else None,
                hashes=_locked_hashes(app) if app.locked else {},
            ))
    return jobs


@dataclass(slots=True, kw_only=True)
class _Fetched:
    """What step 3 of a sync leaves for the locks and the snapshot."""

    errors: list[str]
    fetched: int
    present: int
    bytes: int
    confusion: dict[str, list[str]]  # app → dependency-confusion warnings
    compiled: dict[str, list[str]]  # app → sdists with compiled code a target gets (built inside)
    build_pins: dict[str, list[Pin]]  # target id → build requirements of its sdists
    bad_files: set[str]  # sha256 of files that could not be fetched


def _fetch_with_build_requirements(jobs: list[_Job], resolved: Mapping[tuple[str, str], tuple[bytes, list[Pin]] | MirrorError],
                                   records: list[_Record], results: Mapping[str, AppResult], store: Store, opts: SyncOptions,
                                   reporter: Reporter, memo: ResolutionMemo, credentials: Credentials,
                                   on_bytes: Callable[[int], None], early: _Early) -> _Fetched:
    """Fetch every resolved file into the store (or wait for those started while uv resolved) and
    catalog it; then resolve and fetch the build requirements of every sdist, level by level, until
    none are new."""
    downloads = early.downloads
    fetch_errors: list[str] = []
    fetched = present = nbytes = 0
    used: dict[str, tuple[Pin, PinnedFile]] = {}
    pending: list[tuple[str, PythonTarget, list[Pin], IndexConfig]] = []
    # A lock's own files from the public index alone: no page to read for them (its lock gives
    # their hashes and upload times; what they need is read from the files).
    no_pages = {(job.key[0], job.target.id) for job in jobs
                if job.prelocked is not None and all(u == opts.index.index_url for u in job.index.search_order)}
    for job in jobs:
        res = resolved[job.key]
        if isinstance(res, tuple):
            pending.append((job.key[0], job.target, res[1], job.index))
    public = opts.index.index_url
    confusion: dict[str, list[str]] = {}
    compiled: dict[str, list[str]] = {}
    compiled_known: dict[tuple[str, str], bool] = {}
    seen_build: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()
    build_pins: dict[str, list[Pin]] = {}
    bad_files: set[str] = set()
    for depth in range(_MAX_BUILD_DEPTH + 1):
        items: list[FetchItem] = []
        for _, _, pins, _ in pending:
            for pin in pins:
                for f in pin.files:
                    if f.sha256 not in used:
                        used[f.sha256] = (pin, f)
                        items.append(FetchItem(url=f.url, sha256=f.sha256, filename=f.filename, size=f.size))
        total_size = sum(i.size or 0 for i in items)
        reporter.phase("downloading" if depth == 0 else "downloading build requirements", total_size or None)
        # What the store has is found before any page is read: alongside a page-reading thread each
        # of the corpus's 2,170 stat calls waited for the interpreter lock (1.2 s).
        present_before = {i.sha256 for i in items if not downloads.started(i) and store.has_blob(i.sha256)}
        items = [i for i in items if i.sha256 not in present_before]
        # What the indexes say of files new to the catalog (yanked, requires-python), and for apps
        # with private indexes where each project is also on the public index: read while the files
        # download (found out there too: the catalog lookups wait on the downloads' writes), and once:
        # the memo reads the pages uv read (their digests make its records) and, in full, these too;
        # what it could not give is read after.
        def pages_of(pending: list[tuple[str, PythonTarget, list[Pin], IndexConfig]] = pending,
                     records: list[_Record] = records) -> dict[tuple[str, str], dict[str, FileStatus]]:
            wanted = _page_requests([p for p in pending if (p[0], p[1].id) not in no_pages], public, store)
            recording = memo.record_later(records, parse={page_url(i, p) for i, p in wanted})
            if recording is not None:
                with contextlib.suppress(Exception):  # its failure is the memo's (finish raises it)
                    recording.result()
            return project_pages(wanted, concurrency=opts.concurrency, credentials=credentials, known=memo.parsed)

        records = []

        with cf.ThreadPoolExecutor(max_workers=1) as side:
            pages_future = side.submit(pages_of)
            if total_size:  # what arrived while uv resolved, then the rest as it comes
                reporter.advance(sum(downloads.received_for(i) for i in items))
            def counted(n: int) -> None:
                if total_size:  # noqa: B023 (this batch's, read while it downloads)
                    reporter.advance(n)
                on_bytes(n)

            downloads.on_bytes = counted
            report = downloads.wait(items, on_done=lambda item: early.landed(used[item.sha256][1], item))
            pages = pages_future.result()
        if depth == 0:
            for owner, target, pins, idx in pending:
                if owner in results:
                    confusion.setdefault(owner, [])
                    confusion[owner] += [w for w in _confusion(pins, idx, public, pages) if w not in confusion[owner]]
                    compiled.setdefault(owner, []).extend(_compiled_sdists(target, pins, idx, pages, compiled_known))
        fetched += len(report.fetched)
        present += len(report.present) + len(present_before)
        nbytes += report.bytes_fetched
        for item, exc in report.failed:
            fetch_errors.append(str(exc))
            bad_files.add(item.sha256)
        # Build requirements of sdists, per target.
        next_jobs: list[_Job] = []
        for _, target, pins, idx in pending:
            for pin in pins:
                source = _source_index(pages, idx, pin.name)
                for f in pin.files:
                    if f.sha256 in bad_files:
                        continue
                    entry = _catalog(store, pin, f, pages.get((source, pin.name), {}).get(f.filename) if source else None,
                                     early.facts.get(f.sha256))
                    if entry.kind == "sdist" and entry.build_requires is not None:
                        reqs = tuple(sorted(set(entry.build_requires)))
                        if not reqs or (target.id, reqs, idx.search_order) in seen_build:
                            continue
                        seen_build.add((target.id, reqs, idx.search_order))
                        next_jobs.append(_Job(key=("build:" + " ".join(reqs), target.id), target=target,
                                              index=idx, requirements=reqs))
        if not next_jobs:
            break
        reporter.phase("resolving build requirements", len(next_jobs))
        build_res, records = _resolve_jobs(next_jobs, store, opts, reporter, memo, early)
        pending = []
        for job in next_jobs:
            res = build_res[job.key]
            if isinstance(res, tuple):
                pending.append((job.key[0], job.target, res[1], job.index))
                build_pins.setdefault(job.target.id, []).extend(res[1])
            else:
                fetch_errors.append(f"build requirements {' '.join(job.requirements)} for {job.target.id}: {res}")
    # (builds deeper than _MAX_BUILD_DEPTH would be a cycle in practice; uv's own resolution bounds them)
    memo.record_later(records)
    return _Fetched(errors=fetch_errors, fetched=fetched, present=present, bytes=nbytes, confusion=confusion,
                    compiled=compiled, build_pins=build_pins, bad_files=bad_files)



def _solved_python(app: AppSpec, opts: SyncOptions, store: Store) -> AppSpec:
    """An environment.yml that leaves Python open (`python>=3.10`, or none) gets the Python its conda
    solve picks, for its pip: list, as an exact `python=3.10` already does; an explicit --python wins."""
    if not (app.has_python and app.conda_specs and app.python is None and opts.cross_product and not opts.pythons
            and opts.platforms and _conda_side(opts)):
        return app
    for ext in sync_extensions():
        ask = getattr(ext, "app_python", None)
        if ask is not None:
            picked = ask(app, store=store, platform=opts.platforms[0], options=opts.extensions.get(ext.name, {}))
            if picked:
                return dataclasses.replace(app, python=picked)
    return app


def _check_requires_python(app: AppSpec, targets: list[PythonTarget]) -> None:
    """A lock whose requires-python does not admit a target's Python fails the app, as its install
    would fail inside."""
    if not app.requires_python:
        return
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        spec = SpecifierSet(app.requires_python)
    except InvalidSpecifier:
        return
    for t in targets:
        if not spec.contains(t.python, prereleases=True):
            source = f"{app.python_from}: {app.python}" if app.python_from else "the site's default"
            raise InputError(f"{app.path / (app.package_manager or '')}: requires-python {app.requires_python} does not "
                             f"admit Python {t.python} ({source}): the install would fail on that target; name a Python "
                             "it admits in .python-version, or relock")


def _correct_sdist_facts(store: Store) -> None:
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


def _load_apps(opts: SyncOptions, store: Store) -> tuple[dict[str, AppResult], list[tuple[AppSpec, list[PythonTarget]]]]:
    """Step 1: each app folder read (its own error if it cannot be), with its targets."""
    results: dict[str, AppResult] = {}
    apps: list[tuple[AppSpec, list[PythonTarget]]] = []
    rules = AppRules(managers=opts.package_managers, first_wins=opts.package_manager_first_wins, uv=uv_binary(),
                     uv_env=uv_env(opts.index, store.cache / "uv"))
    for path in opts.apps:
        try:
            app = _solved_python(load_app(path, opts.requirement_files, allow_outside=opts.allow_outside, rules=rules),
                                 opts, store)
            targets = _app_targets(app, opts) if app.has_python else []
            _check_requires_python(app, targets)
        except MirrorError as exc:
            name = Path(path).resolve().name
            results[name] = AppResult(name=name, path=str(path), ok=False, error=redact_text(str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001  (one app's folder never stops the others)
            name = Path(path).absolute().name
            results[name] = AppResult(name=name, path=str(path), ok=False, error=_unexpected(path, exc))
            continue
        if app.name in results:
            results[app.name].warnings.append(f"two app folders are named {app.name}; {path} ignored")
            continue
        conda_side = bool(app.conda_packages or app.conda_specs) and _conda_side(opts)  # the conda plug-in mirrors them
        result = results[app.name] = AppResult(name=app.name, path=str(path), ok=True, targets=[t.id for t in targets],
                                               conda_not_mirrored=[] if conda_side else list(app.conda_packages),
                                               package_manager=app.package_manager, python=app.python,
                                               python_from=app.python_from if app.python else None)
        result.warnings.extend(app.notes)
        if app.python and app.python_from and targets and not any(
                t.python == app.python or t.python.startswith(app.python + ".") or app.python.startswith(t.python + ".")
                for t in targets):
            result.warnings.append(f"{app.python_from} asks for Python {app.python}, but the targets are named "
                                   f"({', '.join(t.id for t in targets)}): the app is not mirrored for its own Python; "
                                   "add it to [[targets]] (or --target), or drop the file")
        if app.conda_packages and not conda_side:
            result.warnings.append(
                f"{len(app.conda_packages)} conda packages in environment.yml are not mirrored (only its pip: section): "
                f"{', '.join(app.conda_packages[:10])}{', ...' if len(app.conda_packages) > 10 else ''}")
        if not app.has_python and not app.apt_files and not (conda_side and app.conda_specs):
            result.warnings.append("no Python requirements and no Aptfile found")
        unread = app.unread_requirement_files()
        if unread:
            result.warnings.append(
                f"{', '.join(unread)} not mirrored: the platform does not install {'them' if len(unread) > 1 else 'it'}; "
                "if the app does (say from a predeploy script), add the name to `requirement-files` under [apps] in "
                "mirror.toml (or sync --requirements-file NAME)")
        apps.append((app, targets))
    return results, apps


@dataclass(slots=True, kw_only=True)
class _PythonPart:
    """Step 4's result: the Python side of the snapshot."""

    files: dict[str, PythonFile] = field(default_factory=dict)
    apps: dict[str, AppEntry] = field(default_factory=dict)
    installers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    build: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def add_files(self, store: Store, pins: list[Pin]) -> tuple[str, ...]:
        """Record each pin's files as the snapshot describes them; their sha256s, sorted."""
        shas = []
        for pin in pins:
            for f in pin.files:
                entry = _catalog(store, pin, f)
                self.files[f.sha256] = PythonFile.new(
                    filename=entry.filename, project=entry.project, version=entry.version, kind=entry.kind,
                    size=entry.size, url=entry.url, requires_python=entry.requires_python, yanked=entry.yanked,
                    upload_time=entry.upload_time, metadata_sha256=entry.metadata_sha256,
                    metadata_size=store.blob_size(entry.metadata_sha256) if entry.metadata_sha256 else None)
                shas.append(f.sha256)
        return tuple(sorted(shas))

    def python(self) -> PythonPart:
        return PythonPart(files=self.files, installers=self.installers, build=self.build)


def _app_entry(store: Store, app: AppSpec, targets: list[PythonTarget], result: AppResult, part: _PythonPart,
               resolved: Mapping[tuple[str, str], tuple[bytes, list[Pin]] | MirrorError], got: _Fetched,
               dists: Mapping[int, DirectDist], served: dict[str, str]) -> AppEntry | None:
    """One app's snapshot entry (locks and files per target), or None with `result` failed."""
    entry_targets: dict[str, AppTarget] = {}
    failed_here: list[str] = []
    for t in targets:
        res = resolved.get((app.name, t.id))
        if res is None:
            continue
        if isinstance(res, MirrorError):
            failed_here.append(str(res))
            continue
        pylock, pins = res
        if any(f.sha256 in got.bad_files for p in pins for f in p.files):
            failed_here.append(f"{app.name} for {t.id}: some files could not be fetched")
            continue
        clash = [f for p in pins for f in p.files if served.setdefault(f.filename, f.sha256) != f.sha256]
        if clash:
            failed_here.extend(
                f"{f.filename} ({f.origin or strip_credentials(f.url)}) differs from the file of the same name "
                "another app mirrors; an index serves one file per name: give the package a new version"
                for f in clash)
            continue
        origins = {d.key: f"{d.origin} ({Path(app.requirements[i].source).name}:{app.requirements[i].lineno})"
                   for i, d in dists.items()}
        req_lock = render_requirements_lock(app.name, t, pins, origins).encode("utf-8")
        entry_targets[t.id] = AppTarget.new(
            pylock=store.put_bytes(pylock), requirements_lock=store.put_bytes(req_lock),
            packages=tuple((p.name, str(p.version)) for p in pins), files=part.add_files(store, pins))
    if failed_here:
        result.ok, result.error = False, "\n".join(failed_here)
        return None
    direct = tuple(
        DirectRef(line=f"{Path(app.requirements[i].source).name}:{app.requirements[i].lineno}",
                  ref=ref.display if (ref := app.requirements[i].direct) is not None else None,
                  project=d.name, version=d.version, origin=d.origin, commit=d.commit)
        for i, d in sorted(dists.items()))
    return AppEntry.new(targets=entry_targets, conda_not_mirrored=tuple(sorted(result.conda_not_mirrored)), direct=direct)


def _python_part(store: Store, opts: SyncOptions, apps: list[tuple[AppSpec, list[PythonTarget]]],
                 all_targets: list[PythonTarget], results: dict[str, AppResult],
                 resolved: Mapping[tuple[str, str], tuple[bytes, list[Pin]] | MirrorError],
                 prepared: Mapping[str, tuple[IndexConfig, dict[int, DirectDist]]], got: _Fetched,
                 previous: Snapshot | None) -> _PythonPart:
    """Step 4: locks, files, installers and build requirements; a failed app keeps its previous entry."""
    part = _PythonPart()
    served: dict[str, str] = {}  # filename → sha256: the index serves one file per name
    for app, targets in apps:
        result = results[app.name]
        if not result.ok:
            continue
        warnings = got.confusion.get(app.name, [])
        if warnings and opts.strict:
            result.ok, result.error = False, "\n".join(warnings)
            continue
        result.warnings.extend([*warnings, *got.compiled.get(app.name, [])])
        entry = _app_entry(store, app, targets, result, part, resolved, got, prepared.get(app.name, (None, {}))[1], served)
        if entry is not None:
            part.apps[app.name] = entry
    # A failed app (unreadable, unresolvable, unfetchable) keeps its entry and files from the previous snapshot.
    for name, result in results.items():
        kept = previous.kept_app(name) if previous is not None and not result.ok and name not in part.apps else None
        if kept is not None:
            part.apps[name], files = kept
            part.files.update(files)
            result.kept_previous = True
    for t in all_targets:
        res = resolved.get(("installers", t.id))
        if isinstance(res, tuple) and not any(f.sha256 in got.bad_files for p in res[1] for f in p.files):
            part.installers[t.id] = part.add_files(store, res[1])
        elif isinstance(res, MirrorError):
            got.errors.append(f"installers for {t.id}: {res}")
    for tid, pins in got.build_pins.items():
        good = [p for p in pins if all(f.sha256 not in got.bad_files for f in p.files)]
        part.build[tid] = tuple(sorted(set(part.add_files(store, good))))
    return part


def _merge_extension(name: str, outcome: ExtensionOutcome, part: _PythonPart, results: dict[str, AppResult],
                     got: _Fetched, warnings: list[str]) -> None:
    """Step 5: a sync extension's per-app entries, errors and counts folded into the sync's."""
    got.fetched += outcome.files_fetched
    got.present += outcome.files_present
    got.bytes += outcome.bytes_fetched
    got.errors.extend(outcome.errors)
    warnings.extend(outcome.warnings)
    for app, entry in outcome.app_entries.items():
        if app in part.apps:
            part.apps[app] = part.apps[app].with_part(name, {tid: AppTarget.from_dict(t) for tid, t in entry.items()})
        results[app].targets.extend(t for t in entry if t not in results[app].targets)
    for app, msg in outcome.app_errors.items():
        r = results[app]
        r.ok = False
        r.error = "\n".join(filter(None, [r.error, msg]))
        r.kept_previous = r.kept_previous or app in outcome.kept_previous
    for app, warns in outcome.app_warnings.items():
        results[app].warnings.extend(warns)


def _kept_targets(part: _PythonPart, previous: Snapshot | None) -> dict[str, set[str]]:
    """Of each synced app, the targets of its previous entry that this sync did not make (Python
    target ids, a plug-in's as SECTION:TARGET): a run that names its targets keeps the others."""
    out: dict[str, set[str]] = {}
    for name, entry in part.apps.items():
        old = previous.apps.get(name) if previous is not None else None
        if old is None or entry is old:
            continue
        keep = {tid for tid, _t in old.all_targets()} - {tid for tid, _t in entry.all_targets()}
        if keep:
            out[name] = keep
    return out


def _snapshot(store: Store, part: _PythonPart, sections: Mapping[str, Section], all_targets: list[PythonTarget],
              previous: Snapshot | None, any_app: bool, kept: Sequence[str],
              kept_targets: Mapping[str, set[str]]) -> tuple[str | None, list[str], int]:
    """Step 6: the snapshot recorded (when some app has an entry): its id, targets and file count.
    The apps `kept` (of the store, not named by this sync) come over from `previous` as they were,
    and so do the `kept_targets` of the apps synced."""
    target_map = {t.id: TargetEntry(id=t.id, python=t.python, platform=t.platform) for t in all_targets}
    for app_entry in part.apps.values():
        for tid in app_entry.targets:
            if tid not in target_map and previous:
                target_map[tid] = previous.targets.get(tid) or TargetEntry(id=tid, absent=frozenset({"python", "platform"}))
    snap = Snapshot(format_version=SNAPSHOT_FORMAT, targets=target_map, apps=part.apps, python=part.python(),
                    sections=dict(sections))
    if (kept or kept_targets) and previous is not None:
        snap = snap.merged_over(previous.restricted_to([*kept, *kept_targets], kept_targets))
    files, nbytes = snap.counts()
    sid: str | None = None
    if part.apps or kept or not any_app:
        summary = {"apps": len(snap.apps), "targets": len(snap.target_ids()), "files": files, "bytes": nbytes}
        sid = store.put_snapshot(snap.to_dict(), origin="sync", summary=summary)
    return sid, snap.target_ids(), files


def run_sync(store: Store, opts: SyncOptions, *, reporter: Reporter | None = None,
             on_bytes: Callable[[int], None] = lambda n: None) -> SyncResult:
    """Resolve, fetch and record one snapshot. Never raises for one app's problem."""
    reporter = reporter or QuietReporter()
    clock = _Clock()
    # The HTTP client's modules (and the lock's) load once uv is running, beside it: a tenth of a
    # second that would otherwise wait in front of the first page or file, and that on the way to
    # uv only slowed the main thread (the import thread took the interpreter lock from it).
    preload = _Preload((load_httpx, "packaging.pylock", "tomllib"))
    previous_id = store.ref("current")
    previous = store.snapshot(previous_id) if previous_id else None
    _correct_sdist_facts(store)
    results, apps = _load_apps(opts, store)
    all_targets = sorted({t for _, ts in apps for t in ts}, key=lambda t: t.id)
    clock.lap("apps")
    # The extensions (the APT side) run alongside the Python side: they share nothing until the
    # snapshot, and both spend most of their time waiting on the network or on uv.
    with cf.ThreadPoolExecutor(max_workers=3, thread_name_prefix="sync-ext") as side:
        def start_extensions() -> list[tuple[SyncExtension, cf.Future[tuple[ExtensionOutcome, float]]]]:
            # Loaded here, not before: uv starts without waiting for the plug-ins' imports.
            return [(ext, side.submit(_timed, ext.sync, SyncContext(
                store=store, apps=[a for a, _ in apps], previous=previous, options=opts.extensions.get(ext.name, {}),
                reporter=reporter.lane(), concurrency=opts.concurrency,
                app_targets={a.name: tuple(_app_targets(a, opts)) for a, _ in apps}))) for ext in sync_extensions()]

        extensions = side.submit(start_extensions)
        # 2. Each app's indexes and its git / local / URL packages built; resolution for every app × target.
        prepared = _prepare_apps(apps, results, store, opts, reporter)
        jobs = _app_jobs(apps, prepared, results, opts)
        jobs += [_Job(key=("installers", t.id), target=t, index=opts.index, requirements=opts.installers)
                 for t in all_targets if opts.installers]
        credentials = Credentials.from_urls(
            u for idx in [opts.index, *(i for i, _ in prepared.values())] for u in (*idx.search_order, *idx.find_links))
        # Pages read 16 at a time (--concurrency), not 32: a no-op resync's reads are TLS set-ups and
        # waits, and half as many connections made dash-app's 366 ms 333 ms (15 alternating runs; 8:
        # 325 ms); the corpus's no-op the same (4.41 against 4.38 s).
        memo = ResolutionMemo(store.cache, lambda validators, **kw: page_digests(
            validators, concurrency=opts.concurrency, credentials=credentials, **kw))
        clock.lap("prepare")
        reporter.phase("resolving", len(jobs))
        downloads = Downloads(store, concurrency=opts.concurrency, credentials=credentials, on_bytes=on_bytes)
        early = _Early(store, memo, downloads)
        try:
            resolved, records = _resolve_jobs(jobs, store, opts, reporter, memo, early, previous, preload.start)
            preload.start()  # (no uv and no page read: still wanted for what follows)
            clock.lap("resolve")
            # 3. Fetch, then catalog; then the build requirements of every sdist, until none are new.
            got = _fetch_with_build_requirements(jobs, resolved, records, results, store, opts, reporter, memo,
                                                 credentials, on_bytes, early)
        finally:
            early.close()
            downloads.close()
        memo.finish()
        clock.lap("fetch")
        # 4. Locks and files; 5. each extension's part, once it is done.
        part = _python_part(store, opts, apps, all_targets, results, resolved, prepared, got, previous)
        clock.lap("catalog")
        sections: dict[str, Section] = {}
        warnings: list[str] = []
        for ext, future in extensions.result():
            outcome, took = future.result()
            clock.note(f"{ext.name} (alongside)", took)
            if outcome.section:  # (a plug-in with nothing mirrored has no section)
                sections[ext.name] = Section.from_dict(outcome.section)
            _merge_extension(ext.name, outcome, part, results, got, warnings)
        clock.lap("wait for extensions")
    # 6. The snapshot, with the store's other apps as they were (unless pruned).
    others = sorted(set(previous.apps) - set(results)) if previous else []
    kept = [] if opts.prune else others
    kept_targets = _kept_targets(part, previous) if opts.narrowed and not opts.prune else {}
    sid, targets, files_total = _snapshot(store, part, sections, all_targets, previous, bool(results), kept, kept_targets)
    clock.lap("snapshot")
    return SyncResult(
        kept_apps=kept, removed_apps=others if opts.prune else [],
        kept_targets={a: sorted(t) for a, t in sorted(kept_targets.items())},
        snapshot_id=sid, previous_id=previous_id, apps=list(results.values()), targets=targets,
        files_total=files_total, files_fetched=got.fetched, files_present=got.present, bytes_fetched=got.bytes,
        fetch_errors=got.errors, warnings=warnings, resolutions_run=memo.resolved, resolutions_reused=memo.reused,
        timings=clock.laps,
    )


class _Preload:
    """Modules a sync will want, imported on a thread of their own once `start` is called (again: no-op)."""

    def __init__(self, names: Sequence[str | Callable[[], object]]) -> None:
        self._names = tuple(names)
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="sync-imports", daemon=True).start()

    def _run(self) -> None:
        for name in self._names:
            with contextlib.suppress(ImportError):
                name() if callable(name) else importlib.import_module(name)


class _Clock:
    """Wall time per phase of a sync (`--json` carries it; `scripts/bench --profile` prints it)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now

    def note(self, name: str, seconds: float) -> None:
        self.laps[name] = seconds


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return fn(*args), time.perf_counter() - t0
