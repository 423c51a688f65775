"""What a store remembers about bundles: sequences per signing key, exports, imports, trusted keys.

Kept in the store's catalog (tables of their own) and, for trusted keys, as minisign .pub files
under `trust/` so an admin can read and audit them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from airgap_mirror.errors import InputError
from airgap_mirror.store import Store

from .errors import KeyFormatError

if TYPE_CHECKING:
    from .keys import PublicKey  # (imported where a key is read: cryptography is 20 ms of every publish's start)

__all__ = ["BundleState", "ImportRecord", "Ledger", "DEFAULT_SITE", "check_site", "SiteRecord"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bundle_exports (
    bundle_id TEXT PRIMARY KEY, signer TEXT NOT NULL, sequence INTEGER NOT NULL, snapshot_id TEXT NOT NULL,
    base_snapshot TEXT, created TEXT NOT NULL, path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bundle_imports (
    bundle_id TEXT NOT NULL, signer TEXT NOT NULL, sequence INTEGER NOT NULL, snapshot_id TEXT NOT NULL,
    imported TEXT NOT NULL, current INTEGER NOT NULL, PRIMARY KEY (bundle_id)
);
-- Outside: what each destination site was sent or, by its signed receipt, holds; newest last.
CREATE TABLE IF NOT EXISTS bundle_sites (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, site TEXT NOT NULL, snapshot_id TEXT NOT NULL,
    kind TEXT NOT NULL, ref TEXT NOT NULL, held TEXT, at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bundle_site_keys (site TEXT PRIMARY KEY, public_key TEXT NOT NULL, first_seen TEXT NOT NULL);
"""
DEFAULT_SITE = "default"
_SITE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_site(name: str) -> str:
    if not _SITE.fullmatch(name):
        raise InputError(f"site name {name[:80]!r}: use letters, digits, '.', '_' and '-' (at most 64)")
    return name


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportRecord:
    bundle_id: str
    signer: str
    sequence: int
    snapshot_id: str
    imported: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteRecord:
    """One thing the outside knows of a site: a bundle sent to it, or a receipt it signed."""

    site: str
    snapshot_id: str  # the snapshot the site has (was sent, or holds as current)
    kind: str  # "sent" | "receipt"
    ref: str  # bundle id or receipt id
    held: tuple[str, ...]  # for a receipt: every snapshot the site holds
    at: str


class BundleState:
    def __init__(self, store: Store) -> None:
        self.store = store
        with store.db() as db:
            db.executescript(_SCHEMA)
            cols = {r[1] for r in db.execute("PRAGMA table_info(bundle_exports)")}
            if "site" not in cols:  # a store from before sites: its exports were all for the one site
                db.execute(f"ALTER TABLE bundle_exports ADD COLUMN site TEXT NOT NULL DEFAULT '{DEFAULT_SITE}'")
                db.execute("INSERT INTO bundle_sites(site, snapshot_id, kind, ref, held, at) SELECT site, snapshot_id,"
                           " 'sent', bundle_id, NULL, created FROM bundle_exports ORDER BY created, sequence")
            cols = {r[1] for r in db.execute("PRAGMA table_info(bundle_imports)")}
            if "site" not in cols:
                db.execute("ALTER TABLE bundle_imports ADD COLUMN site TEXT")

    # -- outside: sequences and exports --------------------------------------------------------
    def next_sequence(self, signer: str) -> int:
        with self.store.db() as db:
            row = db.execute("SELECT MAX(sequence) FROM bundle_exports WHERE signer = ?", (signer,)).fetchone()
        return (row[0] or 0) + 1

    def record_export(self, *, bundle_id: str, signer: str, sequence: int, snapshot_id: str, base: str | None,
                      path: Path, site: str = DEFAULT_SITE) -> None:
        now = _now()
        with self.store.db() as db:
            db.execute("INSERT OR REPLACE INTO bundle_exports(bundle_id, signer, sequence, snapshot_id, base_snapshot,"
                       " created, path, site) VALUES (?,?,?,?,?,?,?,?)",
                       (bundle_id, signer, sequence, snapshot_id, base, now, str(path), site))
            db.execute("INSERT INTO bundle_sites(site, snapshot_id, kind, ref, held, at) VALUES (?,?,?,?,?,?)",
                       (site, snapshot_id, "sent", bundle_id, None, now))

    def record_receipt(self, *, site: str, receipt_id: str, current: str | None, held: list[str]) -> None:
        with self.store.db() as db:
            db.execute("INSERT INTO bundle_sites(site, snapshot_id, kind, ref, held, at) VALUES (?,?,?,?,?,?)",
                       (site, current or "", "receipt", receipt_id, json.dumps(sorted(held)), _now()))

    def site_key(self, site: str) -> str | None:
        with self.store.db() as db:
            row = db.execute("SELECT public_key FROM bundle_site_keys WHERE site = ?", (site,)).fetchone()
        return row[0] if row else None

    def pin_site_key(self, site: str, public_key: str) -> None:
        with self.store.db() as db:
            db.execute("INSERT OR REPLACE INTO bundle_site_keys VALUES (?,?,?)", (site, public_key, _now()))

    def forget_site_key(self, site: str) -> None:
        with self.store.db() as db:
            db.execute("DELETE FROM bundle_site_keys WHERE site = ?", (site,))

    def site_log(self, site: str | None = None) -> list[SiteRecord]:
        """What the outside knows of each site (or one), oldest first."""
        with self.store.db() as db:
            rows = db.execute("SELECT site, snapshot_id, kind, ref, held, at FROM bundle_sites"
                              + (" WHERE site = ?" if site else "") + " ORDER BY seq", (site,) if site else ()).fetchall()
        return [SiteRecord(site=r[0], snapshot_id=r[1], kind=r[2], ref=r[3], held=tuple(json.loads(r[4] or "[]")), at=r[5])
                for r in rows]

    def sites(self) -> list[str]:
        with self.store.db() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT site FROM bundle_sites ORDER BY site")]

    def last_exported(self, site: str = DEFAULT_SITE) -> str | None:
        """The base of the next delta for `site`: the snapshot of the last bundle sent there, or what its
        last receipt says it holds, whichever came later. A bundle for another site never moves it."""
        for rec in reversed(self.site_log(site)):
            if rec.snapshot_id:
                return rec.snapshot_id
        return None

    def imports(self) -> list[tuple[str, str, str]]:
        """(bundle id, snapshot id, when) of every bundle imported, oldest first."""
        with self.store.db() as db:
            return [tuple(r) for r in db.execute(
                "SELECT bundle_id, snapshot_id, imported FROM bundle_imports ORDER BY imported").fetchall()]

    # -- inside: imports and replay protection -------------------------------------------------
    def last_sequence(self, signer: str) -> int:
        with self.store.db() as db:
            row = db.execute("SELECT MAX(sequence) FROM bundle_imports WHERE signer = ?", (signer,)).fetchone()
        return row[0] or 0

    def imported(self, bundle_id: str) -> ImportRecord | None:
        with self.store.db() as db:
            row = db.execute("SELECT bundle_id, signer, sequence, snapshot_id, imported FROM bundle_imports"
                             " WHERE bundle_id = ?", (bundle_id,)).fetchone()
        return ImportRecord(bundle_id=row[0], signer=row[1], sequence=row[2], snapshot_id=row[3], imported=row[4]) if row else None

    def record_import(self, *, bundle_id: str, signer: str, sequence: int, snapshot_id: str, current: bool,
                      site: str | None = None) -> None:
        with self.store.db() as db:
            db.execute("INSERT OR REPLACE INTO bundle_imports(bundle_id, signer, sequence, snapshot_id, imported, current,"
                       " site) VALUES (?,?,?,?,?,?,?)",
                       (bundle_id, signer, sequence, snapshot_id, _now(), int(current), site))

    def import_log(self) -> list[dict[str, object]]:
        """Every bundle imported, oldest first, as the front page and receipts show them."""
        with self.store.db() as db:
            rows = db.execute("SELECT bundle_id, signer, sequence, snapshot_id, imported, current, site"
                              " FROM bundle_imports ORDER BY imported, rowid").fetchall()
        return [{"bundle_id": r[0], "signer": r[1], "sequence": r[2], "snapshot": r[3], "imported": r[4],
                 "current": bool(r[5]), "site": r[6]} for r in rows]

    def inside_site(self) -> str | None:
        """The site this (inside) store is: the site named by the last bundle it imported."""
        with self.store.db() as db:
            row = db.execute("SELECT site FROM bundle_imports WHERE site IS NOT NULL ORDER BY imported DESC, rowid DESC"
                             " LIMIT 1").fetchone()
        return row[0] if row else None

    # -- trusted keys ----------------------------------------------------------------------------
    @property
    def trust_dir(self) -> Path:
        return self.store.root / "trust"

    def trust(self, key_file: Path, *, replace: bool = False) -> PublicKey:
        key = read_public_key(key_file)
        self.trust_dir.mkdir(parents=True, exist_ok=True)
        dest = self.trust_dir / f"{key.id_hex}.pub"
        if dest.is_file() and not replace and read_public_key(dest).to_text() != key.to_text():
            raise KeyFormatError(f"a different key with id {key.id_hex} is already trusted: remove it first "
                                 f"(`mirror trust remove {key.id_hex}`) or pass --replace, after checking which is right")
        tmp = dest.with_suffix(".tmp")
        tmp.write_text(key.to_text())
        os.replace(tmp, dest)
        return key

    def untrust(self, key_id: str) -> bool:
        path = self.trust_dir / f"{key_id.upper()}.pub"
        if path.is_file():
            path.unlink()
            return True
        return False

    def trusted(self) -> list[PublicKey]:
        if not self.trust_dir.is_dir():
            return []
        return [read_public_key(p) for p in sorted(self.trust_dir.glob("*.pub"))]


def read_public_key(path: Path) -> PublicKey:
    from .keys import PublicKey

    try:
        return PublicKey.from_text(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise KeyFormatError(f"public key file {path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise KeyFormatError(f"{path} is not a minisign public key") from exc


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Ledger:
    """The bundle side's answer to the core's `BundleLedger` interface (airgap_mirror.interfaces)."""

    def last_exported(self, store: Store, site: str | None = None) -> str | None:
        return BundleState(store).last_exported(check_site(site) if site else DEFAULT_SITE)

    def delta_bases(self, store: Store) -> list[str]:
        state = BundleState(store)
        return [sid for site in state.sites() if (sid := state.last_exported(site))]

    def bundle_snapshot(self, path: Path) -> str | None:
        """The snapshot a bundle file (or its parts) brings, read from its manifest; None if `path` is no bundle."""
        from .reader import read_manifest_unverified

        path = Path(path)
        if not (path.is_file() or path.with_name(path.name + ".001").is_file()):
            return None
        return read_manifest_unverified([path]).snapshot_id

    def imported(self, store: Store) -> list[tuple[str, str, str]]:
        return BundleState(store).imports()

    def last_import(self, store: Store) -> dict[str, object] | None:
        log = BundleState(store).import_log()
        return log[-1] if log else None
