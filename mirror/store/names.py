"""Validated string types: project names, sha256 digests, and the one safe path join."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from packaging.utils import NormalizedName, canonicalize_name

__all__ = ["NormalizedName", "canonicalize_name", "Sha256", "safe_join", "safe_join_str", "UnsafePath"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_COMPONENT = re.compile(r"[^/\\\x00]{1,255}")


class UnsafePath(ValueError):
    """A path built from outside data would leave its root."""


class Sha256(str):
    """A lowercase hex sha256 digest; the only constructor checks its shape."""

    __slots__ = ()

    def __new__(cls, value: str) -> Sha256:
        value = str(value).lower()
        if not _HEX64.fullmatch(value):
            raise ValueError(f"not a sha256 hex digest: {value!r}")
        return super().__new__(cls, value)


def safe_join(root: Path, *parts: str) -> Path:
    """Join relative, outside-supplied parts under root; can never escape root.

    Absolute parts, '..' components, empty components, NUL bytes and backslashes are refused
    rather than normalised away, so a hostile name is an error, not a surprise.
    """
    rel = PurePosixPath()
    for part in parts:
        if not part or "\x00" in part or "\\" in part:
            raise UnsafePath(f"unsafe path component: {part[:100]!r}")
        if any(len(c.encode("utf-8", "surrogateescape")) > 255 for c in part.split("/")):
            raise UnsafePath(f"path component over 255 bytes: {part[:100]!r}...")
        p = PurePosixPath(part)
        if p.is_absolute():
            raise UnsafePath(f"absolute path not allowed: {part!r}")
        for comp in p.parts:
            if comp in ("..", ".", ""):
                raise UnsafePath(f"path component {comp!r} not allowed in {part!r}")
        rel = rel / p
    return Path(root, *rel.parts)


def safe_join_str(root: str, *parts: str) -> str:
    """`safe_join` on strings, for loops over every file of a store: plain components (no slash)
    are checked and joined without pathlib; anything else goes through `safe_join` (and its errors)."""
    for part in parts:
        if not _COMPONENT.fullmatch(part) or part in (".", "..") or (not part.isascii() and len(part.encode("utf-8", "surrogateescape")) > 255):
            return str(safe_join(Path(root), *parts))
    return "/".join((root, *parts))
