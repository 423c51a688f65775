"""What each path of a published tree is: how long it may be cached, its content type, and in which
stage it goes up when a tree is uploaded to object storage (airgap_mirror.publish.s3).

Stages are the order that keeps clients safe while a tree changes under them: what is named by
something is written before what names it.

    FILES     distributions, .debs: content-named, never overwritten
    SIDECARS  .metadata, APT by-hash indexes: content-named, found only through a page or a Release
    PAGES     project pages, locks, anything not named below
    INDEXES   the /simple/ root, APT Packages files: they name the pages and the pool
    ROOTS     signed roots (APT Release, InRelease, Release.gpg): they name the indexes by hash
    STATUS    snapshot.json: which snapshot the tree is, written once everything it describes is up

The core knows its own part (packages/, simple/); a plug-in adds the rules for its part of the tree
as `airgap_mirror.tree_layout` (a TreeLayout), so this module names no APT file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from pathlib import PurePosixPath

__all__ = ["Stage", "TreeLayout", "Rule", "CORE", "classify", "content_type", "immutable", "SHORT_CACHE", "LONG_CACHE",
           "INTEGRITY_JSON"]

SHORT_CACHE = "max-age=30, must-revalidate"
LONG_CACHE = "max-age=31536000, immutable"


class Stage(IntEnum):
    FILES = 0
    SIDECARS = 1
    PAGES = 2
    INDEXES = 3
    ROOTS = 4
    STATUS = 5


@dataclass(frozen=True, slots=True)
class Rule:
    pattern: str  # a glob over the tree-relative POSIX path: `*` within a segment, `**` across segments
    stage: Stage
    immutable: bool = False


@dataclass(frozen=True, slots=True)
class TreeLayout:
    rules: tuple[Rule, ...]


CORE = TreeLayout((
    Rule("packages/**/*.metadata", Stage.SIDECARS, immutable=True),
    Rule("packages/**", Stage.FILES, immutable=True),
    Rule("integrity/**", Stage.SIDECARS),  # PEP 740 provenance, named by the pages
    Rule("simple/index.*", Stage.INDEXES),
    Rule("find-links.html*", Stage.INDEXES),
    Rule("snapshot.json", Stage.STATUS),
))

_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8", ".json": "application/json", ".whl": "application/octet-stream",
    ".metadata": "text/plain; charset=utf-8", ".gz": "application/gzip", ".xz": "application/x-xz",
    ".deb": "application/vnd.debian.binary-package", ".toml": "text/plain; charset=utf-8",
    ".lock": "text/plain; charset=utf-8", ".asc": "text/plain; charset=utf-8", ".gpg": "application/pgp-keys",
    ".zip": "application/zip",
}
_SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"
INTEGRITY_JSON = "application/vnd.pypi.integrity.v1+json"  # PEP 740's provenance objects


def _translate(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


@cache
def _compiled() -> tuple[re.Pattern[str], tuple[Rule, ...]]:
    from airgap_mirror.interfaces import tree_layouts

    rules = tuple(r for layout in (*tree_layouts(), CORE) for r in layout.rules)
    alternatives = "|".join(f"(?P<r{i}>{_translate(r.pattern)})" for i, r in enumerate(rules))
    return re.compile(f"(?:{alternatives})\\Z"), rules


def classify(rel: str) -> tuple[Stage, bool]:
    """(stage, immutable) of a tree-relative POSIX path; the first rule that matches decides
    (plug-ins' rules before the core's)."""
    pattern, rules = _compiled()
    m = pattern.match(rel)
    if m is None or m.lastgroup is None:
        return Stage.PAGES, False
    rule = rules[int(m.lastgroup[1:])]
    return rule.stage, rule.immutable


def immutable(rel: str) -> bool:
    return classify(rel)[1]


def content_type(rel: str) -> str:
    """The Content-Type a file is served with, by name (a simple-API JSON page by PEP 691's type)."""
    path = PurePosixPath(rel)
    if path.name == "index.json" and path.parts[:1] == ("simple",):
        return _SIMPLE_JSON
    if path.name == "provenance" and path.parts[:1] == ("integrity",):
        return INTEGRITY_JSON
    return _CONTENT_TYPES.get(path.suffix, "application/octet-stream")


def cache_control(rel: str) -> str:
    return ("public, " + LONG_CACHE) if immutable(rel) else SHORT_CACHE
