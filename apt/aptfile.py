"""Aptfile / packages.txt: the Debian packages an app asks for, each with the line it came from.

Heroku-style Aptfiles (Dash Enterprise) allow package names, URLs of .deb files and
`:repo:deb URL SUITE COMPONENT...` lines; Astronomer's packages.txt is names only. Both may be
UTF-16 with a byte-order mark and CRLF endings. Whitespace separates several names on a line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from airgap_mirror.apps.appfiles import AppFileError, confine, read_app_file
from airgap_mirror.apps.reqfile import decode_like_pip
from airgap_mirror.urls import redact

from .errors import AptfileError

__all__ = ["PackageRequest", "DebUrl", "RepoLine", "Aptfile", "parse_aptfile", "read_aptfile"]

# Debian policy 5.6.1: lowercase letters, digits, + - . ; at least two characters, starting alphanumeric.
_NAME = re.compile(r"[a-z0-9][a-z0-9+.\-]+")
_LOOSE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9+.\-_]*")
_VERSION = re.compile(r"(?:\d+:)?[0-9][A-Za-z0-9.+~\-:]*")
_ARCH = re.compile(r"[a-z0-9\-]+")
_OPTION = re.compile(r"\[([^\]]*)\]")


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageRequest:
    """`name`, `name=version` or `name:arch`; `name` may not exist (the closure says so, with suggestions)."""

    name: str
    version: str | None = None
    arch: str | None = None
    path: str
    line: int

    def __str__(self) -> str:
        return self.name + (f":{self.arch}" if self.arch else "") + (f"={self.version}" if self.version else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class DebUrl:
    url: str
    path: str
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RepoLine:
    """A custom repository: `:repo:deb [options] URL SUITE COMPONENT...`."""

    url: str
    suite: str
    components: tuple[str, ...]
    trusted: bool = False
    signed_by: str | None = None
    arch: tuple[str, ...] = ()
    path: str
    line: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Aptfile:
    path: str
    packages: tuple[PackageRequest, ...] = ()
    debs: tuple[DebUrl, ...] = ()
    repos: tuple[RepoLine, ...] = ()


def _repo(rest: str, path: Path, lineno: int) -> RepoLine:
    fix = "write it as :repo:deb [signed-by=/path/key.gpg] http://host/debian SUITE COMPONENT"
    rest = rest.strip()
    if rest.startswith("deb-src"):
        raise AptfileError(path, lineno, "deb-src repositories hold sources, not packages", "use a `deb` line")
    if rest.startswith("ppa:"):
        raise AptfileError(path, lineno, f"{rest!r} is an Ubuntu PPA, which Debian systems cannot use",
                           "find the package in Debian, or name the PPA's deb line for the matching Ubuntu target")
    if not rest.startswith("deb") or (len(rest) > 3 and not rest[3].isspace()):
        raise AptfileError(path, lineno, f"`:repo:` must be followed by a deb line, not {rest[:20]!r}", fix)
    rest = rest[3:].strip()
    trusted = False
    signed_by = None
    arch: tuple[str, ...] = ()
    m = _OPTION.match(rest)
    if m:
        for opt in m.group(1).split():
            key, _, value = opt.partition("=")
            if key == "trusted":
                trusted = value == "yes"
            elif key == "signed-by":
                signed_by = value
            elif key == "arch":
                arch = tuple(value.split(","))
            else:
                raise AptfileError(path, lineno, f"unknown repository option {key!r}",
                                   "the supported options are signed-by=, trusted=yes and arch=")
        rest = rest[m.end():].strip()
    parts = rest.split()
    if len(parts) < 2:
        raise AptfileError(path, lineno, "a repository line needs a URL and a suite", fix)
    url, suite, *components = parts
    if _scheme(url, path, lineno) not in ("http", "https", "file"):
        raise AptfileError(path, lineno, f"repository URL {redact(url)!r} is not http(s):// or file://", fix)
    if suite.endswith("/"):
        raise AptfileError(path, lineno, f"flat repositories ({suite!r}) are not supported yet",
                           "use a repository with dists/SUITE/, or put the .deb URLs in the Aptfile")
    if not components:
        raise AptfileError(path, lineno, "a repository line needs at least one component", fix)
    if signed_by and not Path(signed_by).is_absolute():
        signed_by = str((path.parent / signed_by).resolve())
    return RepoLine(url=url.rstrip("/"), suite=suite, components=tuple(components), trusted=trusted,
                    signed_by=signed_by, arch=arch, path=str(path), line=lineno)


def _scheme(url: str, path: Path, lineno: int) -> str:
    """The URL's scheme, once it is known to be a URL at all."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise AptfileError(path, lineno, f"{redact(url)[:200]!r} is not a valid URL ({exc})",
                           "write it as http(s)://host[:port]/path") from exc
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise AptfileError(path, lineno, f"{redact(url)[:200]!r} names no host", "write it as http(s)://host/path")
    return parts.scheme


def _package(word: str, path: Path, lineno: int) -> PackageRequest:
    name, eq, version = word.partition("=")
    name, colon, arch = name.partition(":")
    if any(c in word for c in "<>()!,|"):
        raise AptfileError(path, lineno, f"{word!r} is not a package name",
                           "name one package per word; pin a version as name=VERSION")
    if not _LOOSE_NAME.fullmatch(name):
        raise AptfileError(path, lineno, f"{word!r} is not a Debian package name",
                           "package names are letters, digits and + - . only")
    if eq and not _VERSION.fullmatch(version):
        raise AptfileError(path, lineno, f"{version!r} is not a Debian version", "write name=1.2.3-1")
    if colon and not _ARCH.fullmatch(arch):
        raise AptfileError(path, lineno, f"{arch!r} is not an architecture", "write name:amd64")
    return PackageRequest(name=name, version=version or None, arch=arch or None, path=str(path), line=lineno)


def _local(url: str, path: Path, lineno: int, root: Path | None) -> None:
    """A `file://` URL names a path the app-folder rules allow: inside the app's folder (its Aptfile's
    folder), unless files outside are allowed (allow-outside in mirror.toml, --allow-outside-app)."""
    from urllib.parse import unquote

    if urlsplit(url).netloc not in ("", "localhost"):
        raise AptfileError(path, lineno, f"{redact(url)[:200]!r}: a file:// URL names a local path",
                           "write it as file:///absolute/path")
    try:
        confine(Path(unquote(urlsplit(url).path)), root)
    except AppFileError as exc:
        raise AptfileError(path, lineno, f"{redact(url)[:200]!r} is outside the app folder ({exc})",
                           "put the file or repository in the app folder, or allow files outside it "
                           "([apps] allow-outside = true in mirror.toml, or mirror sync --allow-outside-app)") from exc


def parse_aptfile(text: str, path: Path | str, *, root: Path | None | bool = True) -> Aptfile:
    """Parse the text of an Aptfile; every error names the file, the line and the fix. A `file://`
    URL must name a path inside `root` (True: the Aptfile's folder; None: anywhere)."""
    path = Path(path)
    local_root: Path | None = path.parent if root is True else (root or None)
    packages: list[PackageRequest] = []
    debs: list[DebUrl] = []
    repos: list[RepoLine] = []
    if "\0" in text:
        raise AptfileError(path, text[: text.index("\0")].count("\n") + 1, "a NUL byte: this is not a text file",
                           "save it as UTF-8 text")
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if len(raw) > 64 << 10:
            raise AptfileError(path, lineno, "line is over 65,536 characters", "fix or remove it")
        # A comment starts at '#' (after whitespace on a :repo: line, whose URL may hold a '#').
        line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith(":repo:") else \
            re.split(r"\s#", raw, maxsplit=1)[0].strip()
        if not line:
            continue
        if line.startswith(":repo:"):
            repo = _repo(line[len(":repo:"):], path, lineno)
            if repo.url.startswith("file:"):
                _local(repo.url, path, lineno, local_root)
            repos.append(repo)
            continue
        words = line.split()
        if words[0] in ("apt-get", "apt", "sudo", "install"):
            raise AptfileError(path, lineno, f"{line!r} is a command, not a package list",
                               "write only the package names, one or more per line")
        for word in words:
            if "://" in word:
                scheme = _scheme(word, path, lineno)
                if not urlsplit(word).path.endswith(".deb"):
                    raise AptfileError(path, lineno, f"URL {redact(word)[:200]!r} does not name a .deb file",
                                       "give the URL of a .deb, or a :repo: line for a repository")
                if scheme not in ("http", "https", "file"):
                    raise AptfileError(path, lineno, f"URL {redact(word)[:200]!r} is not http(s):// or file://", "")
                if scheme == "file":
                    _local(word, path, lineno, local_root)
                debs.append(DebUrl(url=word, path=str(path), line=lineno))
            elif word.startswith(":"):
                raise AptfileError(path, lineno, f"unknown directive {word!r}", "the only directive is :repo:")
            else:
                packages.append(_package(word, path, lineno))
    return Aptfile(path=str(path), packages=tuple(packages), debs=tuple(debs), repos=tuple(repos))


def read_aptfile(path: Path, *, root: Path | None | bool = True) -> Aptfile:
    """Read and parse an Aptfile: a regular file of bounded size inside `root` (True: its own
    folder; None: anywhere)."""
    folder = Path(path).parent if root is True else root
    try:
        data = read_app_file(Path(path), root=folder)  # type: ignore[arg-type]
    except AppFileError as exc:
        raise AptfileError(path, 0, str(exc)) from exc
    return parse_aptfile(decode_like_pip(data, path), path, root=root)
