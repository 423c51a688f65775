"""The snapshot as every part reads it: a frozen value over the canonical-JSON document, typed all the
way down (its levels are in `model`), and what is asked of it: the blobs it uses (bundles carry them,
gc keeps them, verify checks them), what changed since another, the part of it some apps use, one
laid over another. The document stays the stored form (its sha256 is the snapshot id).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from airgap_mirror.store.model import (
    AppEntry,
    AppTarget,
    LazyRecords,
    PythonFile,
    PythonPart,
    Section,
    SectionFile,
    TargetEntry,
)

__all__ = ["SNAPSHOT_KIND", "Snapshot", "unsafe_names"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
SNAPSHOT_KIND = "airgap-mirror/snapshot"
_KNOWN = ("format_version", "kind", "targets", "apps", "python")


def _bad_component(name: object) -> bool:
    """Not usable as one path component: a file, app, target, distro or architecture name."""
    return (not isinstance(name, str) or not name or name in (".", "..") or len(name.encode("utf-8", "replace")) > 255
            or any(c in name for c in "/\\\0") or any(ord(c) < 32 or ord(c) == 127 for c in name))


def unsafe_names(snapshot: object) -> list[str]:
    """Every name in a snapshot that publishing would turn into a path and that is not one safe
    path component (`../x`, `a/b`, NUL, over 255 bytes), or a blob key that is not a sha256: an
    imported snapshot is checked before anything is written or made current."""

    def walk() -> Iterator[tuple[str, object]]:
        if not isinstance(snapshot, Mapping):
            yield "snapshot", snapshot
            return
        for tid in snapshot.get("targets") or {}:
            yield "target", tid
        py = snapshot.get("python") or {}
        for sha, meta in (py.get("files") or {}).items():
            yield "sha256", sha
            yield "file", (meta or {}).get("filename") if isinstance(meta, Mapping) else meta
            if isinstance(meta, Mapping) and "project" in meta:  # /simple/PROJECT/ is a folder of the tree
                yield "project", meta["project"]
        for app, entry in (snapshot.get("apps") or {}).items():
            yield "app", app
            if isinstance(entry, Mapping):
                for key in ("targets", "apt"):
                    for tid in entry.get(key) or {}:
                        yield f"target of app {str(app)[:60]!r}", tid
        for name, section in snapshot.items():
            if name in ("python", "apps", "targets") or not isinstance(section, Mapping):
                continue
            for tid, t in (section.get("targets") or {}).items():
                yield f"{name} target", tid
                if isinstance(t, Mapping):
                    for key in ("distro", "arch"):
                        if key in t:
                            yield f"{name} {key}", t[key]
            for sha, meta in (section.get("files") or {}).items():
                yield "sha256", sha
                yield f"{name} file", (meta or {}).get("filename") if isinstance(meta, Mapping) else meta

    out = []
    for what, value in walk():
        bad = not (isinstance(value, str) and _HEX64.fullmatch(value)) if what == "sha256" else _bad_component(value)
        if bad:
            out.append(f"{what} {str(value)[:80]!r}")
    return out


SNAPSHOT_KIND = "airgap-mirror/snapshot"
@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A snapshot: its Python targets, apps, Python part and plug-in sections, each typed (see
    `model`); any other field kept as it was (`unrecognized`), so a snapshot written by a newer
    version round-trips unchanged through `from_dict` / `to_dict`."""

    format_version: int
    targets: Mapping[str, TargetEntry] = field(default_factory=dict)
    apps: Mapping[str, AppEntry] = field(default_factory=dict)
    python: PythonPart = field(default_factory=PythonPart)
    sections: Mapping[str, Section] = field(default_factory=dict)  # plug-in parts with files (apt, conda)
    unrecognized: Mapping[str, Any] = field(default_factory=dict)
    kind: str = SNAPSHOT_KIND
    absent: frozenset[str] = frozenset()  # of format_version, kind, targets, apps, python: not in the document
    id: str | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, id: str | None = None, lazy: bool = False) -> Snapshot:  # noqa: A002
        """The snapshot a document holds; ValueError when it is not one (a part of the wrong shape).
        `lazy`: its Python files read when asked for (`LazyRecords`), for a document this store wrote."""
        if not isinstance(doc, Mapping):
            raise ValueError(f"a snapshot is an object, not {type(doc).__name__}")
        sections = {k: v for k, v in doc.items() if k not in _KNOWN and Section.is_section(v)}
        try:
            return cls(format_version=int(doc.get("format_version", 1)), kind=str(doc.get("kind", SNAPSHOT_KIND)),
                       targets={t: TargetEntry.from_dict(v) for t, v in _mapping(doc.get("targets")).items()},
                       apps={a: AppEntry.from_dict(v, sections) for a, v in _mapping(doc.get("apps")).items()},
                       python=PythonPart.from_dict(_mapping(doc.get("python")), "lazy" if lazy else None),
                       sections={k: Section.from_dict(v) for k, v in sections.items()},
                       unrecognized={k: v for k, v in doc.items() if k not in _KNOWN and k not in sections},
                       absent=frozenset(k for k in _KNOWN if k not in doc), id=id)
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"not a snapshot: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """The document again, field for field (unknown fields included, absent ones left out)."""
        doc: dict[str, Any] = {"format_version": self.format_version, "kind": self.kind,
                               "targets": {t: v.to_dict() for t, v in self.targets.items()},
                               "apps": {a: v.to_dict() for a, v in self.apps.items()},
                               "python": self.python.to_dict()}
        for k in self.absent:
            doc.pop(k, None)
        doc.update({k: v.to_dict() for k, v in self.sections.items()})
        doc.update(self.unrecognized)
        return doc

    def blobs(self) -> dict[str, int | None]:
        """sha256 → size (None where not recorded) of every blob the snapshot uses: distribution
        files, their metadata sidecars, the apps' locks and every plug-in's files."""
        out: dict[str, int | None] = {}
        for sha, meta in self.python.files.items():
            out[sha] = meta.size
            if meta.metadata_sha256:
                out[meta.metadata_sha256] = meta.metadata_size
            if meta.provenance_sha256:
                out[meta.provenance_sha256] = meta.provenance_size
        for app in self.apps.values():
            for t in app.targets.values():
                for lock in (t.pylock, t.requirements_lock):
                    if lock:
                        out.setdefault(lock, None)
        for section in self.sections.values():
            for sha, f in section.files.items():
                out[sha] = f.size
        return out

    def files(self) -> dict[str, PythonFile | SectionFile]:
        """sha256 → what the snapshot says of each distribution file: Python files and every plug-in's."""
        out: dict[str, PythonFile | SectionFile] = dict(self.python.files)
        for section in self.sections.values():
            out.update(section.files)
        return out

    def counts(self) -> tuple[int, int]:
        """(files, bytes) of the distribution files: the one count every command shows."""
        py = self.python.files
        if isinstance(py, LazyRecords):  # (sizes as the documents have them: no record read)
            sizes = py.sizes()
        else:
            sizes = {sha: m.size for sha, m in py.items()}
        for section in self.sections.values():
            sizes.update((sha, f.size) for sha, f in section.files.items())
        return len(sizes), sum(s or 0 for s in sizes.values())

    def target_ids(self) -> list[str]:
        """Every target: Python targets and each plug-in's (apt's distro-arch)."""
        return sorted({*self.targets, *(t for s in self.sections.values() for t in s.targets)})

    def diff(self, older: Snapshot) -> dict[str, dict[str, dict[str, list[Any]]]]:
        """What changed since `older`, per app and target (a plug-in's targets as `SECTION:TARGET`):
        packages added [name, version], removed [name, version], changed [name, old, new]."""
        out: dict[str, dict[str, dict[str, list[Any]]]] = {}
        empty = AppEntry()
        for app in sorted(set(older.apps) | set(self.apps)):
            o, n = dict(older.apps.get(app, empty).all_targets()), dict(self.apps.get(app, empty).all_targets())
            per: dict[str, dict[str, list[Any]]] = {}
            for tid in sorted(set(o) | set(n)):
                c = _compare(o[tid].package_versions() if tid in o else {}, n[tid].package_versions() if tid in n else {})
                if c:
                    per[tid] = c
            if per:
                out[app] = per
        return out

    def restricted_to(self, names: Iterable[str], targets: Mapping[str, Collection[str]] | None = None) -> Snapshot:
        """This snapshot with only the apps `names` and what they use: their Python targets with those
        targets' installers and build requirements, the files all of these name, and each plug-in
        section's targets and files that the apps' parts name. What `mirror apps remove` keeps, and
        what a sync of other apps carries over of these. With `targets`, an app named there keeps
        only those of its targets (Python target ids, and a plug-in's as `SECTION:TARGET`)."""
        apps = {n: self.apps[n] for n in names if n in self.apps}
        for n, keep in (targets or {}).items():
            if n in apps:
                apps[n] = apps[n].only(keep)
        tids = {tid for entry in apps.values() for tid in entry.targets}
        py = self.python
        installers = {t: v for t, v in py.installers.items() if t in tids}
        build = {t: v for t, v in py.build.items() if t in tids}
        used = {s for entry in apps.values() for t in entry.targets.values() for s in t.files}
        used.update(s for group in (installers, build) for shas in group.values() for s in shas)
        python = dataclasses.replace(py, files={s: py.files[s] for s in sorted(used) if s in py.files},
                                     installers=installers, build=build)
        if py.projects:
            kept = python.projects_used()
            python = dataclasses.replace(python, projects={p: s for p, s in py.projects.items() if p in kept})
        sections = {}
        for name, section in self.sections.items():
            parts = [entry.parts[name] for entry in apps.values() if name in entry.parts]
            if any(parts):
                sections[name] = section.used_by(parts)
        return dataclasses.replace(self, apps=apps, targets={t: v for t, v in self.targets.items() if t in tids},
                                   python=python, sections=sections, id=None)

    def merged_over(self, base: Snapshot) -> Snapshot:
        """`base`'s apps (and what they use) with this snapshot's over them: where both have an app,
        a target or a section's target, this snapshot's wins. A Python target both use gets the union
        of their build requirements (which app's sdists need which is not recorded: more kept, never
        fewer); its installers are this snapshot's."""
        py_base, py_new = base.python, self.python
        build = dict(py_base.build)
        for t, v in py_new.build.items():
            build[t] = tuple(sorted(set(build.get(t, ())) | set(v)))
        python = dataclasses.replace(py_new, files={**py_base.files, **py_new.files},
                                     installers={**py_base.installers, **py_new.installers}, build=build,
                                     unrecognized={**py_base.unrecognized, **py_new.unrecognized})
        if py_base.projects:  # a project this snapshot read anew has its status from it
            python = dataclasses.replace(python, projects={**py_base.projects, **py_new.projects},
                                         absent=python.absent - {"projects"})
        sections = {name: (self.sections[name].over(base.sections[name])
                           if name in self.sections and name in base.sections
                           else self.sections.get(name) or base.sections[name])
                    for name in sorted(set(base.sections) | set(self.sections))}
        apps = {**base.apps, **self.apps}
        for name in set(base.apps) & set(self.apps):  # the app's targets of both, this snapshot's winning
            apps[name] = self.apps[name].over(base.apps[name])
        return dataclasses.replace(self, apps=apps, targets={**base.targets, **self.targets}, python=python,
                                   sections=sections, unrecognized={**base.unrecognized, **self.unrecognized},
                                   id=None)

    def status_changes(self, older: Snapshot) -> list[list[str]]:
        """Projects whose PEP 792 status changed since `older`: [name, old, new] (active where none is
        recorded), for those this snapshot uses."""
        used = self.python.projects_used()
        old, new = older.python.projects, self.python.projects
        return [[p, old[p].status if p in old else "active", new[p].status if p in new else "active"]
                for p in sorted((set(old) | set(new)) & used)
                if (old[p].status if p in old else "active") != (new[p].status if p in new else "active")]

    def minus(self, other: Snapshot | None) -> dict[str, int | None]:
        """The blobs this snapshot uses that `other` does not (what a delta from `other` carries)."""
        have = other.blobs() if other is not None else {}
        return {sha: size for sha, size in self.blobs().items() if sha not in have}

    def kept_app(self, name: str) -> tuple[AppEntry, dict[str, PythonFile]] | None:
        """What a failed app keeps of this (previous) snapshot: its entry and its Python files (its
        plug-in parts' files stay with their sections, which keep their own: `Section.carry`)."""
        entry = self.apps.get(name)
        if entry is None:
            return None
        shas = {s for t in entry.targets.values() for s in t.files}
        return entry, {s: self.python.files[s] for s in sorted(shas) if s in self.python.files}

    def section(self, name: str) -> Section:
        """A plug-in's section (empty when the snapshot has none)."""
        return self.sections.get(name) or Section()

    def app_part(self, app: str, section: str) -> Mapping[str, AppTarget]:
        """An app's part of a plug-in's section, by target (empty when it has none)."""
        entry = self.apps.get(app)
        return entry.parts.get(section, {}) if entry is not None else {}


def _mapping(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"an object was expected, not {type(value).__name__}")
    return value


def _compare(old: dict[str, str], new: dict[str, str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    added = sorted((n, v) for n, v in new.items() if n not in old)
    removed = sorted((n, v) for n, v in old.items() if n not in new)
    changed = sorted((n, old[n], v) for n, v in new.items() if n in old and old[n] != v)
    if added:
        out["added"] = [list(a) for a in added]
    if removed:
        out["removed"] = [list(r) for r in removed]
    if changed:
        out["changed"] = [list(c) for c in changed]
    return out
