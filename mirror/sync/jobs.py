"""The resolution jobs (collect): one per app and target, plus each target's installers and the
build requirements of its sdists; answered from a lock as it is, from the memo when nothing it read
changed, else by uv; each answer a verdict (Resolved or Failed).
"""

from __future__ import annotations

import concurrent.futures as cf
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name
from packaging.version import Version

from airgap_mirror.apps import AppSpec
from airgap_mirror.apps.reqfile import ReqLine
from airgap_mirror.credentials import expand
from airgap_mirror.errors import InputError, IntegrityError, MirrorError, ResolutionError
from airgap_mirror.fetch import unknown_host
from airgap_mirror.resolve import (
    IndexConfig,
    Pin,
    PinnedFile,
    UvResolution,
    select_files,
    uv_compile,
    uv_version,
)
from airgap_mirror.resolve.memo import Recorded, ResolutionMemo, folder_digest, is_deterministic, memo_key
from airgap_mirror.resolve.targets import PythonTarget
from airgap_mirror.resolve.upstream import page_url
from airgap_mirror.store.snapshots import Snapshot
from airgap_mirror.sync.state import SyncRun
from airgap_mirror.urls import strip_credentials

from .early import EarlyDownloads  # (relative, as early.py names Job: one module whichever name mypy reads it by)

if TYPE_CHECKING:
    from airgap_mirror.apps.direct import DirectDist



@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
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
    # What the app installs of its own PEP 751 lock besides the default groups (its markers' `extras`,
    # `dependency_groups`).
    extras: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    exclude_newer: str | None = None  # the cooldown's cutoff (RFC 3339): nothing uploaded after it


def app_index(app: AppSpec, base: IndexConfig) -> IndexConfig:
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


def _portable_pylock(data: bytes, pins: list[Pin], direct: Mapping[str, tuple[PinnedFile, ...]]) -> bytes:
    """uv's pylock with our build folders' paths cut to the file names the mirror serves them as."""
    from urllib.parse import unquote, urlsplit

    for files in direct.values():
        for f in files:
            path = unquote(urlsplit(f.url).path)
            data = data.replace(path.encode(), f.filename.encode())
    return data


def _memo_fields(job: Job) -> dict[str, Any]:
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
        **({"exclude_newer": job.exclude_newer} if job.exclude_newer else {}),
    }


def _sdist_only(pins: list[Pin]) -> list[str]:
    """Projects a target gets only as an sdist from an index (not ones the app builds itself)."""
    return [p.name for p in pins if all(f.kind == "sdist" and not f.origin for f in p.files)]


@dataclass(frozen=True, slots=True)
class Resolved:
    """A job's verdict when it resolved: its lock as served, and the pins with the files chosen."""

    pylock: bytes
    pins: list[Pin]


@dataclass(frozen=True, slots=True)
class Failed:
    """A job's verdict when it did not: why (the app fails with it; a failed app keeps its previous entry)."""

    error: MirrorError

    def __str__(self) -> str:
        return str(self.error)


Verdict = Resolved | Failed


def _finish(job: Job, pylock: bytes) -> Resolved:
    """A job's lock as served (our build paths cut to file names) and the files chosen per pin."""
    pins = select_files(pylock, job.target, label=job.key[0], direct=job.direct, evaluate_markers=job.prelocked is not None,
                        extras=job.extras, groups=job.groups)
    for pin in pins:  # a lock is the truth: never another file under a locked name
        allowed = job.hashes.get((canonicalize_name(pin.name), str(Version(str(pin.version))))) or frozenset()
        for f in pin.files if allowed else ():
            if f.sha256 not in allowed and not f.origin:
                raise IntegrityError(
                    f"{job.key[0]} for {job.target.id}: the index's {f.filename} has sha256 {f.sha256}, which "
                    f"{job.lock} does not list for {pin.name} {pin.version}: not mirrored (the index serves another file "
                    "under that name, or the lock was made against another index: relock against the one mirrored)")
    return Resolved(_portable_pylock(pylock, pins, job.direct), pins)


def _answer_from_memo(jobs: list[Job], recorded: Mapping[tuple[str, str], Recorded], memo: ResolutionMemo,
                      out: dict[tuple[str, str], Verdict], answered: Callable[[Job], None],
                      public: str, again: set[str]) -> list[Job]:
    """Fill `out` for every job (each has a record) whose recorded resolution read only pages that
    are unchanged now (each page read once, all at once); return the jobs uv must resolve. Pages the
    sync will want parsed after (`again`, and the confusion check's) are read in full by that read."""
    memo.read((u for r in recorded.values() for u in r.pages), parse=again | confusion_pages(jobs, recorded, public))
    todo: list[Job] = []
    for job in jobs:
        rec = recorded[job.key]
        if not memo.unchanged(rec):
            todo.append(job)
            continue
        memo.reused += 1
        try:
            out[job.key] = (_finish(job, rec.pylock.encode("utf-8")) if rec.pylock is not None else
                            Failed(ResolutionError(f"{rec.error}\n(unchanged since {rec.created[:10]}: the same "
                                                   "requirements and index pages; --refresh retries it)")))
        except MirrorError as exc:
            out[job.key] = Failed(exc)
        answered(job)
    return todo


def sdist_pages(previous: Snapshot | None, jobs: list[Job]) -> set[str]:
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


def confusion_pages(jobs: list[Job], recorded: Mapping[tuple[str, str], Recorded], public: str) -> set[str]:
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


MemoRecord = tuple[str, "bytes | None", "str | None", tuple[str, ...]]  # memo key, pylock, error, pages read


def resolve_jobs(jobs: list[Job], run: SyncRun, memo: ResolutionMemo, early: EarlyDownloads, *,
                 apps: bool = False, on_wait: Callable[[], None] = lambda: None
                 ) -> tuple[dict[tuple[str, str], Verdict], list[MemoRecord]]:
    """Each job's lock and pins, or its error; and what the memo is to record of the resolutions uv
    ran (the caller hands them to `memo.record_later` with the pages it wants read too). A job whose
    recorded resolution read only pages that are unchanged now is answered from the memo; the others
    run uv (4 at a time), and the files of the versions it picks start downloading (`early`).
    `on_wait()` is called when this thread first waits, on uv or on the memo's page reads. `apps`:
    these are the apps' jobs (the pages of what they got as sdists before are read in full)."""
    opts, reporter = run.opts, run.reporter
    previous = run.previous if apps else None
    out: dict[tuple[str, str], Verdict] = {}
    left: dict[str, int] = {}  # app → its jobs not answered yet: a line as each app's last one is (a log's progress)
    for job in jobs if apps else ():
        left[job.key[0]] = left.get(job.key[0], 0) + 1

    def answered(job: Job) -> None:
        reporter.advance()
        if job.key[0] in left:
            left[job.key[0]] -= 1
            if not left[job.key[0]]:
                verdicts = [v for k, v in out.items() if k[0] == job.key[0]]
                bad = [" ".join(str(v).split())[:240] for v in verdicts if isinstance(v, Failed)]
                reporter.finished(f"{job.key[0]}: resolved for {len(verdicts)} target{'s' if len(verdicts) != 1 else ''}"
                                  if not bad else f"{job.key[0]}: FAILED to resolve: {bad[0]}")
    for job in jobs:  # a lock's files, as they are: no uv, no pages
        if job.prelocked is None:
            continue
        try:
            out[job.key] = _finish(job, job.prelocked)
        except MirrorError as exc:
            out[job.key] = Failed(exc)
        answered(job)
    jobs = [j for j in jobs if j.prelocked is None]

    keys = {job.key: memo_key(_memo_fields(job)) for job in jobs}

    uv = _Uv(run, memo, early, on_wait)
    done: list[tuple[Job, bytes | None, str | None, tuple[str, ...]]] = []
    with cf.ThreadPoolExecutor(max_workers=max(1, opts.resolver_jobs)) as pool:
        # A job with nothing recorded goes to uv at once; the others once the memo has read their pages.
        recorded = {} if opts.refresh else {k: r for k, r in ((k, memo.load(key)) for k, key in keys.items()) if r}
        fresh = [job for job in jobs if job.key not in recorded]
        futures = {pool.submit(uv.resolve, job): job for job in fresh}
        answerable = [job for job in jobs if job.key in recorded]
        if answerable:
            on_wait()
        changed = _answer_from_memo(answerable, recorded, memo, out, answered, opts.index.index_url,
                                    sdist_pages(previous, answerable))
        futures.update({pool.submit(uv.resolve, job): job for job in changed})
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
                out[job.key] = Failed(exc)
            except MirrorError as exc:
                out[job.key] = Failed(exc)
            answered(job)
    memo.resolved += len(todo)
    return out, [(keys[job.key], pylock, error, pages) for job, pylock, error, pages in done]


class _Uv:
    """A job's resolution by uv: its index's host checked first, pip's --prefer-binary done by
    resolving again, each file uv picks starting to download as it picks it (`early`)."""

    def __init__(self, run: SyncRun, memo: ResolutionMemo, early: EarlyDownloads, on_wait: Callable[[], None]) -> None:
        self.run, self.memo, self.early, self.on_wait = run, memo, early, on_wait

    def compile(self, job: Job, only_binary: tuple[str, ...]) -> UvResolution:
        return uv_compile(
            list(job.requirements), job.target, index=job.index, constraints=list(job.constraints),
            cache_dir=self.run.store.cache / "uv", prerelease=job.prerelease, no_binary=job.no_binary,
            only_binary=only_binary, no_deps=job.no_deps, label=job.key[0], refresh=self.run.opts.refresh,
            on_page=self.memo.prefetch, on_select=self.early.hearing(job), on_start=self.on_wait,
            exclude_newer=job.exclude_newer,
        )

    def resolve(self, job: Job) -> UvResolution:
        # An index whose host name does not exist fails the resolution, as it would fail in uv, but
        # at once: uv retries it for 4 s, every sync (the corpus's no-op resync spent 7 s there).
        for url in (*job.index.search_order, *(u for u in job.index.find_links if "://" in u)):
            if (host := unknown_host(url)) is not None:
                exc = ResolutionError(f"{job.key[0]} for {job.target.id}: the index {strip_credentials(url)} cannot be "
                                      f"reached: {host} is not a known host name (DNS); fix the URL, or this machine's "
                                      "DNS if the host is an internal one")
                exc.pages = ()
                raise exc
        res = self.compile(job, job.only_binary)
        return self._prefer_binary(job, res) if job.prefer_binary else res

    def _prefer_binary(self, job: Job, res: UvResolution) -> UvResolution:
        """pip's --prefer-binary: where the target got an sdist, the newest version with a wheel for it
        instead, when there is one (uv has no such flag: resolve again with those names binary-only)."""
        sdist_only = _sdist_only(select_files(res.pylock, job.target, label=job.key[0], direct=job.direct))
        if not sdist_only:
            return res

        def binary(names: list[str]) -> UvResolution | None:
            try:
                return self.compile(job, tuple(dict.fromkeys((*job.only_binary, *names))))
            except ResolutionError:
                return None

        again = binary(sdist_only)
        if again is None:  # some have no wheel for the target in any version: keep their sdists
            have_wheel = [n for n in sdist_only if binary([n]) is not None]
            again = binary(have_wheel) if have_wheel else None
        if again is None:
            return res
        return UvResolution(pylock=again.pylock, pages=tuple(dict.fromkeys((*res.pages, *again.pages))))


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


def app_jobs(run: SyncRun) -> list[Job]:
    """One resolution per prepared app and target; direct references point uv at the files we built."""
    apps, prepared, results, opts = run.apps, run.prepared, run.results, run.opts
    jobs: list[Job] = []
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
            jobs.append(Job(
                key=(app.name, t.id), target=t, index=index, requirements=tuple(reqs),
                constraints=tuple(str(c.requirement) for c in app.constraints),
                prerelease=app.options.pre, no_binary=app.options.no_binary,
                only_binary=tuple(dict.fromkeys((*opts.only_binary, *app.options.only_binary))),
                prefer_binary=opts.prefer_binary or app.options.prefer_binary,
                direct=direct_files,
                no_deps=app.locked, lock=app.package_manager or "",
                prelocked=app.lock_pylock if app.lock_pylock is not None and not dists else None,
                hashes=_locked_hashes(app) if app.locked else {},
                extras=frozenset(app.extras), groups=frozenset(app.groups),
                # a lock's pins are kept as they are (a pin inside the cooldown is warned, not dropped)
                exclude_newer=None if app.locked else opts.app_exclude_newer.get(app.name, opts.exclude_newer),
            ))
    return jobs
