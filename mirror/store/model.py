"""The parts of a snapshot, typed all the way down (python-tuf's way, `tuf/api/_payload.py`): each level
a frozen class with `from_dict` / `to_dict`, and at each level what this version does not know kept in
`unrecognized`, so a document written by a newer version (or a plug-in's fields, which the core does
not read) round-trips unchanged. A snapshot's id is the sha256 of its canonical JSON: `to_dict` gives
back the very document `from_dict` read, a known field that was absent staying absent.

The levels: a snapshot has Python targets (`TargetEntry`), apps (`AppEntry`: per Python target an
`AppTarget`, per plug-in section and target another), the Python part (`PythonPart`: its files,
`PythonFile`, and the installers' and build requirements' files per target) and each plug-in's
section (`Section`: its targets, `SectionTarget`, and files, `SectionFile`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, ItemsView, Iterable, Iterator, Mapping, ValuesView
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

__all__ = ["AppEntry", "AppTarget", "DirectRef", "LazyRecords", "ProjectStatus", "PythonFile", "PythonPart", "Section",
           "SectionFile", "SectionTarget", "TargetEntry"]

R = TypeVar("R", bound="Record")


_NAMES: dict[type, tuple[str, ...]] = {}
_NONE: frozenset[str] = frozenset()
_ABSENT: dict[tuple[type, frozenset[str]], frozenset[str]] = {}


_PLAIN: dict[type, bool] = {}


def _plain(cls: type) -> bool:
    """Whether a record class reads every field as it is (does not override `_read`)."""
    plain = _PLAIN.get(cls)
    if plain is None:
        plain = _PLAIN[cls] = next(k for k in cls.__mro__ if "_read" in k.__dict__) is Record
    return plain


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """A level of the document: its known fields, the rest kept as it was (`unrecognized`), and the
    known fields the document did not have (`absent`: written back as they were, not as None).

    A subclass's plain fields (str, int, bool, None and lists of those) read and write as they are;
    a subclass with nested levels converts them in `_read` / `_write`."""

    unrecognized: Mapping[str, Any] = field(default_factory=dict)
    absent: frozenset[str] = frozenset()
    # Fields left out of a new record's document while they are None (`new`).
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        names = _NAMES.get(cls)
        if names is None:  # (once a class: a snapshot of 20,000 files reads as many records)
            names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("unrecognized", "absent"))
        return names

    @classmethod
    def _read(cls, name: str, value: Any, context: Any) -> Any:
        return value

    def _write(self, name: str, value: Any) -> Any:
        return value

    @classmethod
    def from_dict(cls: type[R], doc: Mapping[str, Any], context: Any = None) -> R:
        return cls._parse(doc, context)

    @classmethod
    def _parse(cls: type[R], doc: Mapping[str, Any], context: Any = None) -> R:
        if not isinstance(doc, Mapping):
            raise ValueError(f"{cls.__name__}: an object was expected, not {type(doc).__name__}")
        names = cls._names()
        if _plain(cls):  # (no field to convert: a file's record, 20,000 in a large snapshot)
            known = {n: doc[n] for n in names if n in doc}
        else:
            known = {n: cls._read(n, doc[n], context) for n in names if n in doc}
        if len(known) == len(doc):  # (the usual record: every key known)
            unrecognized: Mapping[str, Any] = {}
        else:
            unrecognized = {k: v for k, v in doc.items() if k not in known}
        absent = _NONE if len(known) == len(names) else _ABSENT.get((cls, frozenset(known)))
        if absent is None:
            absent = _ABSENT[(cls, frozenset(known))] = frozenset(n for n in names if n not in doc)
        return cls(**known, unrecognized=unrecognized, absent=absent)

    @classmethod
    def new(cls: type[R], **values: Any) -> R:
        """A record made by this version: its OPTIONAL fields that are empty or None are left out of
        its document."""
        return cls(**values, absent=frozenset(n for n in cls.OPTIONAL if not values.get(n)))

    def to_dict(self) -> dict[str, Any]:
        doc = {n: self._write(n, getattr(self, n)) for n in self._names() if n not in self.absent}
        doc.update(self.unrecognized)
        return doc



def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else ()


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TargetEntry(Record):
    """A Python target as the snapshot records it."""

    id: str = ""
    python: str | None = None
    platform: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppTarget(Record):
    """One app for one target: its packages ([name, version] for Python, [name, version, arch] for
    APT), the sha256s of its files, and for Python its locks (blobs). A plug-in's section target
    may hold such parts too (APT's base updates)."""

    files: tuple[str, ...] = ()
    packages: tuple[tuple[str, ...], ...] = ()
    pylock: str | None = None
    requirements_lock: str | None = None
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"pylock", "requirements_lock"})

    @classmethod
    def _read(cls, name: str, value: Any, context: Any) -> Any:
        if name == "files":
            return _strings(value)
        if name == "packages":
            return tuple(_strings(p) for p in _tuple(value))
        return value

    def _write(self, name: str, value: Any) -> Any:
        if name == "files":
            return list(value)
        if name == "packages":
            return [list(p) for p in value]
        return value

    def package_versions(self) -> dict[str, str]:
        """name → version of its packages."""
        return {p[0]: p[1] for p in self.packages if len(p) >= 2}


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectRef(Record):
    """A package an app names by URL or path, as it was built (`mirror lock` and SBOMs show it)."""

    line: str | None = None
    ref: str | None = None
    project: str | None = None
    version: str | None = None
    origin: str | None = None
    commit: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppEntry(Record):
    """An app: per Python target its `AppTarget`; per plug-in section (`parts`, by section name) per
    target another; the conda packages it names that are not mirrored; its direct references.

    `from_dict`'s context is the names of the snapshot's plug-in sections: an app's field of that
    name holding an object is that section's part."""

    targets: Mapping[str, AppTarget] = field(default_factory=dict)
    parts: Mapping[str, Mapping[str, AppTarget]] = field(default_factory=dict)
    conda_not_mirrored: tuple[str, ...] = ()
    direct: tuple[DirectRef, ...] = ()
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"direct"})

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return ("targets", "conda_not_mirrored", "direct")

    @classmethod
    def _read(cls, name: str, value: Any, context: Any) -> Any:
        if name == "targets":
            return {t: AppTarget.from_dict(v) for t, v in _mapping(value).items()}
        if name == "direct":
            return tuple(DirectRef.from_dict(d) for d in _tuple(value))
        return _strings(value)

    def _write(self, name: str, value: Any) -> Any:
        if name == "targets":
            return {t: v.to_dict() for t, v in value.items()}
        if name == "direct":
            return [d.to_dict() for d in value]
        return list(value)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], context: Any = None) -> AppEntry:
        sections: Collection[str] = context or ()
        plain = {k: v for k, v in doc.items() if not (k in sections and isinstance(v, Mapping))}
        entry = cls._parse(plain)
        parts = {k: {t: AppTarget.from_dict(v) for t, v in doc[k].items()} for k in doc if k not in plain}
        return dataclasses.replace(entry, parts=parts)

    def to_dict(self) -> dict[str, Any]:
        doc = Record.to_dict(self)
        doc.update({name: {t: v.to_dict() for t, v in part.items()} for name, part in self.parts.items()})
        return doc

    def all_targets(self) -> Iterator[tuple[str, AppTarget]]:
        """(target id, part) of every target: Python's by id, a plug-in's as SECTION:TARGET."""
        yield from self.targets.items()
        for name, part in self.parts.items():
            for tid, t in part.items():
                yield f"{name}:{tid}", t

    def files(self) -> set[str]:
        """The sha256s its targets use, Python's and every plug-in's."""
        return {s for _tid, t in self.all_targets() for s in t.files}

    def with_part(self, name: str, part: Mapping[str, AppTarget]) -> AppEntry:
        return dataclasses.replace(self, parts={**self.parts, name: dict(part)})

    def only(self, keep: Collection[str]) -> AppEntry:
        """This entry with only the targets in `keep` (Python target ids, a plug-in's as SECTION:TARGET)."""
        return dataclasses.replace(
            self, targets={t: v for t, v in self.targets.items() if t in keep},
            parts={n: {t: v for t, v in part.items() if f"{n}:{t}" in keep} for n, part in self.parts.items()})

    def over(self, base: AppEntry) -> AppEntry:
        """This entry over `base` (the same app's older one): the targets of both, this one's winning."""
        parts = {n: {**base.parts.get(n, {}), **p} for n, p in self.parts.items()}
        theirs = {n: getattr(base, n) for n in self.absent - base.absent}  # fields only the older one has
        return dataclasses.replace(self, targets={**base.targets, **self.targets}, parts={**base.parts, **parts},
                                   unrecognized={**base.unrecognized, **self.unrecognized},
                                   absent=self.absent & base.absent, **theirs)


@dataclass(frozen=True, slots=True, kw_only=True)
class PythonFile(Record):
    """A Python distribution file (wheel or sdist) as the index serves it."""

    filename: str = ""
    project: str | None = None
    version: str | None = None
    kind: str | None = None
    size: int | None = None
    url: str | None = None
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "": yanked without a reason
    upload_time: str | None = None
    metadata_sha256: str | None = None
    metadata_size: int | None = None
    # Its PEP 740 provenance (the index's JSON, a blob), served at the Integrity API's path.
    provenance_sha256: str | None = None
    provenance_size: int | None = None
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"metadata_size", "provenance_sha256", "provenance_size"})


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class LazyRecords(Mapping[str, R]):
    """Records by key, each read from its document when first asked for; the whole once iterated
    for values or items. A publish that mends a tree asks for the few files that changed of 20,000
    (0.1 s of records not read); everything else reads them all (`Snapshot.from_dict(lazy=False)`,
    the default, where a record of the wrong shape fails the reading at once)."""

    __slots__ = ("_raw", "_cls", "_read", "_whole")

    def __init__(self, cls: type[R]) -> None:
        self._raw: Mapping[str, Any] = {}
        self._cls, self._whole = cls, False
        self._read: dict[str, R] = {}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], record: type[R]) -> LazyRecords[R]:
        """The records of `raw` (key → document), none read yet."""
        out = cls(record)
        out._raw = raw
        return out

    def __getitem__(self, key: str) -> R:
        try:
            return self._read[key]
        except KeyError:
            record: R = self._cls.from_dict(self._raw[key])
            self._read[key] = record
            return record

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def _all(self) -> dict[str, R]:
        if not self._whole:
            read, parse = self._read, self._cls.from_dict
            self._read = {k: read[k] if k in read else parse(v) for k, v in self._raw.items()}
            self._whole = True
        return self._read

    # (a dict's views: iterated as fast as the dict's)
    def items(self) -> ItemsView[str, R]:
        return self._all().items()

    def values(self) -> ValuesView[R]:
        return self._all().values()

    def sizes(self) -> dict[str, int | None]:
        """Every record's `size` as its document has it (None where absent or not a number): no
        record read."""
        try:
            found = {k: doc.get("size") for k, doc in self._raw.items()}
        except AttributeError:  # (a record that is not an object: None for it)
            found = {k: doc.get("size") if isinstance(doc, Mapping) else None for k, doc in self._raw.items()}
        return {k: v if isinstance(v, int) else None for k, v in found.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectStatus(Record):
    """A project's status as its index gave it (PEP 792): archived, quarantined or deprecated (an
    active project has none recorded), and the index's reason."""

    status: str = "active"
    reason: str | None = None
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"reason"})


@dataclass(frozen=True, slots=True, kw_only=True)
class PythonPart(Record):
    """The Python side: every file by sha256, per target the files of its installers (pip, uv) and of
    the build requirements of its sdists, and the status of each project that is not active."""

    files: Mapping[str, PythonFile] = field(default_factory=dict)
    installers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    build: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    projects: Mapping[str, ProjectStatus] = field(default_factory=dict)  # canonical name → status
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"projects"})

    @classmethod
    def _read(cls, name: str, value: Any, context: Any) -> Any:
        if name == "files":
            if context == "lazy":
                return LazyRecords.from_dict(_mapping(value), PythonFile)
            return {s: PythonFile.from_dict(m) for s, m in _mapping(value).items()}
        if name == "projects":
            return {p: ProjectStatus.from_dict(s) for p, s in _mapping(value).items()}
        return {t: _strings(v) for t, v in _mapping(value).items()}

    def _write(self, name: str, value: Any) -> Any:
        if name in ("files", "projects"):
            return {k: v.to_dict() for k, v in value.items()}
        return {t: list(v) for t, v in value.items()}

    def projects_used(self) -> set[str]:
        """The canonical names of the projects its files are of."""
        return project_names(self.files.values())




def project_names(files: Iterable[PythonFile]) -> set[str]:
    """The canonical names of the projects these files are of."""
    from packaging.utils import canonicalize_name

    return {canonicalize_name(f.project) for f in files if f.project}


@dataclass(frozen=True, slots=True, kw_only=True)
class SectionFile(Record):
    """A plug-in's file (a .deb, a conda package): the core knows its name and size; the plug-in's
    own fields (package, version, channel, record ...) are in `unrecognized` (read with `get`)."""

    filename: str | None = None
    size: int | None = None

    def get(self, name: str, default: Any = None) -> Any:
        """A field by its document name: the plug-in's own (which the core does not know), or a known
        one's value; else `default`."""
        if name in self._names():
            value = getattr(self, name)
            return default if value is None else value
        return self.unrecognized.get(name, default)


@dataclass(frozen=True, slots=True, kw_only=True)
class SectionTarget(Record):
    """A plug-in's target (APT's distro-arch, conda's subdir): its own fields (in `unrecognized`), and
    any part of it that names files (`parts`: APT's base updates)."""

    parts: Mapping[str, AppTarget] = field(default_factory=dict)

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return ()

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], context: Any = None) -> SectionTarget:
        if not isinstance(doc, Mapping):
            raise ValueError(f"SectionTarget: an object was expected, not {type(doc).__name__}")
        parts = {k: AppTarget.from_dict(v) for k, v in doc.items()
                 if isinstance(v, Mapping) and isinstance(v.get("files"), list)}
        return cls(parts=parts, unrecognized={k: v for k, v in doc.items() if k not in parts})

    def to_dict(self) -> dict[str, Any]:
        return {**self.unrecognized, **{k: v.to_dict() for k, v in self.parts.items()}}

    def files(self) -> set[str]:
        return {s for part in self.parts.values() for s in part.files}

    def get(self, name: str, default: Any = None) -> Any:
        """One of the plug-in's own fields (APT's distro, arch, sources ...), else `default`."""
        return self.unrecognized.get(name, default)


@dataclass(frozen=True, slots=True, kw_only=True)
class Section(Record):
    """A plug-in's part of the snapshot (`apt`, `conda`): its targets and its files by sha256.

    The rules every plug-in shares live here: which files an app's part uses, what a failed app or
    target keeps of the previous snapshot (`carry`), what is left when apps go (`used_by`)."""

    format_version: int | None = None
    targets: Mapping[str, SectionTarget] = field(default_factory=dict)
    files: Mapping[str, SectionFile] = field(default_factory=dict)

    @classmethod
    def _read(cls, name: str, value: Any, context: Any) -> Any:
        if name == "targets":
            return {t: SectionTarget.from_dict(v) for t, v in _mapping(value).items()}
        if name == "files":
            return {s: SectionFile.from_dict(m) for s, m in _mapping(value).items()}
        return value

    def _write(self, name: str, value: Any) -> Any:
        if name in ("targets", "files"):
            return {k: v.to_dict() for k, v in value.items()}
        return value

    @staticmethod
    def is_section(value: Any) -> bool:
        """A snapshot's field that is a plug-in's section: an object with a `files` object."""
        return isinstance(value, Mapping) and isinstance(value.get("files"), Mapping)

    def has_files(self, part: Mapping[str, AppTarget] | AppTarget | None) -> bool:
        """Whether every file `part` (one target's, or a whole app part) names is in this section."""
        targets = [part] if isinstance(part, AppTarget) else list((part or {}).values())
        return part is not None and all(s in self.files for t in targets for s in t.files)

    def files_of(self, shas: Iterable[str]) -> dict[str, SectionFile]:
        """These of its files (the ones it has), by sha256."""
        return {s: self.files[s] for s in shas if s in self.files}

    def used_by(self, parts: Iterable[Mapping[str, AppTarget]]) -> Section:
        """This section with only the targets the app `parts` name and the files they and those
        targets' own parts use."""
        parts = list(parts)
        tids = {tid for part in parts for tid in part}
        used = {s for part in parts for t in part.values() for s in t.files}
        used |= {s for tid in tids if tid in self.targets for s in self.targets[tid].files()}
        return dataclasses.replace(self, targets={t: v for t, v in self.targets.items() if t in tids},
                                   files=self.files_of(sorted(used)))

    def over(self, base: Section) -> Section:
        return dataclasses.replace(self, targets={**base.targets, **self.targets}, files={**base.files, **self.files},
                                   unrecognized={**base.unrecognized, **self.unrecognized})

    def carry(self, part: Mapping[str, AppTarget] | None) -> Section | None:
        """What a failed app keeps of this (the previous snapshot's) section: the targets and files of
        its previous `part` (by target), when this section still has every file the part names; else
        None, and the app has nothing to fall back on. The one rule every plug-in's sync keeps."""
        if not part or not self.has_files(part):
            return None
        return self.used_by([part])
