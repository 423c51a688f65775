"""Reading requirements files the way pip reads them: encodings, continuations, options, includes.

Pure apart from reading the files themselves: the result is a value (`ParsedRequirements`) that
names, for every requirement, the file and line it came from, so that every later error can too.
"""

from __future__ import annotations

import codecs
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from airgap_mirror.apps.appfiles import AppFileError, confine, read_app_file
from airgap_mirror.errors import NotYetSupported, RequirementsError

__all__ = [
    "DirectRef",
    "ReqLine",
    "ReqOptions",
    "ParsedRequirements",
    "decode_like_pip",
    "parse_requirements_file",
    "parse_requirements_text",
    "CONDA_EXPORT_FIX",
    "RequirementsCollector",
]

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# pip: a comment starts at '#' at the start of a line or after whitespace. Found by a search that
# is linear in the line's length (`(^|\s+)#.*$` backtracks quadratically over a run of spaces).
_COMMENT_START = re.compile(r"(?:^|(?<=\s))#")
# Longer logical lines are not requirements (the longest real ones, 60 --hash options, are ~6 KB).
MAX_LINE = 64 << 10
# -r/-c includes nest at most this deep (pip has no limit; a 1,500-deep chain is not an app).
MAX_INCLUDE_DEPTH = 32
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_CONDA_LINE = re.compile(r"^[A-Za-z0-9_.\-]+=[^=\s<>!~]+=[^=\s]+$")
_SINGLE_EQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*(\[[^\]]*\])?)\s*=\s*([^=<>!~\s].*)$")
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar.xz", ".tar")

CONDA_EXPORT_FIX = (
    "this is a conda export (`conda list --export`), not a pip requirements file: "
    "export the environment with `pip freeze` or `conda env export` to environment.yml"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectRef:
    """A requirement that names where the code is rather than which release: git, a path, a URL.

    `url` is as written (with any `${VAR}` left unexpanded, so it may be shown and recorded): for
    git the repository URL without `git+`, `@ref` and fragment; for a path the path as written
    (relative paths are relative to the app folder, as pip run in it reads them); for a URL the
    archive's http(s) URL without fragment.
    """

    kind: str  # "git" | "path" | "url"
    url: str
    ref: str | None = None
    subdirectory: str | None = None
    name: str | None = None
    extras: tuple[str, ...] = ()
    marker: str | None = None
    editable: bool = False

    @property
    def display(self) -> str:
        """The reference as a user would write it, credentials redacted."""
        if self.kind == "git":
            return "git+" + _redact(self.url) + (f"@{self.ref}" if self.ref else "") + (
                f"#subdirectory={self.subdirectory}" if self.subdirectory else "")
        return _redact(self.url)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReqLine:
    """One requirement with where it was written: a named requirement, or a direct reference."""

    requirement: Requirement | None
    source: Path
    lineno: int
    hashes: tuple[str, ...] = ()
    direct: DirectRef | None = None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.lineno}"

    @property
    def text(self) -> str:
        if self.requirement is not None:
            return str(self.requirement)
        assert self.direct is not None
        return self.direct.display


@dataclass(frozen=True, slots=True, kw_only=True)
class ReqOptions:
    """Global options found in requirements files, merged over all included files."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    no_binary: tuple[str, ...] = ()
    only_binary: tuple[str, ...] = ()
    prefer_binary: bool = False
    pre: bool = False
    no_index: bool = False
    require_hashes: bool = False
    # Where each index / find-links URL was written ("file:line"), for errors about it.
    origins: tuple[tuple[str, str], ...] = ()

    def origin(self, url: str) -> str:
        return dict(self.origins).get(url, "")


@dataclass(frozen=True, slots=True, kw_only=True)
class ParsedRequirements:
    requirements: tuple[ReqLine, ...] = ()
    constraints: tuple[ReqLine, ...] = ()
    options: ReqOptions = field(default_factory=ReqOptions)
    files: tuple[Path, ...] = ()


def decode_like_pip(data: bytes, path: Path | str) -> str:
    """Decode a requirements file as pip does: a BOM decides, else UTF-8."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                raise RequirementsError(path, 0, f"file starts with a {encoding.upper()} byte-order mark but is not "
                                        f"valid {encoding.upper()} (byte {exc.start + len(bom)})",
                                        "save it as UTF-8") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RequirementsError(
            path, line, "file is not UTF-8 and has no byte-order mark", "save it as UTF-8"
        ) from exc


def _strip_comment(line: str) -> str:
    m = _COMMENT_START.search(line)
    return (line[: m.start()] if m else line).strip()


def _logical_lines(text: str, path: Path | str = "") -> list[tuple[int, str]]:
    """Join backslash continuations and strip comments; keep the first physical line number."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    size = 0
    start = 0
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not buf:
            start, size = i, 0
        size += len(line)
        if size > MAX_LINE:
            raise RequirementsError(path, start, f"line is over {MAX_LINE:,} characters, so it is no requirement",
                                    "fix or remove it")
        if line.endswith("\\") and not _COMMENT_START.search(line):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = _strip_comment(" ".join(buf))
        buf = []
        if joined:
            out.append((start, joined))
    if buf:
        joined = _strip_comment(" ".join(buf))
        if joined:
            out.append((start, joined))
    return out


def _looks_like_conda_export(lines: list[tuple[int, str]], text: str) -> bool:
    if "@EXPLICIT" in text or "platform: " in text and "# This file may be used to create" in text:
        return True
    reqs = [line for _, line in lines if not line.startswith("-")]
    conda = [line for line in reqs if _CONDA_LINE.match(line)]
    return bool(reqs) and len(conda) * 2 >= len(reqs)


class RequirementsCollector:
    """Accumulates requirements and options over several files (an app's whole set)."""

    def __init__(self, root: Path | None = None, *, app_dir: Path | None = None) -> None:
        # Includes must lie inside `root` (the app folder); None: anywhere (--allow-outside-app).
        self.root = root
        # Errors in a file outside the app folder never quote its lines (it may be /proc/self/environ).
        folder = app_dir or root
        self.app_dir = folder.resolve() if folder else None
        self.requirements: list[ReqLine] = []
        self.constraints: list[ReqLine] = []
        self.files: list[Path] = []
        self.index_url: str | None = None
        self.extra: list[str] = []
        self.find_links: list[str] = []
        self.trusted: list[str] = []
        self.no_binary: list[str] = []
        self.only_binary: list[str] = []
        self.prefer_binary = False
        self.pre = False
        self.no_index = False
        self.require_hashes = False
        self.origins: dict[str, str] = {}

    def result(self) -> ParsedRequirements:
        return ParsedRequirements(
            requirements=tuple(self.requirements),
            constraints=tuple(self.constraints),
            files=tuple(self.files),
            options=ReqOptions(
                index_url=self.index_url,
                extra_index_urls=tuple(dict.fromkeys(self.extra)),
                find_links=tuple(dict.fromkeys(self.find_links)),
                trusted_hosts=tuple(dict.fromkeys(self.trusted)),
                no_binary=tuple(dict.fromkeys(self.no_binary)),
                only_binary=tuple(dict.fromkeys(self.only_binary)),
                prefer_binary=self.prefer_binary,
                pre=self.pre,
                no_index=self.no_index,
                require_hashes=self.require_hashes,
                origins=tuple(self.origins.items()),
            ),
        )


_VALUE_OPTS = {
    "-r": "requirement", "--requirement": "requirement",
    "-c": "constraint", "--constraint": "constraint",
    "-i": "index_url", "--index-url": "index_url",
    "--extra-index-url": "extra_index_url",
    "-f": "find_links", "--find-links": "find_links",
    "--trusted-host": "trusted_host",
    "--no-binary": "no_binary", "--only-binary": "only_binary",
    "-e": "editable", "--editable": "editable",
    "--use-feature": "ignored", "--config-settings": "ignored",
    "--global-option": "ignored", "--install-option": "ignored",
    "--hash": "hash",
}  # fmt: skip
_FLAG_OPTS = {
    "--pre": "pre", "--prefer-binary": "prefer_binary", "--no-index": "no_index",
    "--require-hashes": "require_hashes", "--only-binary=:all:": "only_binary_all",
}  # fmt: skip


# Where shlex's words and str.split()'s differ: quotes, escapes, whitespace only str.split() knows.
_QUOTING = frozenset("'\"\\\x0b\x0c\x1c\x1d\x1e\x1f")


def _words(line: str) -> list[str]:
    """A line's words as shlex splits them (pip's rule): by str.split when the same, 30x faster."""
    return line.split() if line.isascii() and not _QUOTING.intersection(line) else shlex.split(line, posix=True)


def _split_options(path: Path, lineno: int, line: str) -> list[tuple[str, str | None]]:
    try:
        words = _words(line)
    except ValueError as exc:
        raise RequirementsError(path, lineno, f"cannot split the line: {exc}", "check its quoting") from exc
    opts: list[tuple[str, str | None]] = []
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, value = word.partition("=")
        if name in _VALUE_OPTS:
            if not eq:
                if i + 1 >= len(words):
                    raise RequirementsError(path, lineno, f"option {name} needs a value", f"write `{name} VALUE`")
                i += 1
                value = words[i]
            opts.append((_VALUE_OPTS[name], value))
        elif len(name) > 2 and name[:2] in ("-r", "-c", "-i", "-f", "-e") and not name.startswith("--"):
            opts.append((_VALUE_OPTS[name[:2]], word[2:]))
        elif word in _FLAG_OPTS:
            opts.append((_FLAG_OPTS[word], None))
        else:
            raise RequirementsError(
                path, lineno, f"unknown option {word!r}", "remove it, or see `pip install --help` for the options a requirements file takes"
            )
        i += 1
    return opts


def _check_url(path: Path, lineno: int, url: str, what: str) -> str:
    """Index and find-links URLs: well formed, credentials only through ${VAR} (or a netrc), never literal."""
    if _literal_credentials(url):
        m = re.search(r"//[^/@\s]*:\$\{([^}]*)\}@", url)
        if m:
            raise RequirementsError(
                path, lineno, f"{what} {_redact(url)}: ${{{m.group(1)}}} is not a variable pip expands",
                "name credential variables in capitals, digits and underscores: ${PASSWORD}")
        raise RequirementsError(
            path, lineno, f"{what} {_redact(url)} has a literal password in it",
            "put credentials in environment variables and write them as ${USER}:${PASSWORD}@, or in a netrc file",
        )
    if "://" in url:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(_ENV_VAR.sub("1", url))  # a ${VAR} is checked once expanded
            parts.port  # noqa: B018  (raises on a bad port)
        except ValueError as exc:
            raise RequirementsError(path, lineno, f"{what} {_redact(url)!r} is not a valid URL ({exc})",
                                    "write it as https://host[:port]/path") from exc
        if not parts.hostname and parts.scheme != "file":
            raise RequirementsError(path, lineno, f"{what} {_redact(url)!r} names no host", "write it as https://host/path")
    return url


def _literal_credentials(url: str) -> bool:
    m = re.search(r"//([^/@\s]*)@", url)
    if not m:
        return False
    user, _, password = m.group(1).partition(":")
    return bool(password) and not _ENV_VAR.fullmatch(password)


def _redact(url: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", url)


def _parse_fragment(fragment: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in fragment.split("&"):
        key, _, value = part.partition("=")
        if key:
            out[key] = value
    return out


def _git_ref(path: Path, lineno: int, url: str, *, name: str | None, extras: tuple[str, ...],
             marker: str | None, editable: bool) -> DirectRef:
    """`git+SCHEME://host/path[@ref][#egg=name&subdirectory=dir]` → DirectRef."""
    from urllib.parse import urlsplit

    body, _, fragment = url[len("git+"):].partition("#")
    frag = _parse_fragment(fragment)
    parts = urlsplit(body)
    if parts.scheme not in ("https", "http", "ssh", "file", "git"):
        raise RequirementsError(path, lineno, f"git URL scheme {parts.scheme!r} in {_redact(url)!r} is not one git can fetch",
                                "write git+https://, git+ssh:// or git+file://")
    ref = None
    if "@" in parts.path:
        repo_path, _, ref = parts.path.rpartition("@")
        body = body[: len(body) - len(parts.path)] + repo_path if not parts.query else body.replace(parts.path, repo_path, 1)
        ref = ref or None
    egg = frag.get("egg")
    if egg and not name:
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._\-]*)(?:\[([^\]]*)\])?", egg)
        if not m:
            raise RequirementsError(path, lineno, f"#egg={egg} is not a project name", "write #egg=NAME or `NAME @ git+URL`")
        name = m.group(1)
        extras = extras or tuple(e.strip() for e in (m.group(2) or "").split(",") if e.strip())
    return DirectRef(kind="git", url=body, ref=ref, subdirectory=frag.get("subdirectory") or None, name=name,
                     extras=extras, marker=marker, editable=editable)


def _direct(path: Path, lineno: int, text: str, *, editable: bool = False) -> DirectRef | None:
    """A direct reference (git, path, URL) in any of the forms pip takes, or None for a named requirement."""
    lowered = text.lower()
    name: str | None = None
    extras: tuple[str, ...] = ()
    marker: str | None = None
    spec = text
    m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._\-]*)\s*(?:(\[[^\]]*\])\s*)?@\s*(\S.*)$", text)
    if m and not re.match(r"^[a-z0-9+.\-]+://", lowered):
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            raise RequirementsError(path, lineno, f"invalid requirement {_redact(text)!r}: {str(exc).splitlines()[0]}",
                                    "write `name @ URL` with a full URL (git+https://..., file:///..., https://...)") from exc
        name, extras, spec = req.name, tuple(sorted(req.extras)), req.url or ""
        marker = str(req.marker) if req.marker else None
    else:
        # Bare forms: `URL ; marker` or `path ; marker` (pip splits the marker at "; ").
        head, sep, tail = text.partition(";")
        if sep and (" ;" in text or "; " in text):
            spec, marker = head.strip(), tail.strip() or None
        if marker:
            try:
                from packaging.markers import InvalidMarker, Marker

                marker = str(Marker(marker))
            except InvalidMarker as exc:
                raise RequirementsError(path, lineno, f"invalid marker {marker!r}", "write a PEP 508 marker") from exc
    low = spec.lower()
    if "://" in spec:  # well formed, and credentials only as ${VAR}, as for index URLs
        _check_url(path, lineno, spec.split("+", 1)[1] if re.match(r"^[a-z]+\+[a-z]+://", low) else spec, "URL")
    if low.startswith(("hg+", "svn+", "bzr+")):
        raise NotYetSupported(path, lineno, f"{spec.split('+', 1)[0]} requirement {_redact(spec)!r} cannot be mirrored",
                              "only git repositories are mirrored; publish a release or convert the repository to git")
    if low.startswith("git+"):
        return _git_ref(path, lineno, spec, name=name, extras=extras, marker=marker, editable=editable)
    frag: dict[str, str] = {}
    if "#" in spec:
        spec, _, fragment = spec.partition("#")
        frag = _parse_fragment(fragment)
        if not name and frag.get("egg"):
            name = frag["egg"].split("[", 1)[0]
    if low.startswith(("http://", "https://")):
        if not spec.lower().endswith(_ARCHIVE_SUFFIXES):
            raise RequirementsError(path, lineno, f"{_redact(spec)!r} is not a wheel or sdist URL",
                                    "link the .whl or .tar.gz file itself, or use git+https:// for a repository")
        return DirectRef(kind="url", url=spec, name=name, extras=extras, marker=marker, editable=editable)
    if low.startswith("file:"):
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(spec)
        local = unquote(parts.path if parts.netloc in ("", "localhost") else f"//{parts.netloc}{parts.path}")
        return DirectRef(kind="path", url=local, name=name, extras=extras, marker=marker, editable=editable,
                         subdirectory=frag.get("subdirectory") or None)
    looks_local = (spec.startswith((".", "/", "~")) or low.endswith(_ARCHIVE_SUFFIXES)
                   or "/" in spec or "\\" in spec or (editable and not re.search(r"[<>=!~\[\]]", spec)))
    if name is not None or looks_local:
        if re.match(r"^[a-z0-9+.\-]+://", low):
            raise RequirementsError(path, lineno, f"URL scheme of {_redact(spec)!r} is not one pip installs from",
                                    "use https://, file:// or git+https://")
        return DirectRef(kind="path", url=spec, name=name, extras=extras, marker=marker, editable=editable,
                         subdirectory=frag.get("subdirectory") or None)
    return None


def _requirement(path: Path, lineno: int, text: str) -> Requirement:
    if _CONDA_LINE.match(text):
        raise RequirementsError(path, lineno, f"{text!r} looks like a conda package spec", CONDA_EXPORT_FIX)
    m = _SINGLE_EQ.match(text)
    if m:
        raise RequirementsError(
            path, lineno, f"invalid requirement {text!r}: a single '=' is not a version operator",
            f"write `{m.group(1)}=={m.group(3)}`",
        )
    try:
        return Requirement(text)
    except InvalidRequirement as exc:
        detail = str(exc).splitlines()[0]
        raise RequirementsError(
            path, lineno, f"invalid requirement {text!r}: {detail}",
            "write a PEP 508 requirement such as `name==1.2` or `name>=1.0; python_version < \"3.12\"`",
        ) from exc


def parse_requirements_text(
    text: str, path: Path, *, _seen: tuple[Path, ...] = (), into: RequirementsCollector | None = None, _constraint: bool = False
) -> ParsedRequirements:
    """Parse requirements text that was read from `path` (used for errors and relative includes)."""
    collector = into or RequirementsCollector()
    if "\0" in text:
        at = text[: text.index("\0")].count("\n") + 1
        raise RequirementsError(path, at, "a NUL byte: this is not a text file", "save it as UTF-8 text")
    lines = _logical_lines(text, path)
    if _looks_like_conda_export(lines, text):
        first = next((n for n, line in lines if _CONDA_LINE.match(line)), 1)
        raise RequirementsError(path, first, "file is a conda export", CONDA_EXPORT_FIX)
    collector.files.append(path)
    for lineno, line in lines:
        if line.startswith("-"):
            opts = _split_options(path, lineno, line)
            req_text = None
        else:
            # A requirement may carry per-requirement options after it (--hash=...).
            head, sep, tail = line.partition(" --")
            req_text = head.strip()
            opts = _split_options(path, lineno, "--" + tail) if sep else []
        hashes: list[str] = []
        editable: str | None = None
        for kind, value in opts:
            assert value is not None or kind in _FLAG_OPTS.values()
            if kind in ("requirement", "constraint"):
                if req_text is not None:
                    raise RequirementsError(path, lineno, f"-{kind[0]} cannot follow a requirement", "put it on its own line")
                _include(collector, path, lineno, value or "", constraint=_constraint or kind == "constraint", seen=_seen)
            elif kind == "editable":
                editable = value or ""
            elif kind == "hash":
                hashes.append(_hash_option(path, lineno, value, req_text))
            else:
                _option(collector, path, lineno, kind, value)
        if editable is not None:
            if req_text:
                raise RequirementsError(path, lineno, "-e takes one requirement", "put the requirement after -e alone")
            ref = _direct(path, lineno, editable, editable=True)
            if ref is None:
                raise RequirementsError(path, lineno, f"-e {editable!r} is neither a path nor a git URL",
                                        "write -e ./folder or -e git+https://host/repo.git#egg=NAME")
            collector.requirements.append(ReqLine(requirement=None, source=path, lineno=lineno, direct=ref))
        if req_text:
            _requirement_line(collector, path, lineno, req_text, tuple(hashes), constraint=_constraint)
    return collector.result()


def _include(collector: RequirementsCollector, path: Path, lineno: int, value: str, *, constraint: bool,
             seen: tuple[Path, ...]) -> None:
    """A `-r FILE` / `-c FILE` line: the file read (inside the app folder, no cycle, bounded depth) and
    parsed into the same collector; an error in a file outside the app folder never quotes it."""
    _check_url(path, lineno, value, "an include URL")
    if value.startswith(("http://", "https://")):
        raise NotYetSupported(path, lineno, f"remote include {_redact(value)!r} is not supported", "download the file into the app folder")
    if len(seen) >= MAX_INCLUDE_DEPTH:
        raise RequirementsError(path, lineno, f"-r/-c includes nest over {MAX_INCLUDE_DEPTH} deep",
                                "include the files from fewer levels")
    try:
        target = confine(path.parent / value, collector.root)
        if target in seen or target == path.resolve():
            raise RequirementsError(path, lineno, f"include cycle through {value!r}", "remove the circular -r/-c")
        if not target.exists():
            raise RequirementsError(path, lineno, f"included file {value!r} does not exist", f"create {target} or fix the path")
        data = read_app_file(target, root=collector.root)
    except AppFileError as exc:
        raise RequirementsError(path, lineno, f"cannot include {value!r}: {exc}") from exc
    outside = collector.app_dir is not None and collector.app_dir not in target.parents
    try:
        parse_requirements_text(decode_like_pip(data, target), target, _seen=(*seen, path.resolve()), into=collector,
                                _constraint=constraint)
    except RequirementsError as exc:
        if not outside or exc.problem.startswith("cannot include"):
            raise
        raise RequirementsError(exc.path, exc.lineno, "cannot be used (its text is not shown: the file is "
                                "outside the app folder)", "fix the file or stop including it") from None


def _option(collector: RequirementsCollector, path: Path, lineno: int, kind: str, value: str | None) -> None:
    """A file-wide option (indexes, find-links, binary policy, flags) recorded in the collector."""
    where = f"{path}:{lineno}"
    if kind == "index_url":
        collector.index_url = _check_url(path, lineno, value or "", "--index-url")
        collector.origins.setdefault(collector.index_url, where)
    elif kind == "extra_index_url":
        collector.extra.append(_check_url(path, lineno, value or "", "--extra-index-url"))
        collector.origins.setdefault(collector.extra[-1], where)
    elif kind == "find_links":
        collector.find_links.append(_check_url(path, lineno, value or "", "--find-links"))
        collector.origins.setdefault(collector.find_links[-1], where)
    elif kind == "trusted_host":
        collector.trusted.append(value or "")
    elif kind == "no_binary":
        collector.no_binary.extend(v for v in (value or "").split(",") if v)
    elif kind == "only_binary":
        collector.only_binary.extend(v for v in (value or "").split(",") if v)
    elif kind == "only_binary_all":
        collector.only_binary.append(":all:")
    elif kind == "prefer_binary":
        collector.prefer_binary = True
    elif kind == "pre":
        collector.pre = True
    elif kind == "no_index":
        collector.no_index = True
    elif kind == "require_hashes":
        collector.require_hashes = True


def _hash_option(path: Path, lineno: int, value: str | None, req_text: str | None) -> str:
    if req_text is None:
        raise RequirementsError(path, lineno, "--hash must follow a requirement", "put it after `name==version`")
    algo, _, digest = (value or "").partition(":")
    if not digest:
        raise RequirementsError(path, lineno, f"malformed --hash {value!r}", "write --hash=sha256:HEX")
    return f"{algo}:{digest}"


def _requirement_line(collector: RequirementsCollector, path: Path, lineno: int, req_text: str,
                      hashes: tuple[str, ...], *, constraint: bool) -> None:
    """A requirement (a name with its specifier, or a direct reference) or a constraint."""
    ref = _direct(path, lineno, req_text)
    if ref is not None:
        if constraint:
            raise RequirementsError(path, lineno, f"constraint {ref.display!r} is a direct reference",
                                    "constraints name versions (`name==X.Y`); put the reference in a requirements file")
        entry = ReqLine(requirement=None, source=path, lineno=lineno, hashes=hashes, direct=ref)
    else:
        entry = ReqLine(requirement=_requirement(path, lineno, req_text), source=path, lineno=lineno, hashes=hashes)
    (collector.constraints if constraint else collector.requirements).append(entry)


def parse_requirements_file(path: Path, *, root: Path | None | bool = True) -> ParsedRequirements:
    """Read and parse one requirements file and everything it includes, all inside `root` (True:
    the file's own folder; None: anywhere)."""
    path = Path(path).absolute()
    folder = path.parent if root is True else root
    try:
        data = read_app_file(path, root=folder)  # type: ignore[arg-type]
    except AppFileError as exc:
        raise RequirementsError(path, 0, str(exc)) from exc
    collector = RequirementsCollector(root=folder, app_dir=path.parent)  # type: ignore[arg-type]
    return parse_requirements_text(decode_like_pip(data, path), path, into=collector)
