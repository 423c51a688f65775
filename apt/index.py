"""Debian index files as values: Packages stanzas (kept verbatim) and Release checksums.

Packages files are large (bookworm main amd64: 63k stanzas, 50 MB): python-debian's deb822 reader
takes ~10 s on one, so stanzas are split here by the deb822 rules (a blank line ends a paragraph;
a line starting with space or tab continues a field), with the raw text kept so published stanzas
are byte-for-byte upstream's. Of each stanza only what indexes the universe is read at once
(Package, Version, Architecture, Provides: string searches, 0.35 s for bookworm); every other field
is parsed on first use, which is for the few hundred packages a closure visits (reading them all
into dicts cost 1 s). Release files are small and read with python-debian. Relations and versions
are parsed with python-debian, lazily, only for packages the closure visits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from debian.debian_support import Version

__all__ = ["Stanza", "parse_packages", "ReleaseFile", "parse_release", "parse_relations", "Version"]

_FIELD = re.compile(r"^([^:\s#][^:\s]*):[ \t]*(.*(?:\n[ \t].*)*)", re.M)
_BLANK_LINE = re.compile(rb"\n[ \t]+(?=\n)")  # a line of only spaces and tabs, with the newline before it


class Stanza:
    """One binary package paragraph: its exact text; its name, version, architecture and Provides,
    read at once; the other fields (`fields`, continuations joined) parsed on first use.

    `origin` is where its Filename is relative to (the archive's URL), kept as the field X-Origin."""

    __slots__ = ("raw", "package", "version", "architecture", "provides", "origin", "_fields")

    def __init__(self, fields: dict[str, str] | None, raw: str, *, package: str | None = None,
                 version: str | None = None, architecture: str | None = None, provides: str | None = None,
                 origin: str | None = None) -> None:
        self.raw = raw
        self._fields = fields
        if fields is not None:
            package, version = fields["Package"], fields["Version"]
            architecture, provides = fields.get("Architecture"), fields.get("Provides")
            origin = origin or fields.get("X-Origin")
        self.package: str = package  # type: ignore[assignment]
        self.version: str = version  # type: ignore[assignment]
        self.architecture: str = architecture or "all"
        self.provides: str | None = provides
        self.origin = origin

    @property
    def fields(self) -> dict[str, str]:
        if self._fields is None:
            fields = dict(_FIELD.findall(self.raw))
            if self.origin is not None:
                fields["X-Origin"] = self.origin
            self._fields = fields
        return self._fields

    @property
    def multi_arch(self) -> str:
        return self.fields.get("Multi-Arch", "no")

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.fields.get(key, default)

    def value(self, key: str) -> str | None:
        """One field, without parsing the others (for a question asked of every package)."""
        return self._fields.get(key) if self._fields is not None else _value(self.raw, key)

    def __eq__(self, other: object) -> bool:  # as when it was a dataclass of (fields, raw)
        return isinstance(other, Stanza) and self.raw == other.raw and self.fields == other.fields

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"Stanza({self.package} {self.version} {self.architecture})"

    def cached(self) -> tuple[str, str, str, str | None, str]:
        """What `from_cached` needs again (a parsed index is cached as these, by marshal)."""
        return (self.package, self.version, self.architecture, self.provides, self.raw)

    @classmethod
    def from_cached(cls, item: tuple[str, str, str, str | None, str], origin: str | None) -> "Stanza":
        package, version, architecture, provides, raw = item
        return cls(None, raw, package=package, version=version, architecture=architecture, provides=provides,
                   origin=origin)


def _value(para: str, name: str) -> str | None:
    """One field of a paragraph, continuation lines joined by newlines, without parsing the rest."""
    if para.startswith(name + ":"):
        start = len(name) + 1
    else:
        at = para.find("\n" + name + ":")
        if at < 0:
            return None
        start = at + len(name) + 2
    end = para.find("\n", start)
    while end >= 0 and para[end + 1:end + 2] in (" ", "\t"):
        end = para.find("\n", end + 1)
    return (para[start:] if end < 0 else para[start:end]).strip()


def parse_packages(data: bytes | str, origin: str | None = None) -> list[Stanza]:
    """Every paragraph of a Packages file that names a package (and a version).

    Read as bytes and decoded a paragraph at a time: nearly all are ASCII and so stay one byte a
    character, where decoded whole, one character beyond the BMP anywhere made bookworm's 50 MB a
    string of four bytes a character and every search in it four times the work (0.68 to 0.36 s).
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    if _BLANK_LINE.search(data) is not None:  # lines of only spaces and tabs end paragraphs too
        data = _BLANK_LINE.sub(b"\n", data)
    out: list[Stanza] = []
    for chunk in data.split(b"\n\n"):
        chunk = chunk.strip(b"\n")
        if not chunk or chunk.startswith(b"#"):
            continue
        para = chunk.decode("utf-8", "replace")
        package, version = _value(para, "Package"), _value(para, "Version")
        if package and version:
            out.append(Stanza(None, para, package=package, version=version, architecture=_value(para, "Architecture"),
                              provides=_value(para, "Provides"), origin=origin))
    return out


def parse_relations(text: str | None) -> list[list[dict[str, Any]]]:
    """`a (>= 1) | b, c:any` → [[{name, version, arch, archqual}, ...], ...] (python-debian's form)."""
    if not text:
        return []
    from debian.deb822 import PkgRelation  # (deb822 costs 40 ms to import: not for a sync with no Aptfile)

    return PkgRelation.parse_relations(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexEntry:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseFile:
    suite: str | None
    codename: str | None
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    acquire_by_hash: bool
    no_support_for_all: tuple[str, ...] = ()
    files: dict[str, IndexEntry] = field(default_factory=dict)
    raw: str = ""

    def packages_index(self, component: str, arch: str) -> IndexEntry | None:
        """The form of `component/binary-arch/Packages` quickest to fetch and read, of those this
        Release lists: .gz (a third larger than .xz, but it decompresses four times faster)."""
        base = f"{component}/binary-{arch}/Packages"
        for suffix in (".gz", ".xz", ""):
            entry = self.files.get(base + suffix)
            if entry is not None:
                return entry
        return None


def parse_release(text: str) -> ReleaseFile:
    from debian.deb822 import Release

    rel = Release(text)
    files = {}
    for item in rel.get("SHA256", []):
        files[item["name"]] = IndexEntry(path=item["name"], sha256=item["sha256"], size=int(item["size"]))
    return ReleaseFile(
        suite=rel.get("Suite"), codename=rel.get("Codename"),
        architectures=tuple(rel.get("Architectures", "").split()),
        components=tuple(rel.get("Components", "").split()),
        acquire_by_hash=rel.get("Acquire-By-Hash", "no").lower() == "yes",
        no_support_for_all=tuple(rel.get("No-Support-for-Architecture-all", "").split()),
        files=files, raw=text,
    )


