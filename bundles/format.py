"""The bundle format, as values: the signed manifest and the names of tar members.

A bundle is one tar stream (USTAR, fixed metadata), compressed with zstandard, possibly split
into parts. Its members, in this order:
    manifest.json            canonical JSON (below)
    manifest.json.minisig    minisign signature of manifest.json
    blobs/sha256/<hex>       every blob the manifest lists, in the manifest's order
The manifest:
    format_version, kind "airgap-mirror/bundle", bundle_id, created, signer (key id),
    sequence (per signing key, increasing), mode "full" | "delta", base_snapshot (delta only),
    requires (delta only: every snapshot the importing store must hold, the base first),
    site (the destination it was made for), snapshot_id, snapshot (the whole snapshot it brings),
    blobs [[sha256, size], ...], blob_bytes, sbom (sha256 of the CycloneDX SBOM, one of the blobs),
    summary {apps, targets, files}
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airgap_mirror.store.canonical import canonical_json
from airgap_mirror.store.snapshots import Snapshot, unsafe_names

from .errors import BundleFormatError

__all__ = ["FORMAT_VERSION", "KIND", "MANIFEST", "SIGNATURE", "blob_member", "build_manifest", "Manifest",
           "MAX_MANIFEST_BYTES", "MAX_WINDOW_SIZE"]

FORMAT_VERSION = 1
KIND = "airgap-mirror/bundle"
MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.minisig"
# Read whole before its signature is checked, so bounded: 32 MiB holds a snapshot of some 50,000
# files with their Debian stanzas.
MAX_MANIFEST_BYTES = 32 << 20
MAX_SIGNATURE_BYTES = 4096
# A zstd frame may ask for any window; we never write more than 2^27 and refuse more than that.
MAX_WINDOW_SIZE = 1 << 27
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def blob_member(sha: str) -> str:
    return f"blobs/sha256/{sha}"


def build_manifest(*, snapshot: Mapping[str, Any], snapshot_id: str, created: str, signer: str, sequence: int,
                   blobs: list[tuple[str, int]], base_snapshot: str | None, site: str = "default",
                   requires: list[str] | None = None, sbom: str | None = None) -> bytes:
    """The canonical manifest bytes; the same inputs give the same bytes (and bundle id). `snapshot` is
    the document as stored (its sha256 is `snapshot_id`): carried as it is."""
    snap = Snapshot.from_dict(snapshot)
    doc: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "created": created,
        "signer": signer,
        "sequence": sequence,
        "mode": "delta" if base_snapshot else "full",
        "base_snapshot": base_snapshot,
        "requires": ([base_snapshot, *sorted(set(requires or []) - {base_snapshot})] if base_snapshot else []),
        "site": site,
        "sbom": sbom,
        "snapshot_id": snapshot_id,
        "snapshot": snapshot,
        "blobs": [[sha, size] for sha, size in blobs],
        "blob_bytes": sum(size for _, size in blobs),
        "summary": {"apps": sorted(snap.apps), "targets": snap.target_ids(), "files": len(blobs)},
    }
    doc["bundle_id"] = hashlib.sha256(canonical_json(doc)).hexdigest()[:32]
    return canonical_json(doc)


_MAX_SEQUENCE = 2**53  # a JSON number every reader keeps exact; a key's sequence can never reach it


def _check_types(doc: Mapping[str, Any]) -> None:
    """The signed fields have the types and ranges they must: a signature proves who wrote a value,
    not that it is sane (a sequence of 2**62 would end every later bundle of that key)."""
    def is_int(v: object) -> bool:
        return type(v) is int

    problems = []
    if not is_int(doc.get("sequence")) or not 0 < doc["sequence"] < _MAX_SEQUENCE:
        problems.append(f"sequence {doc.get('sequence')!r} is not an integer from 1 to 2**53")
    if doc.get("mode") not in ("full", "delta"):
        problems.append(f"mode {str(doc.get('mode'))[:40]!r} is neither full nor delta")
    if (doc.get("mode") == "delta") != isinstance(doc.get("base_snapshot"), str):
        problems.append("base_snapshot does not match the mode")
    for key in ("snapshot_id", *(["base_snapshot"] if doc.get("base_snapshot") is not None else [])):
        if not (isinstance(doc.get(key), str) and _HEX64.fullmatch(doc[key])):
            problems.append(f"{key} is not a sha256")
    for key in ("created", "signer", "bundle_id"):
        if not isinstance(doc.get(key), str) or len(doc[key]) > 200:
            problems.append(f"{key} is not a short string")
    if not is_int(doc.get("blob_bytes")) or doc["blob_bytes"] < 0:
        problems.append("blob_bytes is not a non-negative integer")
    blobs = doc.get("blobs")
    if not isinstance(blobs, list) or not all(
            isinstance(b, list) and len(b) == 2 and isinstance(b[0], str) and is_int(b[1]) and 0 <= b[1] < _MAX_SEQUENCE
            for b in blobs):
        problems.append("blobs is not a list of [sha256, size] pairs")
    elif doc["blob_bytes"] != sum(b[1] for b in blobs) if is_int(doc.get("blob_bytes")) else False:
        problems.append("blob_bytes is not the sum of the blob sizes")
    if not isinstance(doc.get("snapshot"), dict):
        problems.append("snapshot is not an object")
    requires = doc.get("requires", [])
    if not (isinstance(requires, list) and all(isinstance(r, str) and _HEX64.fullmatch(r) for r in requires)):
        problems.append("requires is not a list of snapshot ids")
    if doc.get("site") is not None and not (isinstance(doc["site"], str) and _SITE.fullmatch(doc["site"])):
        problems.append("site is not a site name")
    if doc.get("sbom") is not None and not (isinstance(doc["sbom"], str) and _HEX64.fullmatch(doc["sbom"])
                                            and isinstance(blobs, list) and [doc["sbom"]] in [b[:1] for b in blobs]):
        problems.append("sbom is not the sha256 of one of its blobs")
    if problems:
        raise BundleFormatError("the signed manifest is malformed: " + "; ".join(problems))


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
    site: str = "default"
    requires: tuple[str, ...] = ()
    sbom: str | None = None

    @classmethod
    def parse(cls, raw: bytes) -> Manifest:
        """Check the structure of (already signature-checked) manifest bytes."""
        import json

        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise BundleFormatError(f"manifest is not JSON: {exc}") from exc
        except RecursionError as exc:  # json's C decoder stops a deep nesting itself, safely
            raise BundleFormatError("manifest is nested too deep to be one this tool wrote") from exc
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
            _check_types(doc)
            for sha, size in blobs:
                if not _HEX64.fullmatch(sha) or size < 0:
                    raise BundleFormatError(f"bad blob entry {sha[:80]!r} {size!r}")
            if doc["mode"] == "full":
                missing = set(Snapshot.from_dict(snapshot).blobs()) - {s for s, _ in blobs}
                if missing:
                    raise BundleFormatError(f"a full bundle that lacks {len(missing)} blobs its snapshot uses "
                                            f"(e.g. {min(missing)}): it could never be imported")
            bad = unsafe_names(snapshot)
            if bad:
                raise BundleFormatError(f"the snapshot names {bad[0]}{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}, "
                                        "which is no safe file name: refused before anything is written")
            if len({s for s, _ in blobs}) != len(blobs):
                raise BundleFormatError("the manifest lists a blob twice")
            return cls(raw=raw, bundle_id=doc["bundle_id"], created=doc["created"], signer=doc["signer"],
                       sequence=int(doc["sequence"]), mode=doc["mode"], base_snapshot=doc.get("base_snapshot"),
                       snapshot_id=doc["snapshot_id"], snapshot=snapshot, blobs=blobs,
                       blob_bytes=int(doc["blob_bytes"]), summary=doc.get("summary", {}),
                       site=doc.get("site") or "default",
                       requires=tuple(doc.get("requires") or ([doc["base_snapshot"]] if doc.get("base_snapshot") else [])),
                       sbom=doc.get("sbom"))
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleFormatError(f"manifest is missing or has a malformed field: {exc}") from exc
