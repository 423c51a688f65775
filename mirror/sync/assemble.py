"""The snapshot assembled: each app's entry (locks and files per target), the Python part, the
plug-ins' parts, and the store's other apps carried over.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from airgap_mirror.apps import AppSpec
from airgap_mirror.interfaces import ExtensionOutcome
from airgap_mirror.resolve import (
    Pin,
)
from airgap_mirror.resolve.cooldown import uploaded_after
from airgap_mirror.resolve.lockfile import render_requirements_lock
from airgap_mirror.resolve.targets import PythonTarget
from airgap_mirror.resolve.uv import not_found
from airgap_mirror.store import Store
from airgap_mirror.store.model import (
    AppEntry,
    AppTarget,
    DirectRef,
    ProjectStatus,
    PythonFile,
    PythonPart,
    Section,
    TargetEntry,
    project_names,
)
from airgap_mirror.store.snapshots import Snapshot
from airgap_mirror.sync.downloads import Fetched
from airgap_mirror.sync.early import catalog_entry
from airgap_mirror.sync.jobs import Failed, Resolved, Verdict
from airgap_mirror.sync.options import SNAPSHOT_FORMAT, AppResult
from airgap_mirror.sync.state import SyncRun
from airgap_mirror.urls import strip_credentials

if TYPE_CHECKING:
    from airgap_mirror.apps.direct import DirectDist



@dataclass(slots=True, kw_only=True)
class PythonPartBuilder:
    """Step 4's result: the Python side of the snapshot."""

    files: dict[str, PythonFile] = field(default_factory=dict)
    apps: dict[str, AppEntry] = field(default_factory=dict)
    installers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    build: dict[str, tuple[str, ...]] = field(default_factory=dict)
    projects: dict[str, ProjectStatus] = field(default_factory=dict)  # not active (PEP 792)
    active: set[str] = field(default_factory=set)  # projects this sync read as active

    def add_files(self, store: Store, pins: list[Pin]) -> tuple[str, ...]:
        """Record each pin's files as the snapshot describes them; their sha256s, sorted."""
        shas = []
        for pin in pins:
            for f in pin.files:
                entry = catalog_entry(store, pin, f)
                self.files[f.sha256] = PythonFile.new(
                    filename=entry.filename, project=entry.project, version=entry.version, kind=entry.kind,
                    size=entry.size, url=entry.url, requires_python=entry.requires_python, yanked=entry.yanked,
                    upload_time=entry.upload_time, metadata_sha256=entry.metadata_sha256,
                    metadata_size=store.blob_size(entry.metadata_sha256) if entry.metadata_sha256 else None,
                    provenance_sha256=entry.provenance_sha256,
                    provenance_size=store.blob_size(entry.provenance_sha256) if entry.provenance_sha256 else None)
                shas.append(f.sha256)
        return tuple(sorted(shas))

    def python(self) -> PythonPart:
        return PythonPart.new(files=self.files, installers=self.installers, build=self.build, projects=self.projects)

    def settle_statuses(self, read: Mapping[str, tuple[str, str | None]], previous: Snapshot | None,
                        results: Mapping[str, AppResult]) -> None:
        """Each project's PEP 792 status: as its page read now gives it, else as the previous snapshot
        had it; the apps that use a project that is not active say so."""
        used = project_names(self.files.values())
        old = previous.python.projects if previous is not None else {}
        self.projects = {p: s for p, s in old.items() if p in used and p not in read}
        self.projects.update((p, ProjectStatus.new(status=s, reason=r)) for p, (s, r) in read.items()
                             if p in used and s != "active")
        self.active = {p for p, (s, _r) in read.items() if s == "active"}
        if not self.projects:
            return
        for name, entry in self.apps.items():
            result = results.get(name)
            if result is None or not result.ok:
                continue
            mine = {canonicalize_name(f.project) for s in entry.files() if (f := self.files.get(s)) and f.project}
            for p in sorted(mine & set(self.projects)):
                st = self.projects[p]
                what = {"quarantined": "quarantined upstream (suspected malware: the index serves none of its files "
                                       "now; the mirror keeps what it had and takes nothing new)",
                        "archived": "archived upstream (no new releases expected)",
                        "deprecated": "deprecated upstream"}.get(st.status, f"{st.status} upstream")
                result.warnings.append(f"{p} is {what} (PEP 792){': ' + st.reason if st.reason else ''}")


def _app_entry(store: Store, app: AppSpec, targets: list[PythonTarget], result: AppResult, part: PythonPartBuilder,
               resolved: Mapping[tuple[str, str], Verdict], got: Fetched,
               dists: Mapping[int, DirectDist], served: dict[str, str]) -> AppEntry | None:
    """One app's snapshot entry (locks and files per target), or None with `result` failed."""
    entry_targets: dict[str, AppTarget] = {}
    failed_here: list[str] = []
    for t in targets:
        res = resolved.get((app.name, t.id))
        if res is None:
            continue
        if isinstance(res, Failed):
            failed_here.append(_with_lines(app, str(res.error)))
            continue
        pylock, pins = res.pylock, res.pins
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


def _with_lines(app: AppSpec, error: str) -> str:
    """A resolution error with the file and line of each requirement the index does not have in
    front of it (uv names the project, not where the app asked for it)."""
    lines = []
    for name in not_found(error):
        for req in app.requirements:
            if req.requirement is not None and canonicalize_name(req.requirement.name) == canonicalize_name(name):
                lines.append(f"{req.where}: {req.requirement.name} is on none of the app's indexes: check its "
                             "spelling on the index (a name is the project's, as pip installs it, not the module's)")
    return "\n".join([*dict.fromkeys(lines), error])


def _young_pins(app: AppSpec, entry: AppEntry, part: PythonPartBuilder, cooldown: str) -> list[str]:
    """A lock's pins uploaded after the cooldown's cutoff: kept (a lock is the truth), and said."""
    files = [part.files[s] for t in entry.targets.values() for s in t.files if s in part.files]
    young = sorted({f"{f.project} {f.version} ({(f.upload_time or '')[:10]})" for f in files
                    if uploaded_after(f.upload_time, cooldown)})
    if not young:
        return []
    return [f"{app.package_manager or 'the lock'} pins {', '.join(young[:10])}{' ...' if len(young) > 10 else ''}, "
            f"uploaded after the cooldown's cutoff ({cooldown}): mirrored, as the lock is the truth; relock with the "
            "cooldown (uv lock --exclude-newer, for instance) to leave them out"]


def python_part(run: SyncRun) -> PythonPartBuilder:
    """Step 4: locks, files, installers and build requirements; a failed app keeps its previous entry."""
    store, opts, apps, all_targets, results = run.store, run.opts, run.apps, run.all_targets, run.results
    resolved, prepared, got, previous = run.resolved, run.prepared, run.fetched(), run.previous
    part = PythonPartBuilder()
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
            cooldown = opts.app_exclude_newer.get(app.name, opts.exclude_newer)
            if app.locked and cooldown:
                result.warnings.extend(_young_pins(app, entry, part, cooldown))
    # A failed app (unreadable, unresolvable, unfetchable) keeps its entry and files from the previous snapshot.
    for name, result in results.items():
        kept = previous.kept_app(name) if previous is not None and not result.ok and name not in part.apps else None
        if kept is not None:
            part.apps[name], files = kept
            part.files.update(files)
            result.kept_previous = True
    for t in all_targets:
        res = resolved.get(("installers", t.id))
        if isinstance(res, Resolved) and not any(f.sha256 in got.bad_files for p in res.pins for f in p.files):
            part.installers[t.id] = part.add_files(store, res.pins)
        elif isinstance(res, Failed):
            got.errors.append(f"installers for {t.id}: {res}")
    for tid, pins in got.build_pins.items():
        good = [p for p in pins if all(f.sha256 not in got.bad_files for f in p.files)]
        part.build[tid] = tuple(sorted(set(part.add_files(store, good))))
    part.settle_statuses(got.statuses, previous, results)
    return part


def merge_extension(name: str, outcome: ExtensionOutcome, part: PythonPartBuilder, results: dict[str, AppResult],
                     got: Fetched, warnings: list[str]) -> None:
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


def kept_targets(part: PythonPartBuilder, previous: Snapshot | None) -> dict[str, set[str]]:
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


def assemble_snapshot(run: SyncRun, part: PythonPartBuilder, sections: Mapping[str, Section], kept: Sequence[str],
                      kept_targets: Mapping[str, set[str]]) -> tuple[str | None, list[str], int]:
    """Step 6: the snapshot recorded (when some app has an entry): its id, targets and file count.
    The apps `kept` (of the store, not named by this sync) come over from the previous snapshot as
    they were, and so do the `kept_targets` of the apps synced."""
    store, all_targets, previous, any_app = run.store, run.all_targets, run.previous, bool(run.results)
    target_map = {t.id: TargetEntry(id=t.id, python=t.python, platform=t.platform) for t in all_targets}
    for app_entry in part.apps.values():
        for tid in app_entry.targets:
            if tid not in target_map and previous:
                target_map[tid] = previous.targets.get(tid) or TargetEntry(id=tid, absent=frozenset({"python", "platform"}))
    snap = Snapshot(format_version=SNAPSHOT_FORMAT, targets=target_map, apps=part.apps, python=part.python(),
                    sections=dict(sections))
    if (kept or kept_targets) and previous is not None:
        snap = snap.merged_over(previous.restricted_to([*kept, *kept_targets], kept_targets))
        if part.active & set(snap.python.projects):  # a status this sync read anew wins over a kept app's
            projects = {p: s for p, s in snap.python.projects.items() if p not in part.active}
            snap = dataclasses.replace(snap, python=dataclasses.replace(
                snap.python, projects=projects, absent=snap.python.absent | ({"projects"} if not projects else set())))
    files, nbytes = snap.counts()
    sid: str | None = None
    if part.apps or kept or not any_app:
        summary = {"apps": len(snap.apps), "targets": len(snap.target_ids()), "files": files, "bytes": nbytes}
        sid = store.put_snapshot(snap.to_dict(), origin="sync", summary=summary)
    return sid, snap.target_ids(), files
