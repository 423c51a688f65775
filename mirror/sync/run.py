"""One sync: app folders → resolution per target → verified fetch → catalog → snapshot.

The order of work and what is recorded; the steps live in the package's other modules. A failing
app does not stop the others: its error is reported and, if an earlier snapshot held it, its
previous locks are kept.
"""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from airgap_mirror import logs
from airgap_mirror.credentials import Credentials
from airgap_mirror.fetch import Downloads
from airgap_mirror.fetch.client import load_httpx, warm_clients
from airgap_mirror.interfaces import ExtensionOutcome, QuietReporter, Reporter, SyncContext, SyncExtension, sync_extensions
from airgap_mirror.resolve.memo import ResolutionMemo
from airgap_mirror.resolve.upstream import page_digests
from airgap_mirror.store import Store
from airgap_mirror.store.model import Section
from airgap_mirror.sync.assemble import assemble_snapshot, kept_targets, merge_extension, python_part
from airgap_mirror.sync.cooldown import cooled
from airgap_mirror.sync.downloads import correct_sdist_facts, fetch_with_build_requirements
from airgap_mirror.sync.early import EarlyDownloads
from airgap_mirror.sync.jobs import Job, app_jobs, resolve_jobs
from airgap_mirror.sync.load import app_targets, load_apps, prepare_apps
from airgap_mirror.sync.options import SyncOptions, SyncResult
from airgap_mirror.sync.state import SyncRun

_log = logs.get(__name__)



def run_sync(store: Store, opts: SyncOptions, *, reporter: Reporter | None = None,
             on_bytes: Callable[[int], None] = lambda n: None) -> SyncResult:
    """Resolve, fetch and record one snapshot. Never raises for one app's problem."""
    reporter = reporter or QuietReporter()
    clock = _Clock()
    # The HTTP client's modules (and the lock's) load once uv is running, beside it: a tenth of a
    # second that would otherwise wait in front of the first page or file, and that on the way to
    # uv only slowed the main thread (the import thread took the interpreter lock from it).
    preload = _Preload((load_httpx, warm_clients, "packaging.pylock", "tomllib"), now=any(
        (Path(p) / "uv.lock").is_file() for p in opts.apps))  # (reading a uv.lock is a wait on `uv export`)
    previous_id = store.ref("current")
    run = SyncRun(store=store, opts=opts, reporter=reporter, on_bytes=on_bytes,
                  previous=store.snapshot(previous_id) if previous_id else None)
    _log.info("sync of %d app folders; indexes: %s", len(opts.apps), ", ".join(opts.index.search_order))
    correct_sdist_facts(store)
    # 1. The app folders read.
    run.results, run.apps = load_apps(opts, store)
    run.all_targets = sorted({t for _, ts in run.apps for t in ts}, key=lambda t: t.id)
    clock.lap("apps")
    # The extensions (the APT side) run alongside the Python side: they share nothing until the
    # snapshot, and both spend most of their time waiting on the network or on uv.
    with cf.ThreadPoolExecutor(max_workers=3, thread_name_prefix="sync-ext") as side:
        extensions = side.submit(_start_extensions, side, run)
        # 2. Each app's indexes and its git / local / URL packages built; resolution for every app × target.
        run.prepared = prepare_apps(run)
        run.jobs = app_jobs(run) + [Job(key=("installers", t.id), target=t, index=opts.index, requirements=opts.installers,
                                        exclude_newer=opts.exclude_newer) for t in run.all_targets if opts.installers]
        run.credentials = Credentials.from_urls(
            u for idx in [opts.index, *(i for i, _ in run.prepared.values())] for u in (*idx.search_order, *idx.find_links))
        run.jobs = cooled(run, run.jobs)  # (asks each index once, only when a cooldown is set)
        # Pages read 16 at a time (--concurrency), not 32: a no-op resync's reads are TLS set-ups and
        # waits, and half as many connections made dash-app's 366 ms 333 ms (15 alternating runs; 8:
        # 325 ms); the corpus's no-op the same (4.41 against 4.38 s).
        memo = ResolutionMemo(store.cache, lambda validators, **kw: page_digests(
            validators, concurrency=opts.concurrency, credentials=run.credentials, **kw))
        clock.lap("prepare")
        reporter.phase("resolving", len(run.jobs))
        downloads = Downloads(store, concurrency=opts.concurrency, credentials=run.credentials, on_bytes=on_bytes)
        early = EarlyDownloads(store, memo, downloads)
        try:
            # 3. Resolution (a lock as it is, the memo, or uv), the chosen files starting to download.
            run.resolved, run.records = resolve_jobs(run.jobs, run, memo, early, apps=True, on_wait=preload.start)
            preload.start()  # (no uv and no page read: still wanted for what follows)
            clock.lap("resolve")
            # 4. Fetch, then catalog; then the build requirements of every sdist, until none are new.
            run.got = fetch_with_build_requirements(run, memo, early)
        finally:
            early.close()
            downloads.close()
        memo.finish()
        clock.lap("fetch")
        # 5. Locks and files; each extension's part, once it is done.
        part = python_part(run)
        clock.lap("catalog")
        sections: dict[str, Section] = {}
        warnings: list[str] = _stray_app_settings(opts, set(run.results) | set(run.previous.apps if run.previous else ()))
        warnings += run.got.warnings
        for ext, future in extensions.result():
            outcome, took = future.result()
            clock.note(f"{ext.name} (alongside)", took)
            if outcome.section:  # (a plug-in with nothing mirrored has no section)
                sections[ext.name] = Section.from_dict(outcome.section)
            merge_extension(ext.name, outcome, part, run.results, run.got, warnings)
        clock.lap("wait for extensions")
    # 6. The snapshot, with the store's other apps as they were (unless pruned).
    previous = run.previous
    others = sorted(set(previous.apps) - set(run.results)) if previous else []
    kept = [] if opts.prune else others
    keep_targets = kept_targets(part, previous) if opts.narrowed and not opts.prune else {}
    sid, targets, files_total = assemble_snapshot(run, part, sections, kept, keep_targets)
    clock.lap("snapshot")
    got = run.got
    return SyncResult(
        kept_apps=kept, removed_apps=others if opts.prune else [],
        kept_targets={a: sorted(t) for a, t in sorted(keep_targets.items())},
        snapshot_id=sid, previous_id=previous_id, apps=list(run.results.values()), targets=targets,
        files_total=files_total, files_fetched=got.fetched, files_present=got.present, bytes_fetched=got.bytes,
        fetch_errors=got.errors, warnings=warnings, resolutions_run=memo.resolved, resolutions_reused=memo.reused,
        timings=clock.laps,
    )


def _stray_app_settings(opts: SyncOptions, known: set[str]) -> list[str]:
    """Per-app settings naming no app this run or the store has (a misspelt name chooses nothing)."""
    out = []
    for table, names in (("apps.extras", opts.app_extras), ("apps.groups", opts.app_groups),
                         ("apps.exclude-newer", opts.app_exclude_newer)):
        for name in sorted(set(names) - known):
            out.append(f"[{table}] names {name!r}, which is no app of this sync or the store (its apps are named "
                       "by folder name): the setting chooses nothing")
    return out


def _start_extensions(side: cf.ThreadPoolExecutor, run: SyncRun
                      ) -> list[tuple[SyncExtension, cf.Future[tuple[ExtensionOutcome, float]]]]:
    """Each sync extension (the APT side, conda) started on `side` with the apps read. Loaded here,
    not before: uv starts without waiting for the plug-ins' imports."""
    return [(ext, side.submit(_timed, ext.sync, SyncContext(
        store=run.store, apps=[a for a, _ in run.apps], previous=run.previous,
        options=run.opts.extensions.get(ext.name, {}), reporter=run.reporter.lane(), concurrency=run.opts.concurrency,
        app_targets={a.name: tuple(app_targets(a, run.opts)) for a, _ in run.apps}))) for ext in sync_extensions()]


class _Preload:
    """Modules a sync will want, imported on a thread of their own once `start` is called (again: no-op)."""

    def __init__(self, names: Sequence[str | Callable[[], object]], *, now: bool = False) -> None:
        self._names = tuple(names)
        self._started = False
        self._lock = threading.Lock()
        if now:
            self.start()

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
        threading.Thread(target=self._run, name="sync-imports", daemon=True).start()

    def _run(self) -> None:
        for name in self._names:
            try:
                name() if callable(name) else importlib.import_module(name)
            except ImportError:
                _log.debug("preloading %s failed (loaded when first used)", name, exc_info=True)


class _Clock:
    """Wall time per phase of a sync (`--json` carries it; `scripts/bench --profile` prints it)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now
        _log.info("sync step %s: %.2f s", name, self.laps[name])

    def note(self, name: str, seconds: float) -> None:
        self.laps[name] = seconds
        _log.info("sync step %s: %.2f s", name, seconds)


def _timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    return fn(*args), time.perf_counter() - t0
