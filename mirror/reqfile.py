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

from .errors import NotYetSupported, RequirementsError

__all__ = [
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
# pip: a comment starts at '#' at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")
_ENV_VAR = re.compile(r"\$\{([A-Z0-9_]+)\}")
_CONDA_LINE = re.compile(r"^[A-Za-z0-9_.\-]+=[^=\s<>!~]+=[^=\s]+$")
_SINGLE_EQ = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._\-]*(\[[^\]]*\])?)\s*=\s*([^=<>!~\s].*)$")
_ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".tgz", ".zip", ".tar.bz2", ".tar.xz", ".tar")
_VCS_PREFIXES = ("git+", "hg+", "svn+", "bzr+")

CONDA_EXPORT_FIX = (
    "this is a conda export (`conda list --export`), not a pip requirements file: "
    "export the environment with `pip freeze` or `conda env export` to environment.yml"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReqLine:
    """One requirement with where it was written."""

    requirement: Requirement
    source: Path
    lineno: int
    hashes: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.source}:{self.lineno}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReqOptions:
    """Global options found in requirements files, merged over all included files."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()
    no_binary: tuple[str, ...] = ()
    only_binary: tuple[str, ...] = ()
    pre: bool = False
    no_index: bool = False
    require_hashes: bool = False


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
            return data[len(bom) :].decode(encoding)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise RequirementsError(
            path, line, "file is not UTF-8 and has no byte-order mark", "save it as UTF-8"
        ) from exc


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Join backslash continuations and strip comments; keep the first physical line number."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    start = 0
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not buf:
            start = i
        if line.endswith("\\") and not _COMMENT.search(line):
            buf.append(line[:-1])
            continue
        buf.append(line)
        joined = _COMMENT.sub("", " ".join(buf)).strip()
        buf = []
        if joined:
            out.append((start, joined))
    if buf:
        joined = _COMMENT.sub("", " ".join(buf)).strip()
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

    def __init__(self) -> None:
        self.requirements: list[ReqLine] = []
        self.constraints: list[ReqLine] = []
        self.files: list[Path] = []
        self.index_url: str | None = None
        self.extra: list[str] = []
        self.find_links: list[str] = []
        self.trusted: list[str] = []
        self.no_binary: list[str] = []
        self.only_binary: list[str] = []
        self.pre = False
        self.no_index = False
        self.require_hashes = False

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
                pre=self.pre,
                no_index=self.no_index,
                require_hashes=self.require_hashes,
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
    "--pre": "pre", "--prefer-binary": "ignored", "--no-index": "no_index",
    "--require-hashes": "require_hashes", "--only-binary=:all:": "only_binary_all",
}  # fmt: skip


def _split_options(path: Path, lineno: int, line: str) -> list[tuple[str, str | None]]:
    try:
        words = shlex.split(line, posix=True)
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
    if _ENV_VAR.search(url) or re.search(r"//[^/@]*:[^/@]*@", url):
        raise NotYetSupported(
            path, lineno, f"{what} with credentials ({_redact(url)}) is not yet supported",
            "private indexes with ${VAR} credentials arrive in a later release; mirror public indexes for now",
        )
    return url


def _redact(url: str) -> str:
    return re.sub(r"//[^/@]*@", "//***@", url)


def _requirement(path: Path, lineno: int, text: str) -> Requirement:
    lowered = text.lower()
    if lowered.startswith(_VCS_PREFIXES) or "@ git+" in lowered or "@git+" in lowered or " @ hg+" in lowered:
        raise NotYetSupported(
            path, lineno, f"VCS requirement {_redact(text)!r} is not yet supported",
            "git dependencies arrive in a later release; pin a released version from an index meanwhile",
        )
    if lowered.startswith(("http://", "https://", "file:")) or re.search(r"@\s*(https?|file):", lowered):
        raise NotYetSupported(
            path, lineno, f"direct URL requirement {_redact(text)!r} is not yet supported",
            "name the project and version (`name==X.Y`) so it comes from an index",
        )
    if text.startswith((".", "/", "~")) or lowered.endswith(_ARCHIVE_SUFFIXES) or "/" in text.split(";")[0].split("@")[0]:
        raise NotYetSupported(
            path, lineno, f"local package {text!r} is not yet supported",
            "local tarballs, wheels and folders arrive in a later release",
        )
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
    lines = _logical_lines(text)
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
        for kind, value in opts:
            assert value is not None or kind in _FLAG_OPTS.values()
            if kind in ("requirement", "constraint"):
                if req_text is not None:
                    raise RequirementsError(path, lineno, f"-{kind[0]} cannot follow a requirement", "put it on its own line")
                value = value or ""
                _check_url(path, lineno, value, "an include URL")
                if value.startswith(("http://", "https://")):
                    raise NotYetSupported(path, lineno, f"remote include {value!r} is not supported", "download the file into the app folder")
                target = (path.parent / value).resolve()
                if target in _seen or target == path.resolve():
                    raise RequirementsError(path, lineno, f"include cycle through {value!r}", "remove the circular -r/-c")
                if not target.is_file():
                    raise RequirementsError(path, lineno, f"included file {value!r} does not exist", f"create {target} or fix the path")
                sub_text = decode_like_pip(target.read_bytes(), target)
                parse_requirements_text(
                    sub_text, target, _seen=(*_seen, path.resolve()), into=collector,
                    _constraint=_constraint or kind == "constraint",
                )
            elif kind == "index_url":
                collector.index_url = _check_url(path, lineno, value or "", "--index-url")
            elif kind == "extra_index_url":
                collector.extra.append(_check_url(path, lineno, value or "", "--extra-index-url"))
            elif kind == "find_links":
                raise NotYetSupported(path, lineno, f"--find-links {value!r} is not yet supported", "local package folders arrive in a later release")
            elif kind == "trusted_host":
                collector.trusted.append(value or "")
            elif kind == "no_binary":
                collector.no_binary.extend(v for v in (value or "").split(",") if v)
            elif kind == "only_binary":
                collector.only_binary.extend(v for v in (value or "").split(",") if v)
            elif kind == "only_binary_all":
                collector.only_binary.append(":all:")
            elif kind == "pre":
                collector.pre = True
            elif kind == "no_index":
                collector.no_index = True
            elif kind == "require_hashes":
                collector.require_hashes = True
            elif kind == "editable":
                raise NotYetSupported(path, lineno, f"editable requirement -e {value} is not yet supported", "local and VCS packages arrive in a later release")
            elif kind == "hash":
                if req_text is None:
                    raise RequirementsError(path, lineno, "--hash must follow a requirement", "put it after `name==version`")
                algo, _, digest = (value or "").partition(":")
                if not digest:
                    raise RequirementsError(path, lineno, f"malformed --hash {value!r}", "write --hash=sha256:HEX")
                hashes.append(f"{algo}:{digest}")
        if req_text:
            req = _requirement(path, lineno, req_text)
            entry = ReqLine(requirement=req, source=path, lineno=lineno, hashes=tuple(hashes))
            (collector.constraints if _constraint else collector.requirements).append(entry)
    return collector.result()


def parse_requirements_file(path: Path) -> ParsedRequirements:
    """Read and parse one requirements file and everything it includes."""
    path = Path(path)
    return parse_requirements_text(decode_like_pip(path.read_bytes(), path), path)
