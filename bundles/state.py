"""What a store remembers about bundles: sequences per signing key, exports, imports, trusted keys.

Kept in the store's catalog (tables of their own) and, for trusted keys, as minisign .pub files
under `trust/` so an admin can read and audit them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from mirror.store import Store

from .errors import KeyFormatError
from .keys import PublicKey

__all__ = ["BundleState", "ImportRecord", "Ledger"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bundle_exports (
    bundle_id TEXT PRIMARY KEY, signer TEXT NOT NULL, sequence INTEGER NOT NULL, snapshot_id TEXT NOT NULL,
    base_snapshot TEXT, created TEXT NOT NULL, path TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bundle_imports (
    bundle_id TEXT NOT NULL, signer TEXT NOT NULL, sequence INTEGER NOT NULL, snapshot_id TEXT NOT NULL,
    imported TEXT NOT NULL, current INTEGER NOT NULL, PRIMARY KEY (bundle_id)
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class ImportRecord:
    bundle_id: str
    signer: str
    sequence: int
    snapshot_id: str
    imported: str


class BundleState:
    def __init__(self, store: Store) -> None:
        self.store = store
        with store.db() as db:
            db.executescript(_SCHEMA)

    # -- outside: sequences and exports --------------------------------------------------------
    def next_sequence(self, signer: str) -> int:
        with self.store.db() as db:
            row = db.execute("SELECT MAX(sequence) FROM bundle_exports WHERE signer = ?", (signer,)).fetchone()
        return (row[0] or 0) + 1

    def record_export(self, *, bundle_id: str, signer: str, sequence: int, snapshot_id: str, base: str | None,
                      path: Path) -> None:
        with self.store.db() as db:
            db.execute("INSERT OR REPLACE INTO bundle_exports VALUES (?,?,?,?,?,?,?)",
                       (bundle_id, signer, sequence, snapshot_id, base, _now(), str(path)))

    def last_exported(self) -> str | None:
        """The snapshot of the newest bundle written here (the base of the next delta), if any."""
        with self.store.db() as db:
            row = db.execute("SELECT snapshot_id FROM bundle_exports ORDER BY created DESC, sequence DESC LIMIT 1").fetchone()
        return row[0] if row else None

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

    def record_import(self, *, bundle_id: str, signer: str, sequence: int, snapshot_id: str, current: bool) -> None:
        with self.store.db() as db:
            db.execute("INSERT OR REPLACE INTO bundle_imports VALUES (?,?,?,?,?,?)",
                       (bundle_id, signer, sequence, snapshot_id, _now(), int(current)))

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
    try:
        return PublicKey.from_text(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise KeyFormatError(f"public key file {path} does not exist") from exc
    except UnicodeDecodeError as exc:
        raise KeyFormatError(f"{path} is not a minisign public key") from exc


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Ledger:
    """The bundle side's answer to the core's `BundleLedger` interface (mirror.interfaces)."""

    def last_exported(self, store: Store) -> str | None:
        return BundleState(store).last_exported()

    def imported(self, store: Store) -> list[tuple[str, str, str]]:
        return BundleState(store).imports()
