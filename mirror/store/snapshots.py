"""What a snapshot needs from the store: every blob it references, with its size where recorded.

Used by bundles (what to carry), gc (what to keep) and verify (what must be present). Sections
added by extensions (`apt`) reference blobs through their `files` mapping, keyed by sha256.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["referenced_blobs", "unsafe_names"]

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


def unsafe_names(snapshot: Mapping[str, Any]) -> list[str]:
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
