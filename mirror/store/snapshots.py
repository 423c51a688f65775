"""What a snapshot needs from the store: every blob it references, with its size where recorded.

Used by bundles (what to carry), gc (what to keep) and verify (what must be present). Sections
added by extensions (`apt`) reference blobs through their `files` mapping, keyed by sha256.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Snapshot", "referenced_blobs", "unsafe_names"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


def referenced_blobs(snapshot: Mapping[str, Any]) -> dict[str, int | None]:
    """sha256 → size (None where the snapshot does not record one) of every blob the snapshot uses."""
    out: dict[str, int | None] = {}
    py = snapshot.get("python", {})
    for sha, meta in py.get("files", {}).items():
        out[sha] = meta.get("size")
        if meta.get("metadata_sha256"):
            out[meta["metadata_sha256"]] = meta.get("metadata_size")
    for app in snapshot.get("apps", {}).values():
        for t in app.get("targets", {}).values():
            for key in ("pylock", "requirements_lock"):
                if t.get(key):
                    out.setdefault(t[key], None)
    for name, section in snapshot.items():
        if name in ("python", "apps", "targets") or not isinstance(section, Mapping):
            continue
        files = section.get("files")
        if isinstance(files, Mapping):
            for sha, meta in files.items():
                out[sha] = meta.get("size") if isinstance(meta, Mapping) else None
    return out


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
_KNOWN = ("format_version", "kind", "targets", "apps", "python")


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """A snapshot as every part reads it: a frozen value over the canonical-JSON document.

    The document stays the stored form (its sha256 is the snapshot id); this type gives its parts
    names, and keeps what this version does not know (`extra`, a plug-in's section) so a snapshot
    written by a newer version round-trips unchanged through `from_dict` / `to_dict`."""

    format_version: int
    targets: Mapping[str, Any]
    apps: Mapping[str, Any]
    python: Mapping[str, Any]
    sections: Mapping[str, Mapping[str, Any]]  # plug-in parts with files (apt): name → section
    extra: Mapping[str, Any]  # any other field, kept as it was
    kind: str = SNAPSHOT_KIND
    id: str | None = None

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, id: str | None = None) -> Snapshot:  # noqa: A002
        sections = {k: v for k, v in doc.items()
                    if k not in _KNOWN and isinstance(v, Mapping) and isinstance(v.get("files"), Mapping)}
        extra = {k: v for k, v in doc.items() if k not in _KNOWN and k not in sections}
        return cls(format_version=int(doc.get("format_version", 1)), kind=str(doc.get("kind", SNAPSHOT_KIND)),
                   targets=doc.get("targets") or {}, apps=doc.get("apps") or {}, python=doc.get("python") or {},
                   sections=sections, extra=extra, id=id)

    def to_dict(self) -> dict[str, Any]:
        """The document again, field for field (unknown fields included)."""
        doc: dict[str, Any] = {"format_version": self.format_version, "kind": self.kind, "targets": dict(self.targets),
                               "apps": dict(self.apps), "python": dict(self.python)}
        doc.update(self.sections)
        doc.update(self.extra)
        return doc

    def blobs(self) -> dict[str, int | None]:
        """sha256 → size (None where not recorded) of every blob the snapshot uses."""
        return referenced_blobs(self.to_dict())

    def files(self) -> dict[str, Mapping[str, Any]]:
        """sha256 → what the snapshot says of each distribution file: Python files and every plug-in's."""
        out: dict[str, Mapping[str, Any]] = dict(self.python.get("files", {}))
        for section in self.sections.values():
            out.update(section.get("files", {}))
        return out

    def counts(self) -> tuple[int, int]:
        """(files, bytes) of the distribution files: the one count every command shows."""
        files = self.files()
        return len(files), sum(int(m.get("size") or 0) for m in files.values())

    def target_ids(self) -> list[str]:
        """Every target: Python targets and each plug-in's (apt's distro-arch)."""
        return sorted({*self.targets, *(t for s in self.sections.values() for t in s.get("targets", {}))})

    def diff(self, older: Snapshot) -> dict[str, dict[str, dict[str, list[Any]]]]:
        """What changed since `older`, per app and target (a plug-in's targets as `apt:TARGET`):
        packages added [name, version], removed [name, version], changed [name, old, new]."""
        out: dict[str, dict[str, dict[str, list[Any]]]] = {}
        for app in sorted(set(older.apps) | set(self.apps)):
            o, n = older.apps.get(app, {}), self.apps.get(app, {})
            per: dict[str, dict[str, list[Any]]] = {}
            for tid in sorted(set(o.get("targets", {})) | set(n.get("targets", {}))):
                c = _compare(_packages(o.get("targets", {}).get(tid, {})), _packages(n.get("targets", {}).get(tid, {})))
                if c:
                    per[tid] = c
            # A plug-in's part of an app is {target: entry}; other keys (direct, conda_not_mirrored) are notes.
            for section in sorted(k for k in set(o) | set(n) if k != "targets"
                                  and isinstance(o.get(k, n.get(k)), dict) and isinstance(n.get(k, o.get(k)), dict)):
                osec, nsec = o.get(section, {}) or {}, n.get(section, {}) or {}
                for tid in sorted(set(osec) | set(nsec)):
                    c = _compare(_packages(osec.get(tid, {})), _packages(nsec.get(tid, {})))
                    if c:
                        per[f"{section}:{tid}"] = c
            if per:
                out[app] = per
        return out

    def restricted_to(self, names: Iterable[str], targets: Mapping[str, set[str]] | None = None) -> Snapshot:
        """This snapshot with only the apps `names` and what they use: their Python targets with those
        targets' installers and build requirements, the files all of these name, and each plug-in
        section's targets and files that the apps' entries name (a plug-in's part of an app is
        {target: {"files": [sha256, ...], ...}}). What `mirror apps remove` keeps, and what a sync of
        other apps carries over of these. With `targets`, an app named there keeps only those of its
        targets (Python target ids, and a plug-in's as `SECTION:TARGET`)."""
        apps = {n: self.apps[n] for n in names if n in self.apps}
        for n, keep in (targets or {}).items():
            if n in apps:
                entry = apps[n]
                apps[n] = {k: ({t: v for t, v in entry[k].items() if (t if k == "targets" else f"{k}:{t}") in keep}
                               if isinstance(entry[k], Mapping) and (k == "targets" or k in self.sections) else entry[k])
                           for k in entry}
        tids = {tid for entry in apps.values() for tid in (entry.get("targets") or {})}
        installers = {t: v for t, v in (self.python.get("installers") or {}).items() if t in tids}
        build = {t: v for t, v in (self.python.get("build") or {}).items() if t in tids}
        used = {s for entry in apps.values() for t in (entry.get("targets") or {}).values() for s in t.get("files", [])}
        used.update(s for group in (installers, build) for shas in group.values() for s in shas)
        py_files = self.python.get("files") or {}
        python = dict(self.python) | {"files": {s: py_files[s] for s in sorted(used) if s in py_files},
                                      "installers": installers, "build": build}
        sections = {}
        for name, section in self.sections.items():
            parts = [entry.get(name) for entry in apps.values() if isinstance(entry.get(name), Mapping)]
            sec_tids = {tid for part in parts for tid in part}
            sec_used = {s for part in parts for t in part.values() if isinstance(t, Mapping) for s in t.get("files", [])}
            if not sec_tids:
                continue
            # A plug-in's target may name files of its own (APT: the base's updates).
            for t in sec_tids:
                entry = (section.get("targets") or {}).get(t)
                if isinstance(entry, Mapping):
                    sec_used.update(s for v in entry.values() if isinstance(v, Mapping) for s in v.get("files", []))
            files = section.get("files") or {}
            sections[name] = dict(section) | {
                "targets": {t: v for t, v in (section.get("targets") or {}).items() if t in sec_tids},
                "files": {s: files[s] for s in sorted(sec_used) if s in files}}
        return Snapshot(format_version=self.format_version, kind=self.kind, apps=apps,
                        targets={t: v for t, v in self.targets.items() if t in tids}, python=python,
                        sections=sections, extra=self.extra)

    def merged_over(self, base: Snapshot) -> Snapshot:
        """`base`'s apps (and what they use) with this snapshot's over them: where both have an app,
        a target or a section's target, this snapshot's wins. A Python target both use gets the union
        of their build requirements (which app's sdists need which is not recorded: more kept, never
        fewer); its installers are this snapshot's."""
        py_base, py_new = base.python, self.python
        build = {t: list(v) for t, v in (py_base.get("build") or {}).items()}
        for t, v in (py_new.get("build") or {}).items():
            build[t] = sorted(set(build.get(t, [])) | set(v))
        python = dict(py_base) | dict(py_new) | {
            "files": dict(py_base.get("files") or {}) | dict(py_new.get("files") or {}),
            "installers": dict(py_base.get("installers") or {}) | dict(py_new.get("installers") or {}),
            "build": build}
        sections = {}
        for name in sorted(set(base.sections) | set(self.sections)):
            old, new = base.sections.get(name) or {}, self.sections.get(name) or {}
            if not old or not new:
                sections[name] = old or new
                continue
            sections[name] = dict(old) | dict(new) | {
                "targets": dict(old.get("targets") or {}) | dict(new.get("targets") or {}),
                "files": dict(old.get("files") or {}) | dict(new.get("files") or {})}
        apps = dict(base.apps) | dict(self.apps)
        for name in set(base.apps) & set(self.apps):  # the app's targets of both, this snapshot's winning
            old, new = base.apps[name], self.apps[name]
            apps[name] = dict(old) | dict(new) | {
                k: dict(old[k]) | dict(new[k]) for k in set(old) & set(new)
                if isinstance(old[k], Mapping) and isinstance(new[k], Mapping) and (k == "targets" or k in sections)}
        return Snapshot(format_version=self.format_version, kind=self.kind, apps=apps,
                        targets=dict(base.targets) | dict(self.targets), python=python, sections=sections,
                        extra=dict(base.extra) | dict(self.extra))

    def minus(self, other: Snapshot | None) -> dict[str, int | None]:
        """The blobs this snapshot uses that `other` does not (what a delta from `other` carries)."""
        have = other.blobs() if other is not None else {}
        return {sha: size for sha, size in self.blobs().items() if sha not in have}


def _packages(entry: Mapping[str, Any]) -> dict[str, str]:
    return {p[0]: p[1] for p in entry.get("packages", [])}


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
