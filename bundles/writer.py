"""Creating a bundle: the snapshot's blobs (all, or those a base lacks) streamed into one signed,
zstd-compressed tar, optionally split into parts, each with a detached minisign signature.

Nothing appears under a final name until the whole bundle is written: parts are written as
`.partial` files and renamed at the end.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import queue
import re
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import zstandard

from airgap_mirror.errors import InputError, StoreError
from airgap_mirror.maintenance.history import resolve_snapshot
from airgap_mirror.store import Store
from airgap_mirror.store.snapshots import Snapshot

from . import DEFAULT_LEVEL, MAX_LEVEL, MIN_LEVEL
from .format import MANIFEST, SIGNATURE, blob_member, build_manifest
from .keys import SecretKey, sign, sign_digest
from .state import DEFAULT_SITE, BundleState, check_site

if TYPE_CHECKING:
    from .receipt import Receipt

__all__ = ["create_bundle", "CreateResult", "parse_size", "DEFAULT_LEVEL"]

_CHUNK = 1 << 20
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B?)?", re.I)


def parse_size(text: str) -> int:
    """`4G`, `700M`, `4.7GB`, `1GiB`, `123456` → bytes (binary multiples)."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise InputError(f"--split {text!r}: write a size such as 4G, 700M or 1048576")
    value = float(m.group(1)) * (1024 ** " KMGT".index((m.group(2) or " ").upper()))
    if value < 1 << 20:
        raise InputError(f"--split {text!r}: parts under 1 MiB are not useful")
    return int(value)


@dataclass(slots=True, kw_only=True)
class CreateResult:
    bundle_id: str
    sequence: int
    signer: str
    snapshot_id: str
    base_snapshot: str | None
    site: str = DEFAULT_SITE
    sbom: str | None = None
    files: list[Path] = field(default_factory=list)
    signatures: list[Path] = field(default_factory=list)
    blobs: int = 0
    blob_bytes: int = 0
    bundle_bytes: int = 0
    # Of the blobs, the snapshot's distribution files: the count `sync`, `diff` and `snapshots` show
    # (the rest are locks, .metadata files and the SBOM).
    dist_files: int = 0

    def to_dict(self) -> dict[str, object]:
        return {"bundle_id": self.bundle_id, "sequence": self.sequence, "signer": self.signer,
                "snapshot": self.snapshot_id, "base": self.base_snapshot, "site": self.site, "sbom": self.sbom, "files": [str(p) for p in self.files],
                "signatures": [str(p) for p in self.signatures], "blobs": self.blobs, "dist_files": self.dist_files,
                "blob_bytes": self.blob_bytes, "bundle_bytes": self.bundle_bytes}


class _PartWriter:
    """A write-only sink over OUT (or OUT.001, OUT.002, ... when split), hashing each part and the whole.

    The compressor hands it chunks; one thread writes them and another hashes them (both release
    the GIL), so reading and compressing the next blobs overlaps writing and hashing the last ones.
    At most `_QUEUED` chunks wait in each queue, which bounds memory."""

    _QUEUED = 16

    def __init__(self, out: Path, split: int | None) -> None:
        self.out, self.split = out, split
        self.paths: list[Path] = []
        self.digests: list[bytes] = []  # blake2b-512 of each part
        # Unsplit, the one part is the whole: hashed once.
        self.whole = hashlib.blake2b(digest_size=64) if split is not None else None
        self.total = 0
        self._fh: BinaryIO | None = None
        self._error: BaseException | None = None
        self._threads = []
        self._queues: list[queue.Queue[bytes | None]] = []
        for work in (self._writer, self._hasher):
            q: queue.Queue[bytes | None] = queue.Queue(self._QUEUED)
            t = threading.Thread(target=self._run, args=(q, work()), name=f"bundle-{work.__name__}", daemon=True)
            self._queues.append(q)
            self._threads.append(t)
            t.start()

    def _final(self, n: int) -> Path:
        return self.out if self.split is None else self.out.with_name(f"{self.out.name}.{n:03d}")

    def _pieces(self, data: bytes, used: int) -> Iterator[tuple[memoryview, bool]]:
        """`data` cut at part boundaries: (piece, whether a new part starts with it), given `used`
        bytes already in the current part."""
        view = memoryview(data)
        while view:
            room = len(view) if self.split is None else self.split - used
            if room == 0:
                used = 0
                room = len(view) if self.split is None else self.split
                yield view[:0], True
            yield view[:room], False
            used += len(view[:room])
            view = view[room:]

    def _writer(self) -> Callable[[bytes | None], None]:
        used = 0
        synced = 0  # of the current part, bytes whose write-back has been started

        def step(data: bytes | None) -> None:
            nonlocal used, synced
            if data is None:
                if self._fh is not None:
                    os.fsync(self._fh.fileno())
                    self._fh.close()
                    self._fh = None
                return
            if self._fh is None:
                self._open(1)
            for piece, new_part in self._pieces(data, used):
                if new_part:
                    assert self._fh is not None
                    os.fsync(self._fh.fileno())
                    self._fh.close()
                    self._open(len(self.paths) + 1)
                    used = synced = 0
                    continue
                while piece:
                    assert self._fh is not None
                    n = self._fh.write(piece) or 0
                    piece = piece[n:]
                    used += n
                    self.total += n
                if used - synced >= _WRITEBACK:
                    assert self._fh is not None
                    _start_writeback(self._fh.fileno(), synced, used - synced)
                    synced = used
        return step

    def _open(self, n: int) -> None:
        path = self._final(n)
        self.paths.append(path)
        self._fh = open(path.with_name(path.name + ".partial"), "wb", buffering=0)

    def _hasher(self) -> Callable[[bytes | None], None]:
        used = 0
        part = hashlib.blake2b(digest_size=64)

        def step(data: bytes | None) -> None:
            nonlocal used, part
            if data is None:
                self.digests.append(part.digest())
                return
            for piece, new_part in self._pieces(data, used):
                if new_part:
                    self.digests.append(part.digest())
                    part, used = hashlib.blake2b(digest_size=64), 0
                    continue
                part.update(piece)
                if self.whole is not None:
                    self.whole.update(piece)
                used += len(piece)
        return step

    def _run(self, q: queue.Queue[bytes | None], step: Callable[[bytes | None], None]) -> None:
        while True:
            data = q.get()
            if self._error is None:
                try:
                    step(data)
                except BaseException as exc:  # noqa: BLE001  (handed to the producer, raised there)
                    self._error = exc
            if data is None:
                return

    def write(self, data: bytes) -> int:
        """Called by the compressor with each chunk of output."""
        if self._error is not None:
            raise self._error
        data = bytes(data)
        for q in self._queues:
            q.put(data)
        return len(data)

    def flush(self) -> None:
        pass

    def _stop(self) -> None:
        for q, t in zip(self._queues, self._threads, strict=False):
            if t.is_alive():
                q.put(None)
        for t in self._threads:
            t.join()

    def whole_digest(self) -> bytes:
        return self.whole.digest() if self.whole is not None else self.digests[0]

    def finish(self) -> list[tuple[Path, bytes]]:
        self._stop()
        if self._error is not None:
            raise self._error
        if not self.paths:  # nothing was written (cannot happen: a bundle has a manifest)
            self._open(1)
            assert self._fh is not None
            self._fh.close()
        return list(zip(self.paths, self.digests, strict=False))

    def abort(self) -> None:
        self._error = self._error or RuntimeError("aborted")
        self._stop()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        for n in range(1, len(self.paths) + 2):
            with contextlib.suppress(FileNotFoundError):
                p = self._final(n)
                p.with_name(p.name + ".partial").unlink()


_WRITEBACK = 32 << 20
_sync_file_range: Any = None


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range of the output to disk without waiting (Linux's sync_file_range), so the
    fsync at the end of a part has little left to wait for; elsewhere a no-op."""
    global _sync_file_range
    if _sync_file_range is None:
        _sync_file_range = False
        if sys.platform.startswith("linux"):
            import ctypes

            try:
                fn = ctypes.CDLL(None, use_errno=True).sync_file_range
                fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
                _sync_file_range = fn
            except (OSError, AttributeError):
                pass
    if _sync_file_range:
        _sync_file_range(fd, offset, length, 2)  # SYNC_FILE_RANGE_WRITE: start, do not wait


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o444
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def _zstd_workers(level: int) -> int:
    """zstd workers for a level. Up to level 9, none: the calling thread compresses (releasing the
    GIL) while two others hash and write, and on wheels and .debs, already compressed, that costs
    a third less CPU than one worker thread (measured: 1.4 against 2.0 CPU s a GB at level 3), with
    hashing, not compressing, the slowest stage. Above, zstd's workers take the cores the hashing
    and writing leave, one at least. Either way the output depends on the level only: zstd writes
    the same bytes for any number of workers from one up, so every machine writes the same bundle."""
    return 0 if level <= 9 else max(1, (os.cpu_count() or 2) - 2)


def _resolve_base(store: Store, since: str | None) -> str | None:
    """--since: any snapshot name `resolve_snapshot` takes (an id, last-exported[:SITE], a bundle file ...)."""
    if since is None:
        return None
    try:
        return resolve_snapshot(store, since)
    except InputError as exc:
        raise InputError(f"--since {since}: {exc}") from exc


def create_bundle(store: Store, key: SecretKey, out: Path, *, since: str | None = None, split: int | None = None,
                  sequence: int | None = None, snapshot_id: str | None = None, level: int = DEFAULT_LEVEL,
                  threads: int | None = None, site: str = DEFAULT_SITE, receipt: Receipt | None = None,
                  force: bool = False, allow_empty: bool = False,
                  on_bytes: Callable[[int], None] = lambda n: None) -> CreateResult:
    """Write the bundle of a snapshot (the current one by default) for a site; returns what was written.

    A delta is taken on `since`, or, given a receipt from the site, on everything the site holds (its
    current snapshot as the base): exactly the blobs that store lacks."""
    site = check_site(site)
    if not MIN_LEVEL <= level <= MAX_LEVEL:
        raise InputError(f"--level {level}: zstd levels run from {MIN_LEVEL} (fastest) to {MAX_LEVEL} (smallest)")
    sid = resolve_snapshot(store, snapshot_id) if snapshot_id else store.ref("current")
    if sid is None:
        raise StoreError(f"the store at {store.root} has no snapshot: run `mirror sync` first")
    snap = store.snapshot(sid)
    snapshot = snap.to_dict()
    base, requires, needed = _delta(store, snap, since, receipt)
    if base == sid and not allow_empty:
        raise InputError(f"nothing to carry: the site already has snapshot {sid[:16]} (the base of this delta); "
                         "sync first, or pass --allow-empty to send it again")
    from airgap_mirror.sbom import sbom_blob

    created = store.snapshot_created(sid) or datetime.now(UTC).isoformat(timespec="seconds")
    sbom = sbom_blob(store, snap, created=created)
    needed[sbom] = None
    blobs: list[tuple[str, int]] = []
    for sha in sorted(needed):
        if not store.has_blob(sha):
            raise StoreError(f"blob {sha} of snapshot {sid[:16]} is missing from the store: run `mirror sync` again")
        blobs.append((sha, store.blob_size(sha)))
    signer = key.public.id_hex
    state = BundleState(store)
    seq = _sequence(state, signer, sequence, force)
    manifest = build_manifest(snapshot=snapshot, snapshot_id=sid, created=created, signer=signer, sequence=seq,
                              blobs=blobs, base_snapshot=base, site=site, requires=requires, sbom=sbom)
    import json

    bundle_id = json.loads(manifest)["bundle_id"]
    comment = f"airgap-mirror bundle {bundle_id} seq {seq} snapshot {sid} {'delta' if base else 'full'} site {site}"
    signature = sign(key, manifest, comment).to_text().encode()

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sink = _PartWriter(out, split)
    try:
        _write_stream(store, sink, manifest, signature, blobs, level, threads, on_bytes)
        parts = sink.finish()
    except BaseException:
        sink.abort()
        raise
    result = CreateResult(bundle_id=bundle_id, sequence=seq, signer=signer, snapshot_id=sid, base_snapshot=base,
                          site=site, sbom=sbom,
                          blobs=len(blobs) - 1, blob_bytes=sum(n for s, n in blobs if s != sbom), bundle_bytes=sink.total,
                          dist_files=len(set(needed) & set(snap.files())))
    sigs = _signatures(key, bundle_id, out, parts, sink.whole_digest() if split is not None else None)
    result.files, result.signatures = _put_in_place(out, parts, sigs)
    state.record_export(bundle_id=bundle_id, signer=signer, sequence=seq, snapshot_id=sid, base=base, path=out, site=site)
    return result



def _delta(store: Store, snap: Snapshot, since: str | None, receipt: Receipt | None
           ) -> tuple[str | None, list[str], dict[str, int | None]]:
    """(base snapshot, snapshots the site must hold, blobs to carry): a delta on `since`, or on all a
    receipt says the site holds (its current snapshot the base), else everything (a full bundle)."""
    if receipt is None:
        base = _resolve_base(store, since)
        return base, [base] if base else [], snap.minus(store.snapshot(base) if base is not None else None)
    if since is not None:
        raise InputError("give --since or --since-receipt, not both")
    known = [s for s in receipt.snapshots if (store.snapshots / f"{s}.json").is_file()]
    if not known:
        raise InputError(f"the receipt of site {receipt.site} lists no snapshot this store still has: make a full"
                         " bundle for it (no --since)")
    held: set[str] = set()
    for s in known:
        held.update(store.snapshot(s).blobs())
    base = receipt.current if receipt.current in known else known[-1]
    return base, known, {sha: size for sha, size in snap.blobs().items() if sha not in held}


def _sequence(state: BundleState, signer: str, sequence: int | None, force: bool) -> int:
    """The bundle's sequence for this key: the next, or the one asked for (a replay only with force)."""
    seq = sequence if sequence is not None else state.next_sequence(signer)
    if not 0 < seq < 2**53:
        raise InputError(f"--sequence {seq}: a bundle sequence runs from 1 to 2**53")
    if sequence is not None and seq < state.next_sequence(signer) and not force:
        raise InputError(f"--sequence {seq}: key {signer} has already exported a bundle with sequence "
                         f"{state.next_sequence(signer) - 1}; inside it is refused as a replay. Leave --sequence out "
                         f"(the next is {state.next_sequence(signer)}), or pass --force for a one-off the site imports "
                         "with --allow-older")
    return seq


def _write_stream(store: Store, sink: _PartWriter, manifest: bytes, signature: bytes, blobs: list[tuple[str, int]],
                  level: int, threads: int | None, on_bytes: Callable[[int], None]) -> None:
    """The zstd-compressed tar stream: manifest, signature, then every blob, each read as it goes in
    (a blob that changed size meanwhile stops the bundle)."""
    cctx = zstandard.ZstdCompressor(level=level, threads=_zstd_workers(level) if threads is None else threads,
                                    write_checksum=True)
    with cctx.stream_writer(sink, closefd=False, write_size=_CHUNK) as zw:  # type: ignore[arg-type]
        tar = _TarStream(zw)
        tar.add(MANIFEST, manifest)
        tar.add(SIGNATURE, signature)
        buf = bytearray(_CHUNK)
        for sha, size in blobs:
            with open(store.blob_path(sha), "rb", buffering=0) as fh:
                tar.header(blob_member(sha), size)
                left = size
                while left:
                    n = fh.readinto(buf)
                    if not n:
                        raise StoreError(f"blob {sha} shrank while it was bundled: run `mirror verify`")
                    n = min(n, left)
                    zw.write(memoryview(buf)[:n])
                    on_bytes(n)
                    left -= n
                if fh.read(1):
                    raise StoreError(f"blob {sha} grew while it was bundled: run `mirror verify`")
                tar.pad(size)
        tar.close()


def _signatures(key: SecretKey, bundle_id: str, out: Path, parts: list[tuple[Path, bytes]],
                whole: bytes | None) -> list[tuple[Path, bytes]]:
    """Detached signatures of every part, and of the whole stream when it is split (`whole`: its
    digest), for `minisign -V` at the transfer station."""
    sigs: list[tuple[Path, bytes]] = []
    for i, (path, digest) in enumerate(parts, start=1):
        what = f"part {i} of {len(parts)}" if whole is not None else "bundle"
        sigs.append((path.with_name(path.name + ".minisig"),
                     sign_digest(key, digest, f"airgap-mirror {bundle_id} {what}").to_text().encode()))
    if whole is not None:
        sigs.append((out.with_name(out.name + ".minisig"),
                     sign_digest(key, whole, f"airgap-mirror {bundle_id} whole ({len(parts)} parts concatenated)").to_text().encode()))
    return sigs


def _put_in_place(out: Path, parts: list[tuple[Path, bytes]], sigs: list[tuple[Path, bytes]]
                  ) -> tuple[list[Path], list[Path]]:
    """The parts renamed in and the signatures written; what an earlier bundle left under the same name
    goes first: a 3-part bundle's .002/.003 (and their signatures) beside a new 1-part one would still
    verify with minisign, and `bundle verify` would read them as parts of the new one."""
    keep = {p for p, _ in parts} | {p for p, _ in sigs}
    for stale in [out, out.with_name(out.name + ".minisig"), *out.parent.glob(glob.escape(out.name) + ".[0-9][0-9][0-9]"),
                  *out.parent.glob(glob.escape(out.name) + ".[0-9][0-9][0-9].minisig")]:
        if stale not in keep:
            stale.unlink(missing_ok=True)
    for path, _ in parts:
        os.replace(path.with_name(path.name + ".partial"), path)
    for path, data in sigs:
        tmp = path.with_name(path.name + ".partial")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return [p for p, _ in parts], [p for p, _ in sigs]


class _TarStream:
    """A USTAR stream written straight to the compressor, byte for byte what tarfile's "w|" mode
    writes (headers from TarInfo.tobuf, data padded to 512 bytes, two zero blocks and padding to a
    10 KiB record at the end) without its small-chunk buffer, which copied every blob ~100 times."""

    def __init__(self, out: Any) -> None:
        self.out, self.offset = out, 0

    def header(self, name: str, size: int) -> None:
        buf = _tarinfo(name, size).tobuf(tarfile.USTAR_FORMAT, "utf-8", "surrogateescape")
        self.out.write(buf)
        self.offset += len(buf) + size

    def pad(self, size: int) -> None:
        rest = size % tarfile.BLOCKSIZE
        if rest:
            self.out.write(tarfile.NUL * (tarfile.BLOCKSIZE - rest))
            self.offset += tarfile.BLOCKSIZE - rest

    def add(self, name: str, data: bytes) -> None:
        self.header(name, len(data))
        self.out.write(data)
        self.pad(len(data))

    def close(self) -> None:
        self.out.write(tarfile.NUL * (2 * tarfile.BLOCKSIZE))
        self.offset += 2 * tarfile.BLOCKSIZE
        rest = self.offset % tarfile.RECORDSIZE
        if rest:
            self.out.write(tarfile.NUL * (tarfile.RECORDSIZE - rest))
