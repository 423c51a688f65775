"""What a snapshot needs from the store: every blob it references, with its size where recorded.

Used by bundles (what to carry), gc (what to keep) and verify (what must be present). Sections
added by extensions (`apt`) reference blobs through their `files` mapping, keyed by sha256.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["referenced_blobs"]


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
