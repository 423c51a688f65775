"""Store health: verify (re-hash every blob, check catalog, snapshots and the published tree agree)
and garbage collection (remove what no kept snapshot needs)."""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap_mirror.resolve.memo import expired_records
from airgap_mirror.store import Store
from airgap_mirror.store.model import PythonFile, SectionFile
from airgap_mirror.store.snapshots import Snapshot

__all__ = ["verify_store", "VerifyReport", "collect_garbage", "GcReport", "repair_store", "RepairReport"]


@dataclass(slots=True)
class VerifyReport:
    blobs_checked: int = 0
    bytes_checked: int = 0
    corrupt: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)  # sha → snapshots (and apps) needing it
    bad_snapshots: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.corrupt or self.missing or self.bad_snapshots or self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "blobs_checked": self.blobs_checked, "bytes_checked": self.bytes_checked,
                "corrupt": self.corrupt, "missing": self.missing, "bad_snapshots": self.bad_snapshots,
                "problems": self.problems}


def _hash_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    h = hashlib.sha256()
    n = 0
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        while k := fh.readinto(buf):
            h.update(view[:k])
            n += k
    return h.hexdigest(), n


def _users(snapshot: Snapshot, sha: str) -> list[str]:
    """The apps whose files or locks include `sha`."""
    return sorted(name for name, app in snapshot.apps.items()
                  if any(sha in t.files or sha in (t.pylock, t.requirements_lock) for _tid, t in app.all_targets()))


def verify_store(store: Store, *, jobs: int = 0, on_bytes: Callable[[int], None] = lambda n: None) -> VerifyReport:
    report = VerifyReport()
    blobs = [p for p in store.blobs.glob("??/*") if p.is_file()]
    workers = jobs or min(8, (os.cpu_count() or 2))
    # hashlib releases the GIL on large updates: threads hash files in parallel.
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        for path, (digest, size) in zip(blobs, pool.map(_hash_file, blobs), strict=False):
            report.blobs_checked += 1
            report.bytes_checked += size
            on_bytes(size)
            if digest != path.name or path.parent.name != path.name[:2]:
                report.corrupt.append(path.name)
    present = {p.name for p in blobs}
    for snap_path in sorted(store.snapshots.glob("*.json")):
        sid = snap_path.stem
        data = snap_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sid:
            report.bad_snapshots.append(sid)
            continue
        try:
            snapshot = Snapshot.from_dict(json.loads(data))
        except ValueError as exc:
            report.problems.append(f"snapshot {sid[:16]} is not one this version can read ({exc})")
            continue
        for sha in snapshot.blobs():
            if sha not in present:
                report.missing.setdefault(sha, []).append(f"{sid[:16]} ({', '.join(_users(snapshot, sha)) or 'shared'})")
    cur = store.ref("current")
    if cur and not (store.snapshots / f"{cur}.json").is_file():
        report.problems.append(f"refs/current names snapshot {cur}, which is missing")
    with store.db() as db:
        rows = db.execute("SELECT sha256 FROM blobs").fetchall()
    lost = [r[0] for r in rows if r[0] not in present and r[0] not in report.missing]
    if lost:
        report.problems.append(f"{len(lost)} blobs in the catalog are not on disk (no snapshot needs them; `mirror gc` forgets them)")
    _check_published(store, report)
    return report


def _tree_files(tree: os.PathLike[str], snapshot: Snapshot) -> list[tuple[str, str]]:
    """(path, sha256) of every distribution file of `snapshot` that the published `tree` holds,
    Python's, APT's and conda's alike: found by file name (a Python file's folder is its sha256)."""
    files = snapshot.files()
    by_name: dict[str, list[str]] = {}
    for sha, meta in files.items():
        if meta.filename:
            by_name.setdefault(meta.filename, []).append(sha)
    out = []
    for folder, _dirs, names in os.walk(tree):
        for name in names:
            shas = by_name.get(name)
            if not shas:
                continue
            here = os.path.basename(folder)
            found = here if here in shas else shas[0] if len(shas) == 1 else None
            if found is not None:
                out.append((os.path.join(folder, name), found))
    return out


def _damaged_copies(store: Store, copies: list[tuple[str, str]], snapshot: Snapshot) -> list[tuple[str, str]]:
    """Of a tree's `copies` (`_tree_files`), those that are not their blob's bytes: the blob's own
    inode is whole once the blob is (verify hashes it); a file with another inode (a copy, or the
    inode of a blob since replaced) is hashed."""
    files = snapshot.files()
    bad = []
    for path, sha in copies:
        try:
            st = os.stat(path)
        except OSError:
            bad.append((path, sha))
            continue
        try:
            bst = store.blob_path(sha).stat()
            if (st.st_dev, st.st_ino) == (bst.st_dev, bst.st_ino):
                continue
        except OSError:
            pass
        size = files[sha].size
        if (size is not None and st.st_size != size) or _hash_file(path)[0] != sha:
            bad.append((path, sha))
    return bad


def relink_published(store: Store) -> list[str]:
    """Every published tree's copy of a file that is not its blob's bytes, put back from the blob
    (hard link, else copy; renamed over the old one): what `verify --repair` does once the blobs are
    whole, so what clients get is whole too. The paths mended, relative to the published folder."""
    from airgap_mirror.publish import link_or_copy, tree_snapshot

    mended = []
    trees = store.published / "trees"
    for tree in sorted(trees.iterdir()) if trees.is_dir() else []:
        sid = tree_snapshot(tree)
        if sid is None or not (store.snapshots / f"{sid}.json").is_file():
            continue
        snap = store.snapshot(sid)
        for path, sha in _damaged_copies(store, _tree_files(tree, snap), snap):
            if not store.has_blob(sha):
                continue
            tmp = Path(f"{path}.relink-{os.getpid()}")
            link_or_copy(store.blob_path(sha), tmp)
            os.replace(tmp, path)
            mended.append(os.path.relpath(path, store.published))
    return mended


def _check_published(store: Store, report: VerifyReport) -> None:
    """The served tree: it names an existing snapshot, and holds each of its files whole (Python,
    APT and conda files: by inode where it links the blob, else by hash)."""
    from airgap_mirror.publish import current_tree, published_snapshot

    link = store.published / "current"
    if link.is_symlink() and current_tree(store) is None:
        report.problems.append("published/current points at a tree that does not exist: run `mirror publish`")
        return
    tree, sid = current_tree(store), published_snapshot(store)
    if tree is None or sid is None:
        return
    if not (store.snapshots / f"{sid}.json").is_file():
        report.problems.append(f"the published tree serves snapshot {sid[:16]}, which the store does not have: run `mirror publish`")
        return
    if sid in report.bad_snapshots:
        return
    snap = store.snapshot(sid)
    copies = _tree_files(tree, snap)  # (one walk of the tree for both questions)
    bad = [os.path.basename(p) for p, _ in _damaged_copies(store, copies, snap)]
    held = {sha for _, sha in copies}
    bad += [m.filename for sha, m in snap.python.files.items() if sha not in held]
    if bad:
        report.problems.append(f"the published tree of snapshot {sid[:16]} lacks or has a damaged copy of {len(bad)} "
                               f"files ({', '.join(sorted(bad)[:3])}{', ...' if len(bad) > 3 else ''}): "
                               "`mirror verify --repair` puts them back from the store")


@dataclass(slots=True)
class GcReport:
    kept_snapshots: list[str] = field(default_factory=list)
    removed_snapshots: list[str] = field(default_factory=list)
    removed_blobs: int = 0
    removed_bytes: int = 0
    removed_temp: int = 0
    removed_records: int = 0  # resolution records too old for a sync to use
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "kept_snapshots": self.kept_snapshots, "removed_snapshots": self.removed_snapshots,
                "removed_blobs": self.removed_blobs, "removed_bytes": self.removed_bytes, "removed_temp": self.removed_temp,
                "removed_records": self.removed_records}


def collect_garbage(store: Store, *, keep: int = 5, dry_run: bool = False) -> GcReport:
    """Keep the newest `keep` snapshots, the current one, the published one and each site's last exported one;
    remove every other snapshot, every blob none of the kept ones references, and leftover temp files.
    Call with the store lock held."""
    from airgap_mirror.interfaces import bundle_ledger
    from airgap_mirror.maintenance.history import list_snapshots
    from airgap_mirror.publish import published_snapshot

    report = GcReport(dry_run=dry_run)
    snaps = [s["id"] for s in list_snapshots(store)]
    keep_ids = set(snaps[-keep:]) if keep > 0 else set()
    keep_ids |= {x for x in (store.ref("current"), published_snapshot(store)) if x}
    ledger = bundle_ledger()
    keep_ids |= set(ledger.delta_bases(store) if ledger is not None else [])  # each site's next delta is based on it
    needed: set[str] = set()
    for sid in keep_ids:
        if (store.snapshots / f"{sid}.json").is_file():
            needed.update(store.snapshot(sid).blobs())
    report.kept_snapshots = sorted(keep_ids)
    gone_snaps = [sid for sid in snaps if sid not in keep_ids]
    # Snapshot files the catalog does not name (a gc or a sync killed half-way left them): nothing
    # serves or bundles them, and kept they would name blobs this gc removes, failing verify for good.
    with store.db() as db:
        catalogued = {r[0] for r in db.execute("SELECT id FROM snapshots").fetchall()}
    gone_snaps += [p.stem for p in sorted(store.snapshots.glob("*.json"))
                   if p.stem not in catalogued and p.stem not in keep_ids and p.stem not in gone_snaps]
    report.removed_snapshots = gone_snaps
    doomed = []
    present: set[str] = set()
    for path in store.blobs.glob("??/*"):
        present.add(path.name)
        if path.name not in needed:
            report.removed_blobs += 1
            report.removed_bytes += path.stat().st_size
            doomed.append(path)
    if not dry_run:
        # Crash-safe at every step: (1) the snapshot files go first: killed here, the catalog still
        # names them but they are gone, and the next gc forgets those rows; their blobs are all still
        # there. (2) The catalog forgets snapshots and blobs in one transaction. (3) The blob files go
        # last: killed here, only files the catalog does not name are left, which the next gc removes.
        # (The catalog forgot first and a kill before the snapshot files went left snapshots naming
        # blobs the next gc removed: `verify` failed for good.)
        for sid in gone_snaps:
            (store.snapshots / f"{sid}.json").unlink(missing_ok=True)
        with store.db() as db:
            db.executemany("DELETE FROM snapshots WHERE id = ?", [(sid,) for sid in gone_snaps])
            db.executemany("DELETE FROM snapshots WHERE id = ?",
                           [(r[0],) for r in db.execute("SELECT id FROM snapshots").fetchall()
                            if not (store.snapshots / f"{r[0]}.json").is_file()])
            names = [(p.name,) for p in doomed]
            names += [(r[0],) for r in db.execute("SELECT sha256 FROM blobs").fetchall()
                      if r[0] not in present and r[0] not in needed]  # rows a killed gc left behind
            db.executemany("DELETE FROM blobs WHERE sha256 = ?", names)
            db.executemany("DELETE FROM pyfiles WHERE sha256 = ?", names)
        for path in doomed:
            path.unlink(missing_ok=True)
    for tmp in store.tmp.iterdir():  # leftovers of killed runs (the lock guarantees no writer is active)
        report.removed_temp += 1
        if not dry_run:
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    for record in expired_records(store.cache):
        report.removed_records += 1
        if not dry_run:
            record.unlink(missing_ok=True)
    return report


@dataclass(slots=True)
class RepairReport:
    refetched: list[str] = field(default_factory=list)
    restored_from_cache: list[str] = field(default_factory=list)
    removed_corrupt: list[str] = field(default_factory=list)
    relinked: list[str] = field(default_factory=list)  # published copies put back from their blob
    advice: list[str] = field(default_factory=list)  # what a human must do for the rest

    @property
    def ok(self) -> bool:
        return not self.advice

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "refetched": self.refetched, "restored_from_cache": self.restored_from_cache,
                "removed_corrupt": self.removed_corrupt, "relinked": self.relinked, "advice": self.advice}


def _file_records(store: Store) -> dict[str, PythonFile | SectionFile]:
    """sha → what some snapshot says of the file (filename, size, upstream url), the newest snapshot's."""
    out: dict[str, PythonFile | SectionFile] = {}
    for snap_path in sorted(store.snapshots.glob("*.json"), key=lambda p: p.stat().st_mtime):
        try:
            out.update(Snapshot.from_dict(json.loads(snap_path.read_bytes())).files())
        except ValueError:
            continue
    return out


def _importing_bundles(store: Store, sha: str) -> list[str]:
    """Imported bundles whose snapshot needs `sha`, as the bundle side's ledger records them."""
    from airgap_mirror.interfaces import bundle_ledger

    ledger = bundle_ledger()
    rows = ledger.imported(store) if ledger is not None else []
    out = []
    for bundle_id, sid, when in rows:
        path = store.snapshots / f"{sid}.json"
        if path.is_file() and sha in Snapshot.from_dict(json.loads(path.read_bytes())).blobs():
            out.append(f"bundle {bundle_id[:16]} (imported {when}, snapshot {sid[:16]})")
    return out


def repair_store(store: Store, report: VerifyReport, *, concurrency: int = 8) -> RepairReport:
    """Put back what verify found corrupt or missing: from upstream (a synced store), from the build
    cache (git and local packages), else say which bundle to re-import. Call with the store lock held."""
    from airgap_mirror.fetch import FetchItem, fetch_all

    rep = RepairReport()
    for sha in report.corrupt:
        store.blob_path(sha).unlink(missing_ok=True)  # wrong bytes under this name: never serve them
        rep.removed_corrupt.append(sha)
    wanted = list(dict.fromkeys([*report.corrupt, *report.missing]))
    if not wanted:
        rep.relinked = relink_published(store)
        return rep
    records = _file_records(store)
    items: list[FetchItem] = []
    for sha in wanted:
        meta = records.get(sha)
        if meta is None:
            bundles = _importing_bundles(store, sha)
            rep.advice.append(f"{sha[:16]}: a lock or metadata file; " + (
                f"re-import {bundles[0]}, the first bundle that brought it: `mirror bundle import BUNDLE`"
                if bundles else "run `mirror sync` to record it again"))
            continue
        url = str((meta.url if isinstance(meta, PythonFile) else meta.get("url")) or "")
        filename = meta.filename or sha
        if url.startswith(("http://", "https://")) and not _importing_bundles(store, sha):
            items.append(FetchItem(url=url, sha256=sha, filename=filename, size=meta.size))
            continue
        cached = next((p for p in (store.cache / "built").glob(f"*/{filename}")
                       if p.is_file() and _hash_file(p)[0] == sha), None)
        if cached is not None:
            items.append(FetchItem(url=cached.as_uri(), sha256=sha, filename=filename, size=meta.size))
            continue
        bundles = _importing_bundles(store, sha)
        rep.advice.append(f"{filename} ({sha[:16]}): " + (
            f"re-import {bundles[0]}, the first bundle that brought it (a later delta does not carry it again):"
            " `mirror bundle import BUNDLE`" if bundles
            else f"its source ({url or 'unknown'}) cannot be fetched again here: re-run `mirror sync` for its app"))
    if items:
        result = fetch_all(items, store, concurrency=concurrency)
        for item in result.fetched:
            (rep.restored_from_cache if item.url.startswith("file:") else rep.refetched).append(item.filename)
        for item, exc in result.failed:
            rep.advice.append(f"{item.filename} ({item.sha256[:16]}): re-fetch failed: {exc}")
    rep.relinked = relink_published(store)  # the served trees still hold the damaged inode: put the blob back there
    return rep
