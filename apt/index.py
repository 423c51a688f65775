"""Debian index files as values: Packages files (paragraphs kept verbatim) and Release checksums.

Packages files are large (bookworm main amd64: 63k paragraphs, 50 MB), and a closure visits a few
hundred of them. So a Packages file is kept as its bytes, and read once only for where each
`Package:` and `Provides:` line is (a C search per line, 0.12 s for bookworm); a paragraph becomes
a Stanza when a closure asks for its name (its text kept exactly: it is what we publish), and its
other fields are parsed on first use. Making a Stanza of every paragraph took 0.45 s, the universe
of them 0.2 s more, and caching them 0.17 s of the interpreter lock while the .debs downloaded;
python-debian's deb822 reader takes ~10 s. Release files are read by the same rules; relations
and versions with python-debian, only for the packages a closure visits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from debian.debian_support import Version

__all__ = ["Stanza", "PackagesIndex", "parse_packages", "split_provides", "ReleaseFile", "parse_release",
           "parse_relations", "Version"]

_FIELD = re.compile(r"^([^:\s#][^:\s]*):[ \t]*(.*(?:\n[ \t].*)*)", re.M)


class Stanza:
    """One binary package paragraph: its exact text; its name, version, architecture and Provides,
    read at once; the other fields (`fields`, continuations joined) parsed on first use.

    `origin` is where its Filename is relative to (the archive's URL), kept as the field X-Origin."""

    __slots__ = ("raw", "package", "version", "architecture", "provides", "origin", "_fields", "_relations")

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
        self._relations: dict[str, list[list[dict[str, Any]]]] = {}

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

    def relations(self, key: str) -> list[list[dict[str, Any]]]:
        """A relationship field (Depends, Conflicts, ...) parsed, once (a closure asks each chosen
        package's Conflicts and Breaks again for every package it adds)."""
        got = self._relations.get(key)
        if got is None:
            got = self._relations[key] = parse_relations(self.get(key))
        return got

    def value(self, key: str) -> str | None:
        """One field, without parsing the others (for a question asked of every package)."""
        return self._fields.get(key) if self._fields is not None else _value(self.raw, key)

    def __eq__(self, other: object) -> bool:  # as when it was a dataclass of (fields, raw)
        return isinstance(other, Stanza) and self.raw == other.raw and self.fields == other.fields

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"Stanza({self.package} {self.version} {self.architecture})"


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


_SEP = re.compile(rb"\n[ \t]*\n")  # a blank line (or one of only spaces and tabs): a paragraph's end
# One item of a Provides field: its name, and the version it provides if it gives one (only `=` may).
_PROVIDED = re.compile(rb"\s*([^\s,(:]+)(?::[^\s,(]*)?\s*(?:\(\s*=\s*([^)\s]*)\s*\))?[^,]*,?")


def scan_lines(data: bytes | bytearray, start: int, stop: int, positions: dict[bytes, list[int]],
               provides_at: list[int]) -> None:
    """Record where every `Package:` line (by its name) and `Provides:` line begins in data[start:stop].

    `stop` is a line's end (or the end of the data), so the lines found are whole. One C search per
    line found: bookworm main's 63k paragraphs in 0.12 s, where making a Stanza of each took 0.45 s."""
    find, get = data.find, positions.get
    if start == 0 and data.startswith(b"Package:"):
        end = find(b"\n")
        positions.setdefault(bytes(data[8:end if end >= 0 else len(data)]).strip(), []).append(0)
    pos = start
    while (at := find(b"\nPackage:", pos, stop)) >= 0:
        pos = find(b"\n", at + 9)
        if pos < 0:
            pos = len(data)
        name = bytes(data[at + 9:pos]).strip()
        have = get(name)
        if have is None:
            positions[name] = [at + 1]
        else:
            have.append(at + 1)
    provides_at += line_starts(data, b"Provides:", start, stop)


def line_starts(data: bytes | bytearray, text: bytes, start: int, stop: int) -> list[int]:
    """Where each line starting with `text` (a field's name, or name and value) begins in data[start:stop]."""
    found = [0] if start == 0 and data.startswith(text) else []
    needle, find, pos = b"\n" + text, data.find, start
    while (at := find(needle, pos, stop)) >= 0:
        found.append(at + 1)
        pos = at + len(needle)
    return found


class PackagesIndex:
    """A whole Packages file, kept as its bytes, with where each package's paragraphs are.

    Nothing else is read until asked: a Stanza is made for a paragraph a closure visits (a few hundred
    of bookworm's 63k), and the Provides lines are read when a name is first looked up among them.
    Paragraphs follow the deb822 rules (a blank line, or one of only spaces and tabs, ends one; a line
    starting with a space or tab continues a field); a paragraph is a package's if it has a Package
    and a Version field, in any order."""

    __slots__ = ("data", "origin", "positions", "provides_at", "_made", "_provided")

    def __init__(self, data: bytes | bytearray | str, origin: str | None = None, *,
                 positions: dict[str, list[int]] | None = None, provides_at: list[int] | None = None) -> None:
        if isinstance(data, str):
            data = data.encode("utf-8", "replace")
        if positions is None or provides_at is None:
            found: dict[bytes, list[int]] = {}
            provides_at = []
            scan_lines(data, 0, len(data), found, provides_at)
            positions = decoded_names(found)
        self.data, self.origin = data, origin
        self.positions, self.provides_at = positions, provides_at
        self._made: dict[int, Stanza | None] = {}
        self._provided: dict[str, list[tuple[int, str | None]]] | None = None

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __iter__(self) -> Iterator[Stanza]:
        """Every package paragraph, in the file's order (this makes a Stanza of each)."""
        for line in sorted(p for ps in self.positions.values() for p in ps):
            stanza = self.stanza_at(line)
            if stanza is not None:
                yield stanza

    def names(self) -> Iterable[str]:
        return self.positions.keys()

    def located(self, name: str) -> list[tuple[int, Stanza]]:
        """The paragraphs of package `name`, each with where it is, in the file's order."""
        return [(line, s) for line in self.positions.get(name, ()) if (s := self.stanza_at(line)) is not None]

    def provided(self, name: str) -> list[tuple[Stanza, str | None]]:
        """The paragraphs whose Provides names `name`, each with the version it provides (if any)."""
        if self._provided is None:
            provided: dict[str, list[tuple[int, str | None]]] = {}
            data = self.data
            for line in self.provides_at:
                for virtual, version in _provided_items(bytes(data[line + 9:_line_end(data, line)])):
                    provided.setdefault(virtual, []).append((line, version))
            self._provided = provided
        out = []
        for line, version in self._provided.get(name, ()):
            stanza = self.stanza_at(line)
            if stanza is not None:
                out.append((stanza, version))
        return out

    def lines(self, text: bytes) -> list[int]:
        """Where each line starting with `text` is (a field's name and value, say b"Priority: required")."""
        return line_starts(self.data, text, 0, len(self.data))

    def stanza_at(self, line: int) -> Stanza | None:
        """The package paragraph that line `line` (an offset where a line starts) belongs to."""
        data = self.data
        start = 0
        for m in _SEP.finditer(data, max(data.rfind(b"\n\n", 0, line), 0), line):
            start = m.end()
        if start in self._made:
            return self._made[start]
        end = _SEP.search(data, line)
        para = bytes(data[start:end.start() if end else len(data)]).strip(b"\n").decode("utf-8", "replace")
        package, version = _value(para, "Package"), _value(para, "Version")
        stanza = None
        if package and version:
            stanza = Stanza(None, para, package=package, version=version, architecture=_value(para, "Architecture"),
                            provides=_value(para, "Provides"), origin=self.origin)
        self._made[start] = stanza
        return stanza

    def cached(self) -> tuple[bytes | bytearray, dict[str, list[int]], list[int]]:
        """Its data, positions and provides_at, for `PackagesIndex(data, origin, positions=, provides_at=)`
        (marshal writes a bytearray as bytes)."""
        return (self.data, self.positions, self.provides_at)


def decoded_names(found: dict[bytes, list[int]]) -> dict[str, list[int]]:
    return {name.decode("utf-8", "replace"): lines for name, lines in found.items()}


def _line_end(data: bytes | bytearray, at: int) -> int:
    """The end of the field whose line starts at `at`: its continuation lines too."""
    end = data.find(b"\n", at)
    while end >= 0 and data[end + 1:end + 2] in (b" ", b"\t") and _SEP.match(data, end) is None:
        end = data.find(b"\n", end + 1)
    return len(data) if end < 0 else end


def split_provides(text: str | None) -> list[tuple[str, str | None]]:
    """`a (= 1), b` → [(a, 1), (b, None)]: the names a package provides, each with its version when
    it gives one (Provides allows only `=`)."""
    return _provided_items((text or "").encode("utf-8", "replace"))


def _provided_items(raw: bytes) -> list[tuple[str, str | None]]:
    return [(name.decode("utf-8", "replace"), version.decode("utf-8", "replace") or None)
            for name, version in _PROVIDED.findall(raw)]


def parse_packages(data: bytes | str, origin: str | None = None) -> list[Stanza]:
    """Every package paragraph of a Packages (or dpkg status) file, in its order, as Stanzas."""
    return list(PackagesIndex(data, origin))


def parse_relations(text: str | None) -> list[list[Any]]:
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

    def supports(self, arch: str) -> bool:
        """Whether apt reads this Release's indexes for `arch` (apt's debReleaseIndex::
        IsArchitectureSupported): a Release that lists its Architectures has only those."""
        return not self.architectures or arch in self.architectures

    def reads_binary_all(self) -> bool:
        """Whether apt reads `binary-all/Packages` of this suite (apt's IsArchitectureAllSupportedFor):
        only where `Architectures` names `all` (or is absent) and the Release does not say its
        `all` packages are listed in every binary-ARCH index (No-Support-for-Architecture-all).
        Debian's security suites list no `all`, yet their Release names a binary-all index that
        does not match it: apt never reads it, and neither may we."""
        return self.supports("all") and "Packages" not in self.no_support_for_all

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
    """A Release file's one paragraph, read by the deb822 rules (field names in any case) as
    Packages files are: python-debian's reader and its import were 40-50 ms of every APT sync,
    a no-op's included."""
    para = text.lstrip("\n").split("\n\n", 1)[0]
    fields = {name.lower(): value for name, value in _FIELD.findall(para)}
    files = {}
    for line in fields.get("sha256", "").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].isdigit():
            files[parts[2]] = IndexEntry(path=parts[2], sha256=parts[0], size=int(parts[1]))

    def words(name: str) -> tuple[str, ...]:
        return tuple(fields.get(name.lower(), "").split())

    return ReleaseFile(
        suite=fields.get("suite"), codename=fields.get("codename"),
        architectures=words("Architectures"), components=words("Components"),
        acquire_by_hash=fields.get("acquire-by-hash", "no").lower() == "yes",
        no_support_for_all=words("No-Support-for-Architecture-all"),
        files=files, raw=text,
    )
