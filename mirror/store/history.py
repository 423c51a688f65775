"""Snapshot history and review: listing snapshots and the difference between two, per app and target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mirror.errors import InputError
from mirror.store import Store

__all__ = ["list_snapshots", "resolve_snapshot", "last_exported", "diff_snapshots", "SnapshotDiff"]


def last_exported(store: Store) -> str | None:
    """The snapshot of the newest bundle this store exported (the base of the next delta), if any,
    as the bundle side's ledger records it."""
    from mirror.interfaces import bundle_ledger

    ledger = bundle_ledger()
    return ledger.last_exported(store) if ledger is not None else None


def list_snapshots(store: Store) -> list[dict[str, Any]]:
    import json

    with store.db() as db:
        rows = db.execute("SELECT id, created, origin, summary FROM snapshots ORDER BY created, rowid").fetchall()
    current = store.ref("current")
    return [{"id": r[0], "created": r[1], "origin": r[2], "current": r[0] == current, **json.loads(r[3] or "{}")}
            for r in rows if (store.snapshots / f"{r[0]}.json").is_file()]


def resolve_snapshot(store: Store, name: str) -> str:
    """`current`, `previous` (the one before current), `last-exported`, or a unique id prefix → id."""
    if name == "current":
        sid = store.ref("current")
        if sid is None:
            raise InputError("the store has no snapshot yet")
        return sid
    if name == "previous":
        ids = [s["id"] for s in list_snapshots(store)]
        cur = store.ref("current")
        before = ids[: ids.index(cur)] if cur in ids else ids[:-1]
        if not before:
            raise InputError("there is no snapshot before the current one")
        return before[-1]
    if name == "last-exported":
        sid = last_exported(store)
        if sid is None:
            raise InputError("this store has not exported a bundle yet")
        return sid
    matches = [p.stem for p in store.snapshots.glob(f"{name.lower()}*.json")] if name.isalnum() else []
    if len(matches) != 1:
        raise InputError(f"{name!r} names {'no' if not matches else len(matches)} snapshots: give more of the id"
                         " (see `mirror snapshots`), or current / previous / last-exported")
    return matches[0]


@dataclass(slots=True)
class SnapshotDiff:
    old: str
    new: str
    changes: dict[str, dict[str, dict[str, list[Any]]]] = field(default_factory=dict)  # app → target → kind → items
    bytes_to_carry: int = 0
    files_to_carry: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "apps": self.changes, "bytes_to_carry": self.bytes_to_carry,
                "files_to_carry": self.files_to_carry}


def diff_snapshots(store: Store, old_id: str, new_id: str) -> SnapshotDiff:
    """Per app and target: Python and Debian packages added, removed, changed (old → new version)."""
    old, new = store.snapshot(old_id), store.snapshot(new_id)
    diff = SnapshotDiff(old=old_id, new=new_id, changes=new.diff(old))
    for sha, size in new.minus(old).items():
        diff.files_to_carry += 1
        diff.bytes_to_carry += size if size is not None else (store.blob_size(sha) if store.has_blob(sha) else 0)
    return diff
