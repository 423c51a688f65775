"""One sync: app folders → resolution per target → verified fetch → catalog → snapshot.

The order of work and what is recorded; the pieces (parsing, resolving, fetching, storing) live in
their own modules. A failing app does not stop the others: its error is reported and, if an
earlier snapshot held it, its previous locks are kept.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .apps import AppSpec, load_app
from .distinfo import read_sdist, read_wheel
from .errors import MirrorError
from .fetch import FetchItem, fetch_all
from .lockfile import render_requirements_lock
from .resolve import IndexConfig, Pin, PinnedFile, select_files, uv_compile
from .store import CatalogFile, Store
from .targets import DEFAULT_PLATFORM, DEFAULT_PYTHON, PythonTarget
from .upstream import FileStatus, project_pages
from .urls import strip_credentials

__all__ = ["SyncOptions", "SyncResult", "AppResult", "run_sync", "Reporter", "SNAPSHOT_FORMAT"]

SNAPSHOT_FORMAT = 1
from .defaults import DEFAULT_INSTALLERS  # noqa: E402  (re-exported)
_MAX_BUILD_DEPTH = 8


class Reporter(Protocol):
    def phase(self, name: str, total: int | None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def note(self, message: str) -> None: ...


class _Quiet:
    def phase(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        pass


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncOptions:
    apps: tuple[Path, ...]
    pythons: tuple[str, ...] = ()
    platforms: tuple[str, ...] = (DEFAULT_PLATFORM,)
    default_python: str = DEFAULT_PYTHON
    index: IndexConfig = field(default_factory=IndexConfig)
    installers: tuple[str, ...] = DEFAULT_INSTALLERS
    concurrency: int = 16
    resolver_jobs: int = 4
    refresh: bool = False
    # Settings of sync extensions (the APT side), by extension name; see mirror.extensions.
    extensions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


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
            "bytes_fetched": self.bytes_fetched, "fetch_errors": self.fetch_errors,
            "apps": [
                {"name": a.name, "path": a.path, "ok": a.ok, "targets": a.targets, "error": a.error,
                 "warnings": a.warnings, "kept_previous": a.kept_previous, "conda_not_mirrored": a.conda_not_mirrored}
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


def _app_index(app: AppSpec, base: IndexConfig) -> IndexConfig:
    o = app.options
    if o.index_url is None and not o.extra_index_urls:
        return base
    return IndexConfig(
        index_url=o.index_url or base.index_url,
        extra_index_urls=tuple(dict.fromkeys((*base.extra_index_urls, *o.extra_index_urls))),
    )


def _app_targets(app: AppSpec, opts: SyncOptions) -> list[PythonTarget]:
    pythons = opts.pythons or (app.python or opts.default_python,)
    return [PythonTarget.parse(py, plat) for py in pythons for plat in opts.platforms]


def _resolve_jobs(jobs: list[_Job], store: Store, opts: SyncOptions, reporter: Reporter
                  ) -> dict[tuple[str, str], tuple[bytes, list[Pin]] | MirrorError]:
    out: dict[tuple[str, str], tuple[bytes, list[Pin]] | MirrorError] = {}

    def run(job: _Job) -> tuple[bytes, list[Pin]]:
        label = job.key[0]
        data = uv_compile(
            list(job.requirements), job.target, index=job.index, constraints=list(job.constraints),
            cache_dir=store.cache / "uv", prerelease=job.prerelease, no_binary=job.no_binary,
            only_binary=job.only_binary, label=label, refresh=opts.refresh,
        )
        return data, select_files(data, job.target, label=label)

    with cf.ThreadPoolExecutor(max_workers=max(1, opts.resolver_jobs)) as pool:
        futures = {pool.submit(run, job): job for job in jobs}
        for fut in cf.as_completed(futures):
            job = futures[fut]
            try:
                out[job.key] = fut.result()
            except MirrorError as exc:
                out[job.key] = exc
            reporter.advance()
    return out


def _catalog(store: Store, pin: Pin, f: PinnedFile, status: FileStatus | None = None) -> CatalogFile:
    """Catalog entry for a fetched file, reading its metadata once."""
    known = store.pyfile(f.sha256, f.filename)
    if known is not None:
        return known
    path = store.blob_path(f.sha256)
    requires_python = None
    metadata_sha = None
    build_requires = None
    if f.kind == "wheel":
        info = read_wheel(path)
        if info is not None:
            requires_python = info.requires_python
            metadata_sha = store.put_bytes(info.metadata)
    else:
        sinfo = read_sdist(path)
        requires_python = sinfo.requires_python
        build_requires = sinfo.build_requires
    if status is not None:
        requires_python = requires_python or status.requires_python
    entry = CatalogFile(
        sha256=f.sha256, filename=f.filename, project=pin.name, version=pin.version, kind=f.kind,
        size=path.stat().st_size, url=strip_credentials(f.url), requires_python=requires_python,
        yanked=status.yanked if status is not None else None,
        upload_time=f.upload_time, metadata_sha256=metadata_sha, build_requires=build_requires,
    )
    store.record_pyfile(entry)
    return entry


def run_sync(store: Store, opts: SyncOptions, *, reporter: Reporter | None = None,
             on_bytes: Callable[[int], None] = lambda n: None) -> SyncResult:
    """Resolve, fetch and record one snapshot. Never raises for one app's problem."""
    reporter = reporter or _Quiet()
    previous_id = store.ref("current")
    previous = store.load_snapshot(previous_id) if previous_id else None

    # 1. Apps and the target matrix.
    results: dict[str, AppResult] = {}
    apps: list[tuple[AppSpec, list[PythonTarget]]] = []
    for path in opts.apps:
        try:
            app = load_app(path)
            targets = _app_targets(app, opts) if app.has_python else []
        except MirrorError as exc:
            name = Path(path).resolve().name
            results[name] = AppResult(name=name, path=str(path), ok=False, error=str(exc))
            continue
        if app.name in results:
            results[app.name].warnings.append(f"two app folders are named {app.name}; {path} ignored")
            continue
        results[app.name] = AppResult(name=app.name, path=str(path), ok=True, targets=[t.id for t in targets],
                                      conda_not_mirrored=list(app.conda_packages))
        if app.conda_packages:
            results[app.name].warnings.append(
                f"{len(app.conda_packages)} conda packages in environment.yml are not mirrored (only its pip: section)")
        if not app.has_python and not app.apt_files:
            results[app.name].warnings.append("no Python requirements and no Aptfile found")
        apps.append((app, targets))
    all_targets = sorted({t for _, ts in apps for t in ts}, key=lambda t: t.id)

    # 2. Resolution: every app × target, and the installers for every target.
    jobs: list[_Job] = []
    for app, targets in apps:
        if not app.has_python:
            continue
        for t in targets:
            jobs.append(_Job(
                key=(app.name, t.id), target=t, index=_app_index(app, opts.index),
                requirements=tuple(str(r.requirement) for r in app.requirements),
                constraints=tuple(str(c.requirement) for c in app.constraints),
                prerelease=app.options.pre, no_binary=app.options.no_binary, only_binary=app.options.only_binary,
            ))
    if opts.installers:
        for t in all_targets:
            jobs.append(_Job(key=("installers", t.id), target=t, index=opts.index, requirements=opts.installers))
    reporter.phase("resolving", len(jobs))
    resolved = _resolve_jobs(jobs, store, opts, reporter)

    # 3. Fetch, then catalog; then the build requirements of every sdist, until none are new.
    fetch_errors: list[str] = []
    fetched = present = nbytes = 0
    used: dict[str, tuple[Pin, PinnedFile]] = {}
    pending: list[tuple[PythonTarget, list[Pin], IndexConfig]] = []
    for job in jobs:
        res = resolved[job.key]
        if isinstance(res, tuple):
            pending.append((job.target, res[1], job.index))
    seen_build: set[tuple[str, tuple[str, ...]]] = set()
    build_pins: dict[str, list[Pin]] = {}
    bad_files: set[str] = set()
    for depth in range(_MAX_BUILD_DEPTH + 1):
        items: list[FetchItem] = []
        for _, pins, _ in pending:
            for pin in pins:
                for f in pin.files:
                    if f.sha256 not in used:
                        used[f.sha256] = (pin, f)
                        items.append(FetchItem(url=f.url, sha256=f.sha256, filename=f.filename, size=f.size))
        total_size = sum(i.size or 0 for i in items)
        reporter.phase("downloading" if depth == 0 else "downloading build requirements", total_size or None)
        # What the index says of files new to the catalog (yanked, requires-python): one page a
        # project, fetched while the files download.
        wanted = sorted({(idx.index_url, pin.name) for _, pins, idx in pending for pin in pins
                         for f in pin.files if store.pyfile(f.sha256, f.filename) is None})
        with cf.ThreadPoolExecutor(max_workers=1) as side:
            pages_future = side.submit(project_pages, wanted, concurrency=opts.concurrency)
            report = fetch_all(items, store, concurrency=opts.concurrency,
                               on_bytes=lambda n: (reporter.advance(n) if total_size else None, on_bytes(n)))
            pages = pages_future.result()
        fetched += len(report.fetched)
        present += len(report.present)
        nbytes += report.bytes_fetched
        for item, exc in report.failed:
            fetch_errors.append(str(exc))
            bad_files.add(item.sha256)
        # Build requirements of sdists, per target.
        next_jobs: list[_Job] = []
        for target, pins, idx in pending:
            for pin in pins:
                for f in pin.files:
                    if f.sha256 in bad_files:
                        continue
                    entry = _catalog(store, pin, f, pages.get((idx.index_url, pin.name), {}).get(f.filename))
                    if entry.kind == "sdist" and entry.build_requires is not None:
                        reqs = tuple(sorted(set(entry.build_requires)))
                        if not reqs or (target.id, reqs) in seen_build:
                            continue
                        seen_build.add((target.id, reqs))
                        next_jobs.append(_Job(key=("build:" + " ".join(reqs), target.id), target=target,
                                              index=opts.index, requirements=reqs))
        if not next_jobs:
            break
        reporter.phase("resolving build requirements", len(next_jobs))
        build_res = _resolve_jobs(next_jobs, store, opts, reporter)
        pending = []
        for job in next_jobs:
            res = build_res[job.key]
            if isinstance(res, tuple):
                pending.append((job.target, res[1], job.index))
                build_pins.setdefault(job.target.id, []).extend(res[1])
            else:
                fetch_errors.append(f"build requirements {' '.join(job.requirements)} for {job.target.id}: {res}")
    # (builds deeper than _MAX_BUILD_DEPTH would be a cycle in practice; uv's own resolution bounds them)

    # 4. Locks and the snapshot.
    def pins_ok(pins: list[Pin]) -> bool:
        return all(f.sha256 not in bad_files for p in pins for f in p.files)

    files: dict[str, dict[str, Any]] = {}

    def add_files(pins: list[Pin]) -> list[str]:
        shas = []
        for pin in pins:
            for f in pin.files:
                entry = _catalog(store, pin, f)
                files[f.sha256] = {
                    "filename": entry.filename, "project": entry.project, "version": entry.version,
                    "kind": entry.kind, "size": entry.size, "url": entry.url,
                    "requires_python": entry.requires_python, "yanked": entry.yanked,
                    "upload_time": entry.upload_time, "metadata_sha256": entry.metadata_sha256,
                }
                if entry.metadata_sha256:
                    files[f.sha256]["metadata_size"] = store.blob_size(entry.metadata_sha256)
                shas.append(f.sha256)
        return sorted(shas)

    apps_manifest: dict[str, Any] = {}
    for app, targets in apps:
        entry_targets: dict[str, Any] = {}
        failed_here: list[str] = []
        for t in targets:
            res = resolved.get((app.name, t.id))
            if res is None:
                continue
            if isinstance(res, MirrorError):
                failed_here.append(str(res))
                continue
            pylock, pins = res
            if not pins_ok(pins):
                failed_here.append(f"{app.name} for {t.id}: some files could not be fetched")
                continue
            req_lock = render_requirements_lock(app.name, t, pins).encode("utf-8")
            entry_targets[t.id] = {
                "pylock": store.put_bytes(pylock),
                "requirements_lock": store.put_bytes(req_lock),
                "packages": [[p.name, p.version] for p in pins],
                "files": add_files(pins),
            }
        result = results[app.name]
        if failed_here:
            result.ok = False
            result.error = "\n".join(failed_here)
            continue
        apps_manifest[app.name] = {"targets": entry_targets, "conda_not_mirrored": sorted(app.conda_packages)}
    # A failed app (unreadable, unresolvable, unfetchable) keeps its entry and files from the previous snapshot.
    old_apps = (previous or {}).get("apps", {})
    old_files = (previous or {}).get("python", {}).get("files", {})
    for name, result in results.items():
        if not result.ok and name not in apps_manifest and name in old_apps:
            apps_manifest[name] = old_apps[name]
            result.kept_previous = True
            for t in old_apps[name].get("targets", {}).values():
                files.update((s, old_files[s]) for s in t.get("files", []) if s in old_files)

    installers: dict[str, list[str]] = {}
    for t in all_targets:
        res = resolved.get(("installers", t.id))
        if isinstance(res, tuple) and pins_ok(res[1]):
            installers[t.id] = add_files(res[1])
        elif isinstance(res, MirrorError):
            fetch_errors.append(f"installers for {t.id}: {res}")
    build: dict[str, list[str]] = {}
    for tid, pins in build_pins.items():
        good = [p for p in pins if all(f.sha256 not in bad_files for f in p.files)]
        build[tid] = sorted(set(add_files(good)))

    # 5. Extensions (the APT side): each adds its section and per-app entries.
    from .extensions import SyncContext, sync_extensions

    sections: dict[str, Any] = {}
    for ext in sync_extensions():
        ctx = SyncContext(store=store, apps=[a for a, _ in apps], previous=previous,
                          options=opts.extensions.get(ext.name, {}), reporter=reporter, concurrency=opts.concurrency)
        outcome = ext.sync(ctx)
        sections[ext.name] = outcome.section
        fetched += outcome.files_fetched
        present += outcome.files_present
        nbytes += outcome.bytes_fetched
        fetch_errors.extend(outcome.errors)
        for name, entry in outcome.app_entries.items():
            if name in apps_manifest:
                apps_manifest[name][ext.name] = entry
            results[name].targets.extend(t for t in entry if t not in results[name].targets)
        for name, msg in outcome.app_errors.items():
            r = results[name]
            r.ok = False
            r.error = "\n".join(filter(None, [r.error, msg]))
            r.kept_previous = r.kept_previous or name in outcome.kept_previous
        for name, warns in outcome.app_warnings.items():
            results[name].warnings.extend(warns)

    target_map = {t.id: t.to_dict() for t in all_targets}
    for app_entry in apps_manifest.values():
        for tid in app_entry.get("targets", {}):
            if tid not in target_map and previous:
                target_map[tid] = previous.get("targets", {}).get(tid, {"id": tid})
    manifest = {
        "format_version": SNAPSHOT_FORMAT,
        "kind": "airgap-mirror/snapshot",
        "targets": target_map,
        "apps": apps_manifest,
        "python": {"files": files, "installers": installers, "build": build},
    }
    for name, section in sections.items():
        if section:
            manifest[name] = section
    sid: str | None = None
    if apps_manifest or not results:
        ext_files = [m for sec in sections.values() for m in sec.get("files", {}).values()]
        summary = {"apps": len(apps_manifest), "targets": len(target_map) + sum(len(sec.get("targets", {})) for sec in sections.values()),
                   "files": len(files) + len(ext_files),
                   "bytes": sum(m["size"] for m in files.values()) + sum(m["size"] for m in ext_files)}
        sid = store.put_snapshot(manifest, origin="sync", summary=summary)
    return SyncResult(
        snapshot_id=sid, previous_id=previous_id, apps=list(results.values()),
        targets=sorted(target_map) + sorted(t for sec in sections.values() for t in sec.get("targets", {})),
        files_total=len(files) + sum(len(sec.get("files", {})) for sec in sections.values()), files_fetched=fetched, files_present=present, bytes_fetched=nbytes,
        fetch_errors=fetch_errors,
    )
