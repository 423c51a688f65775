"""Receipts: the inside store says, signed, which snapshots and bundles it holds; the outside reads
that to build exactly the delta the inside needs and to know what each site has.

A receipt file is canonical JSON `{"receipt": DOC, "signature": MINISIG}`; DOC names the site, the
snapshots the store holds, its current one, every bundle imported (id, signer, sequence) and the
public key that signs it. The key is the inside store's own (`site-key/receipt.key` in the store,
made on first use). The outside pins a site's key the first time it reads one of its receipts and
refuses a receipt of that site signed by any other key afterwards (or a receipt of another site).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airgap_mirror.errors import InputError
from airgap_mirror.maintenance.history import list_snapshots
from airgap_mirror.store import Store, atomic_write
from airgap_mirror.store.canonical import canonical_json

from .errors import KeyFormatError, SignatureError
from .keys import PublicKey, SecretKey, generate, parse_signature, sign, verify
from .state import DEFAULT_SITE, BundleState, check_site

__all__ = ["Receipt", "make_receipt", "read_receipt", "site_key"]

KIND = "airgap-mirror/receipt"
MAX_RECEIPT_BYTES = 8 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    receipt_id: str
    site: str
    created: str
    current: str | None
    snapshots: tuple[str, ...]
    imports: tuple[dict[str, Any], ...]
    key: PublicKey


def site_key(store: Store) -> SecretKey:
    """The inside store's own receipt-signing key, made (0600) on first use."""
    folder = store.root / "site-key"
    path = folder / "receipt.key"
    if path.is_file():
        return SecretKey.from_text(path.read_text(encoding="utf-8"), None)
    folder.mkdir(mode=0o700, exist_ok=True)
    key = generate()
    atomic_write(folder / "receipt.pub", key.public.to_text().encode())
    atomic_write(path, key.to_text(None).encode(), durable=True, private=True)
    return key


def make_receipt(store: Store, site: str | None = None) -> tuple[bytes, Receipt]:
    """The signed receipt of what this (inside) store holds, as file bytes."""
    state = BundleState(store)
    site = check_site(site or state.inside_site() or DEFAULT_SITE)
    key = site_key(store)
    doc: dict[str, Any] = {
        "kind": KIND, "format_version": 1, "site": site,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "current": store.ref("current"),
        "snapshots": sorted(s["id"] for s in list_snapshots(store)),
        "imports": [{k: r[k] for k in ("bundle_id", "signer", "sequence", "snapshot")} for r in state.import_log()],
        "public_key": key.public.to_text(),
    }
    body = canonical_json(doc)
    rid = hashlib.sha256(body).hexdigest()[:32]
    sig = sign(key, body, f"airgap-mirror receipt {rid} site {site}").to_text()
    data = canonical_json({"receipt": doc, "signature": sig})
    return data, _receipt(doc, rid, key.public)


def _receipt(doc: dict[str, Any], rid: str, key: PublicKey) -> Receipt:
    return Receipt(receipt_id=rid, site=doc["site"], created=doc["created"], current=doc.get("current"),
                   snapshots=tuple(doc["snapshots"]), imports=tuple(doc["imports"]), key=key)


def read_receipt(path: Path, state: BundleState, *, site: str | None = None) -> Receipt:
    """Check a receipt file (its own signature, the site's pinned key, the site asked for) and record
    what it says the site holds. Raises SignatureError for a tampered or foreign receipt."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_RECEIPT_BYTES + 1)
    except OSError as exc:
        raise InputError(f"receipt {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_RECEIPT_BYTES:
        raise SignatureError(f"receipt {path} is over {MAX_RECEIPT_BYTES >> 20} MiB: not a receipt this tool wrote")
    try:
        try:
            outer = json.loads(data)
        except RecursionError as exc:  # json's C decoder stops a deep nesting itself, safely
            raise ValueError("nested too deep") from exc
        doc, sig_text = outer["receipt"], outer["signature"]
        if not isinstance(doc, dict) or doc.get("kind") != KIND or not isinstance(sig_text, str):
            raise ValueError("not a receipt")
        key = PublicKey.from_text(str(doc["public_key"]))
        body = canonical_json(doc)
        verify([key], body, parse_signature(sig_text))
        rsite = check_site(str(doc["site"]))
        snapshots = doc["snapshots"]
        if not (isinstance(snapshots, list) and all(isinstance(s, str) and re.fullmatch(r"[0-9a-f]{64}", s)
                                                    for s in snapshots)):
            raise ValueError("snapshots is not a list of ids")
        if doc.get("current") is not None and doc["current"] not in snapshots:
            raise ValueError("its current snapshot is not among its snapshots")
    except SignatureError as exc:
        raise SignatureError(f"receipt {path} does not verify ({exc}): it was altered after it was signed") from exc
    except (ValueError, KeyError, TypeError, KeyFormatError) as exc:
        raise SignatureError(f"{path} is not a receipt this tool wrote ({exc})") from exc
    if site is not None and rsite != site:
        raise SignatureError(f"receipt {path} is from site {rsite!r}, not {site!r}: a receipt only speaks for its own site")
    rid = hashlib.sha256(body).hexdigest()[:32]
    pinned = state.site_key(rsite)
    if pinned is not None and PublicKey.from_text(pinned).to_text() != key.to_text():
        raise SignatureError(
            f"receipt {path} of site {rsite!r} is signed by key {key.id_hex}, but that site's receipts are signed by"
            f" {PublicKey.from_text(pinned).id_hex}: refused as foreign (if that site's store was rebuilt, run"
            f" `mirror bundle sites forget-key {rsite}` after checking)")
    if pinned is None:
        state.pin_site_key(rsite, key.to_text())
    receipt = _receipt(doc, rid, key)
    state.record_receipt(site=rsite, receipt_id=rid, current=receipt.current, held=list(receipt.snapshots))
    return receipt
