"""Importing bundles inside the gap: verify and ingest in one pass, then record, then republish.

Blobs are renamed into the store only after their hash checks (content addressing makes a partial
import harmless: the blobs in are correct, and no snapshot points at anything missing). The
snapshot is recorded only when the whole bundle verified; a rerun of an interrupted import
re-reads the bundle and finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from airgap_mirror.errors import StoreError
from airgap_mirror.store import Ingest, Store
from airgap_mirror.store.snapshots import Snapshot

from .errors import BaseMissingError, ReplayError
from .format import Manifest
from .keys import PublicKey
from .reader import NullSink, read_bundle
from .state import BundleState

__all__ = ["StoreSink", "import_bundle", "verify_bundle", "ImportResult"]


class StoreSink:
    """Streams each blob into the store through Store.ingest (bounded by its listed size, renamed in
    only once the reader has checked its sha256); a blob already there is not written.

    The reader hashes each blob as it streams, so the store does not hash it again; the fsync and
    rename of each blob run on a small pool while the next blob decompresses. `finish()` waits for
    all of them (the snapshot is recorded only after), and raises the first failure."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._blob: Ingest | None = None
        self.written = 0
        self.present = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future[None]] = []

    def begin(self, sha256: str, size: int) -> None:
        if self.store.has_blob(sha256):
            self.present += 1
            return
        self._blob = self.store.ingest(expect=sha256, max_size=size, what=f"blob {sha256}",
                                       source="its manifest entry", hashed_by_caller=True).__enter__()

    def write(self, data: bytes) -> None:
        if self._blob is not None:
            self._blob.write(data)

    def commit(self) -> None:
        blob, self._blob = self._blob, None
        if blob is None:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="bundle-commit")
        failed = [f.exception() for f in self._pending if f.done() and f.exception() is not None]
        if failed:  # a full disk, say: stop now rather than after the whole bundle
            self._blob = blob
            raise failed[0]  # type: ignore[misc]
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(self._commit, blob))
        self.written += 1

    @staticmethod
    def _commit(blob: Ingest) -> None:
        try:
            blob.commit()
        finally:
            blob.__exit__(None, None, None)

    def abort(self) -> None:
        if self._blob is not None:
            self._blob.__exit__(None, None, None)
        self._blob = None
        self._drain(raise_first=False)

    def finish(self) -> None:
        self._drain(raise_first=True)

    def _drain(self, *, raise_first: bool) -> None:
        pending, self._pending = self._pending, []
        errors = [exc for f in pending if (exc := f.exception()) is not None]
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if errors and raise_first:
            raise errors[0]


@dataclass(slots=True, kw_only=True)
class ImportResult:
    manifest: Manifest
    signer: str
    current: bool
    blobs_written: int
    blobs_present: int
    already_imported: bool = False

    def to_dict(self) -> dict[str, object]:
        m = self.manifest
        return {"bundle_id": m.bundle_id, "signer": self.signer, "sequence": m.sequence, "mode": m.mode,
                "snapshot": m.snapshot_id, "base": m.base_snapshot, "current": self.current,
                "blobs_written": self.blobs_written, "blobs_present": self.blobs_present,
                "already_imported": self.already_imported, "summary": m.summary}


def verify_bundle(paths: Sequence[Path], trusted: Sequence[PublicKey],
                  on_bytes: Callable[[int], None] = lambda n: None) -> tuple[Manifest, PublicKey]:
    return read_bundle(paths, trusted, NullSink(), on_bytes=on_bytes)


def _needs(state: BundleState, store: Store, manifest: Manifest, missing: list[str]) -> str:
    """What to tell the inside admin when a delta cannot apply here: what this store holds, and the
    bundle to ask the outside for."""
    here = state.inside_site()
    log = state.import_log()
    last = log[-1] if log else None
    cur = store.ref("current")
    have = (f"this store{f' (site {here})' if here else ''} holds snapshot {cur[:16]}"
            + (f" from bundle {last['bundle_id']} (sequence {last['sequence']})" if last else "")) if cur else "this store holds no snapshot"
    site = here or manifest.site
    ask = (f"outside, run `mirror bundle create --site {site} --since {cur[:16]}` or carry this store's receipt"
           f" (`mirror bundle receipt`) out for `mirror bundle create --since-receipt`" if cur else
           f"import the full bundle for site {site} first (then the deltas after it)")
    return (f"bundle {manifest.bundle_id} is a delta on snapshot {missing[0][:16]} (made for site {manifest.site}),"
            f" which this store does not have; {have}: {ask}")


def import_bundle(store: Store, paths: Sequence[Path], trusted: Sequence[PublicKey], *, allow_older: bool = False,
                  publish: bool = True, any_site: bool = False,
                  on_bytes: Callable[[int], None] = lambda n: None) -> ImportResult:
    state = BundleState(store)
    seen: dict[str, object] = {}
    here = state.inside_site()

    def admissible(manifest: Manifest, signer: PublicKey) -> None:
        # Checked once the signature holds and before any blob is written (the store lock keeps it true).
        done = seen["done"] = state.imported(manifest.bundle_id)
        last = seen["last"] = state.last_sequence(signer.id_hex)
        if done is None and manifest.sequence <= last and not allow_older:
            raise ReplayError(f"bundle {manifest.bundle_id} has sequence {manifest.sequence} from key {signer.id_hex},"
                              f" not newer than {last} already imported: refused as a replay"
                              " (--allow-older imports it without making it current)")
        if here is not None and manifest.site != here and not any_site and done is None:
            raise BaseMissingError(
                f"bundle {manifest.bundle_id} was made for site {manifest.site!r}; this store is site {here!r}"
                f" (its bundles carry on from what it holds). Ask for a bundle for {here!r}:"
                f" `mirror bundle create --site {here} --since last-exported:{here}` outside, or pass --any-site"
                " if this store now takes that site's bundles")
        missing = [s for s in manifest.requires if not (store.snapshots / f"{s}.json").is_file()]
        if missing:
            raise BaseMissingError(_needs(state, store, manifest, missing))

    sink = StoreSink(store)
    manifest, signer = read_bundle(paths, trusted, sink, before_blobs=admissible, on_bytes=on_bytes)
    snap = Snapshot.from_dict(manifest.snapshot, id=manifest.snapshot_id)
    missing = [s for s in snap.blobs() if not store.has_blob(s)]
    if missing:
        raise StoreError(f"after import, {len(missing)} blobs of snapshot {manifest.snapshot_id[:16]} are missing"
                         f" (first {missing[0]}): the base snapshot's files are damaged; run `mirror verify`")
    done, last = seen["done"], int(seen["last"])  # type: ignore[call-overload]
    # A new bundle becomes current if it is newer; a re-import keeps whatever is current.
    current = manifest.sequence > last if done is None else store.ref("current") == manifest.snapshot_id
    files, nbytes = snap.counts()  # the same count the sync outside recorded
    summary = {"apps": len(snap.apps), "targets": len(snap.target_ids()), "files": files, "bytes": nbytes,
               "bundle": manifest.bundle_id}
    # The tree it serves is built (and switched in) before `current` moves and the sequence is
    # used: a snapshot that cannot be published leaves both as they were.
    store.put_snapshot(manifest.snapshot, origin="import", summary=summary, make_current=False,
                       created=manifest.created)
    if publish and current:
        from airgap_mirror.publish import publish as do_publish

        do_publish(store, manifest.snapshot_id)
    if current:
        store.set_ref("current", manifest.snapshot_id)
    if done is None:
        state.record_import(bundle_id=manifest.bundle_id, signer=signer.id_hex, sequence=manifest.sequence,
                            snapshot_id=manifest.snapshot_id, current=current, site=manifest.site)
    return ImportResult(manifest=manifest, signer=signer.id_hex, current=current, blobs_written=sink.written,
                        blobs_present=sink.present, already_imported=done is not None)
