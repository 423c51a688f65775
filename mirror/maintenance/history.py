"""Snapshot history and review: listing snapshots and the difference between two, per app and target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from airgap_mirror.errors import InputError, MirrorError
from airgap_mirror.store import Store

__all__ = ["SNAPSHOT_NAMES", "list_snapshots", "resolve_snapshot", "last_exported", "diff_snapshots", "SnapshotDiff"]


def last_exported(store: Store, site: str | None = None) -> str | None:
    """The snapshot a destination site was last sent or holds (the base of its next delta), if any,
    as the bundle side's ledger records it."""
    from airgap_mirror.interfaces import bundle_ledger

    ledger = bundle_ledger()
    return ledger.last_exported(store, site) if ledger is not None else None


def list_snapshots(store: Store) -> list[dict[str, Any]]:
    import json

    with store.db() as db:
        rows = db.execute("SELECT id, created, origin, summary FROM snapshots ORDER BY created, rowid").fetchall()
    current = store.ref("current")
    return [{"id": r[0], "created": r[1], "origin": r[2], "current": r[0] == current, **json.loads(r[3] or "{}")}
            for r in rows if (store.snapshots / f"{r[0]}.json").is_file()]


SNAPSHOT_NAMES = "an id or unique prefix, current, previous, last-exported[:SITE], or a bundle file"


def resolve_snapshot(store: Store, name: str) -> str:
    """The one way every command names a snapshot: an id or unique id prefix, `current`, `previous`
    (the one before current), `last-exported` or `last-exported:SITE` (what that site was last sent or
    holds), or a bundle file (the snapshot it brings). A bad name is an InputError (one line, exit 2)."""
    from pathlib import Path

    from airgap_mirror.interfaces import bundle_ledger

    name = name.strip()
    if name == "current":
        sid = store.ref("current")
        if sid is None:
            raise InputError("the store has no snapshot yet: run `mirror sync` (or import a bundle) first")
        return sid
    if name == "previous":
        ids: list[str] = [s["id"] for s in list_snapshots(store)]
        cur = store.ref("current")
        before = ids[: ids.index(cur)] if cur in ids else ids[:-1]
        if not before:
            raise InputError("there is no snapshot before the current one")
        return before[-1]
    if name == "last-exported" or name.startswith("last-exported:"):
        site = name.partition(":")[2] or None
        sid = last_exported(store, site)
        if sid is None:
            raise InputError(f"this store has not exported a bundle{f' for site {site}' if site else ''} yet")
        return _known(store, sid, name)
    if name and (name.isalnum() and len(name) <= 64):
        matches = sorted({p.stem for p in store.snapshots.glob(f"{name.lower()}*.json")})
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InputError(f"{name!r} is the start of {len(matches)} snapshot ids: give more of it (see `mirror snapshots`)")
    ledger = bundle_ledger()
    path = Path(name)
    if ledger is not None and name and (path.is_file() or path.with_name(path.name + ".001").is_file()):
        try:
            sid = ledger.bundle_snapshot(path)
        except MirrorError as exc:
            raise InputError(f"{name}: {exc}") from exc
        if sid:
            return sid
    raise InputError(f"{name[:100]!r} names no snapshot: give {SNAPSHOT_NAMES} (see `mirror snapshots`)")


def _known(store: Store, sid: str, name: str) -> str:
    if not (store.snapshots / f"{sid}.json").is_file():
        raise InputError(f"{name} is snapshot {sid[:16]}, which this store no longer has (removed by gc?)")
    return sid


@dataclass(slots=True)
class SnapshotDiff:
    old: str
    new: str
    changes: dict[str, dict[str, dict[str, list[Any]]]] = field(default_factory=dict)  # app → target → kind → items
    bytes_to_carry: int = 0
    files_to_carry: int = 0  # distribution files (the count every command shows), not locks or metadata
    apps_added: list[str] = field(default_factory=list)
    apps_removed: list[str] = field(default_factory=list)
    targets_added: list[str] = field(default_factory=list)
    targets_removed: list[str] = field(default_factory=list)
    statuses: list[list[str]] = field(default_factory=list)  # [project, old, new]: PEP 792 status changes

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "apps": self.changes, "bytes_to_carry": self.bytes_to_carry,
                "files_to_carry": self.files_to_carry, "apps_added": self.apps_added, "apps_removed": self.apps_removed,
                "targets_added": self.targets_added, "targets_removed": self.targets_removed,
                "project_statuses": self.statuses}

    @property
    def empty(self) -> bool:
        return not (self.changes or self.apps_added or self.apps_removed or self.targets_added or self.targets_removed
                    or self.statuses)


def diff_snapshots(store: Store, old_id: str, new_id: str) -> SnapshotDiff:
    """Per app and target: Python and Debian packages added, removed, changed (old → new version)."""
    old, new = store.snapshot(old_id), store.snapshot(new_id)
    diff = SnapshotDiff(old=old_id, new=new_id, changes=new.diff(old),
                        apps_added=sorted(set(new.apps) - set(old.apps)), apps_removed=sorted(set(old.apps) - set(new.apps)),
                        targets_added=sorted(set(new.target_ids()) - set(old.target_ids())),
                        targets_removed=sorted(set(old.target_ids()) - set(new.target_ids())),
                        statuses=new.status_changes(old))
    files = new.files()
    for sha, size in new.minus(old).items():
        diff.files_to_carry += sha in files
        diff.bytes_to_carry += size if size is not None else (store.blob_size(sha) if store.has_blob(sha) else 0)
    return diff
