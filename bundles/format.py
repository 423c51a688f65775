"""The bundle format, as values: the signed manifest and the names of tar members.

A bundle is one tar stream (USTAR, fixed metadata), compressed with zstandard, possibly split
into parts. Its members, in this order:
    manifest.json            canonical JSON (below)
    manifest.json.minisig    minisign signature of manifest.json
    blobs/sha256/<hex>       every blob the manifest lists, in the manifest's order
The manifest:
    format_version, kind "airgap-mirror/bundle", bundle_id, created, signer (key id),
    sequence (per signing key, increasing), mode "full" | "delta", base_snapshot (delta only),
    snapshot_id, snapshot (the whole snapshot it brings), blobs [[sha256, size], ...],
    blob_bytes, summary {apps, targets, files}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mirror.canonical import canonical_json

from .errors import BundleFormatError

__all__ = ["FORMAT_VERSION", "KIND", "MANIFEST", "SIGNATURE", "blob_member", "build_manifest", "Manifest",
           "MAX_MANIFEST_BYTES", "MAX_WINDOW_SIZE"]

FORMAT_VERSION = 1
KIND = "airgap-mirror/bundle"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.minisig"
MAX_MANIFEST_BYTES = 256 << 20
MAX_SIGNATURE_BYTES = 4096
# A zstd frame may ask for any window; we never write more than 2^27 and refuse more than that.
MAX_WINDOW_SIZE = 1 << 27
_HEX64 = re.compile(r"[0-9a-f]{64}")


def blob_member(sha: str) -> str:
    return f"blobs/sha256/{sha}"


def build_manifest(*, snapshot: Mapping[str, Any], snapshot_id: str, created: str, signer: str, sequence: int,
                   blobs: list[tuple[str, int]], base_snapshot: str | None) -> bytes:
    """The canonical manifest bytes; the same inputs give the same bytes (and bundle id)."""
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "created": created,
        "signer": signer,
        "sequence": sequence,
        "mode": "delta" if base_snapshot else "full",
        "base_snapshot": base_snapshot,
        "snapshot_id": snapshot_id,
        "snapshot": snapshot,
        "blobs": [[sha, size] for sha, size in blobs],
        "blob_bytes": sum(size for _, size in blobs),
        "summary": {
            "apps": sorted(snapshot.get("apps", {})),
            "targets": sorted([*snapshot.get("targets", {}),
                               *(t for sec in snapshot.values() if isinstance(sec, Mapping)
                                 for t in (sec.get("targets", {}) if "files" in sec else {}))]),
            "files": len(blobs),
        },
    }
    doc["bundle_id"] = hashlib.sha256(canonical_json(doc)).hexdigest()[:32]
    return canonical_json(doc)


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    raw: bytes
    bundle_id: str
    created: str
    signer: str
    sequence: int
    mode: str
    base_snapshot: str | None
    snapshot_id: str
    snapshot: dict[str, Any]
    blobs: tuple[tuple[str, int], ...]
    blob_bytes: int
    summary: dict[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> "Manifest":
        """Check the structure of (already signature-checked) manifest bytes."""
        import json

        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise BundleFormatError(f"manifest is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("kind") != KIND:
            raise BundleFormatError("not an airgap-mirror bundle manifest")
        if doc.get("format_version") != FORMAT_VERSION:
            raise BundleFormatError(f"bundle format {doc.get('format_version')!r} is not supported by this version"
                                    f" (it reads format {FORMAT_VERSION}): upgrade airgap-mirror inside the gap")
        if canonical_json(doc) != raw:
            raise BundleFormatError("manifest is not in canonical form")
        try:
            blobs = tuple((str(s), int(n)) for s, n in doc["blobs"])
            snapshot = doc["snapshot"]
            if hashlib.sha256(canonical_json(snapshot)).hexdigest() != doc["snapshot_id"]:
                raise BundleFormatError("the manifest's snapshot does not match its snapshot_id")
            for sha, size in blobs:
                if not _HEX64.fullmatch(sha) or size < 0:
                    raise BundleFormatError(f"bad blob entry {sha!r} {size!r}")
            if len({s for s, _ in blobs}) != len(blobs):
                raise BundleFormatError("the manifest lists a blob twice")
            return cls(raw=raw, bundle_id=doc["bundle_id"], created=doc["created"], signer=doc["signer"],
                       sequence=int(doc["sequence"]), mode=doc["mode"], base_snapshot=doc.get("base_snapshot"),
                       snapshot_id=doc["snapshot_id"], snapshot=snapshot, blobs=blobs,
                       blob_bytes=int(doc["blob_bytes"]), summary=doc.get("summary", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleFormatError(f"manifest is missing or has a malformed field: {exc}") from exc
