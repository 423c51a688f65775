"""The store's repository: content-addressed blobs, their catalog (SQLite), snapshots and refs, locks, and
the one way bytes come in (`Store.ingest`)."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sqlite3
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from airgap_mirror.errors import DiskFullError, IntegrityError, StoreError
from airgap_mirror.store.canonical import canonical_json
from airgap_mirror.store.names import Sha256

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blobs (
    sha256 TEXT PRIMARY KEY, size INTEGER NOT NULL, added TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS pyfiles (
    sha256 TEXT NOT NULL, filename TEXT NOT NULL, project TEXT NOT NULL, version TEXT NOT NULL,
    kind TEXT NOT NULL, url TEXT, requires_python TEXT, yanked TEXT, upload_time TEXT,
    metadata_sha256 TEXT, build_requires TEXT, provenance_sha256 TEXT,
    PRIMARY KEY (sha256, filename)
);
CREATE TABLE IF NOT EXISTS snapshots (
    id TEXT PRIMARY KEY, created TEXT NOT NULL, origin TEXT NOT NULL, summary TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class CatalogFile:
    """What the catalog knows of one Python distribution file."""

    sha256: str
    filename: str
    project: str
    version: str
    kind: str
    size: int
    url: str | None = None
    requires_python: str | None = None
    yanked: str | None = None
    upload_time: str | None = None
    metadata_sha256: str | None = None
    build_requires: tuple[str, ...] | None = None
    provenance_sha256: str | None = None  # its PEP 740 provenance as the index served it (a blob)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = False, private: bool = False) -> None:
    """Write a file whole or not at all (temp file in the same folder, then rename); `durable`:
    fsync the file and its folder too (what a crash must not lose, not a cache); `private`: mode
    0600 from the moment it exists (a secret key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o666)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        if durable:
            _fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


if TYPE_CHECKING:
    from airgap_mirror.store.snapshots import Snapshot


class Store:
    """A store rooted at `root`; safe for one writer and many readers."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()  # file URLs and other working folders need it absolute
        self.base = self.root / "store-v1"
        self.blobs = self.base / "blobs" / "sha256"
        self.tmp = self.base / "tmp"
        self.snapshots = self.base / "snapshots"
        self.refs = self.base / "refs"
        self.published = self.root / "published"
        self.cache = self.root / "cache"
        self._local = threading.local()
        self._db_lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------
    def create(self) -> Store:
        for d in (self.blobs, self.tmp, self.snapshots, self.refs, self.published, self.cache):
            d.mkdir(parents=True, exist_ok=True)
        with self.db() as db:
            db.executescript(_SCHEMA)
        return self

    @contextlib.contextmanager
    def lock(self, what: str, *, wait: float = 0.0, name: str = "lock") -> Iterator[None]:
        """The store's writer lock (sync, import, publish, gc); readers never take it. `name`: another
        lock of its own (an upload to one bucket, which needs not keep the store from changing).

        An flock on store-v1/lock: released by the kernel when the holder exits, even on kill -9,
        so a crashed run never leaves the store locked."""
        import fcntl
        import time

        self.base.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.base / name, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        said = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
                    if time.monotonic() >= deadline:
                        raise StoreError(f"the store at {self.root} is busy: {holder} holds its lock"
                                         f"{'' if name == 'lock' else f' ({name})'};"
                                         f" `mirror {what}` did not start (run it again when that finishes)") from None
                    if not said:  # (a wait of many seconds, saying nothing, looked like a hang)
                        print(f"waiting up to {wait:.0f} s for the store's lock: {holder} holds it", file=sys.stderr,
                              flush=True)
                        said = True
                    time.sleep(0.2)
            info = f"`mirror {what}` (pid {os.getpid()}, since {datetime.now(UTC).isoformat(timespec='seconds')})"
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def exists(self) -> bool:
        return (self.base / "catalog.sqlite").is_file()

    def require(self) -> Store:
        if not self.exists():
            raise StoreError(f"no store at {self.root}: run `mirror sync` first, or pass --store / set MIRROR_STORE")
        return self

    @contextlib.contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.base / "catalog.sqlite", timeout=60)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # A run killed between creating the file and its tables left a catalog without them:
            # every connection makes sure they are there (a no-op once they are).
            conn.executescript(_SCHEMA)
            if "provenance_sha256" not in {row[1] for row in conn.execute("PRAGMA table_info(pyfiles)")}:
                conn.execute("ALTER TABLE pyfiles ADD COLUMN provenance_sha256 TEXT")  # (a catalog made before PEP 740)
            self._local.conn = conn
        try:
            # One transaction at a time in this process: SQLite lets one writer in and makes the
            # others poll (its busy handler sleeps, seconds at worst), which stalled a sync's 16
            # download threads each recording its blob; a lock wakes the next one at once.
            with self._db_lock, conn:
                yield conn
        except sqlite3.OperationalError as exc:
            if "full" in str(exc):
                raise self._disk_full("writing the catalog") from exc
            raise

    def _disk_full(self, what: str) -> DiskFullError:
        return DiskFullError(
            f"no space left on the device of {self.root} while {what}: free space (`mirror gc` removes what no "
            "kept snapshot needs) and run the command again; nothing half-written was kept"
        )

    @contextlib.contextmanager
    def writing(self, what: str) -> Iterator[None]:
        """Turn a full disk (ENOSPC, EDQUOT, EFBIG) into DiskFullError naming the store."""
        try:
            yield
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise self._disk_full(what) from exc
            raise

    # -- blobs -----------------------------------------------------------------------------
    def blob_path(self, sha256: str) -> Path:
        sha = Sha256(sha256)
        return self.blobs / sha[:2] / sha

    def has_blob(self, sha256: str) -> bool:
        sha = Sha256(sha256)  # asked of every file of every sync: a string path, no Path objects
        return os.path.isfile(f"{self.blobs}/{sha[:2]}/{sha}")

    def ingest(self, *, expect: str | None = None, max_size: int | None = None, what: str = "a file",
               source: str = "the expected", hashed_by_caller: bool = False) -> Ingest:
        """The one way a blob enters the store (downloads, local files, builds, bundle import):
        `with store.ingest(expect=SHA, max_size=N, what=NAME) as blob: blob.write(...); blob.commit()`.
        Hashed while written, bounded in size, fsynced and renamed to its content address only when
        the digest is the expected one; a full disk is a DiskFullError; leaving the block without
        commit() (an error, a kill) keeps nothing under a blob's name.

        `hashed_by_caller` (with `expect`): the caller hashes the very bytes it writes and calls
        commit() only once they matched `expect` (the bundle reader does), so they are not hashed twice."""
        if hashed_by_caller and expect is None:
            raise ValueError("hashed_by_caller needs the expected sha256")
        return Ingest(self, expect=expect, max_size=max_size, what=what, source=source, hashed=not hashed_by_caller)

    def put_bytes(self, data: bytes) -> str:
        """Store bytes as a blob; returns its sha256. Idempotent."""
        sha = hashlib.sha256(data).hexdigest()
        if not self.has_blob(sha):
            with self.ingest(expect=sha, what="a record") as blob:
                blob.write(data)
                blob.commit()
        return sha

    def put_file(self, src: Path, expected_sha256: str | None = None) -> str:
        with self.ingest(expect=expected_sha256, what=str(src)) as blob, open(src, "rb") as inp:
            while chunk := inp.read(1 << 20):
                blob.write(chunk)
            return blob.commit()

    def read_blob(self, sha256: str) -> bytes:
        try:
            return self.blob_path(sha256).read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"blob {sha256} is missing from {self.blobs}: run `mirror sync` again") from exc

    def _record_blob(self, sha256: str, size: int) -> None:
        with self.db() as db:
            db.execute(
                "INSERT OR IGNORE INTO blobs(sha256, size, added) VALUES (?,?,?)",
                (sha256, size, datetime.now(UTC).isoformat(timespec="seconds")),
            )

    def blob_size(self, sha256: str) -> int:
        return self.blob_path(sha256).stat().st_size

    # -- catalog ---------------------------------------------------------------------------
    def record_pyfile(self, f: CatalogFile) -> None:
        with self.db() as db:
            db.execute(
                "INSERT OR REPLACE INTO pyfiles(sha256, filename, project, version, kind, url, requires_python,"
                " yanked, upload_time, metadata_sha256, build_requires, provenance_sha256) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (f.sha256, f.filename, f.project, f.version, f.kind, f.url, f.requires_python, f.yanked,
                 f.upload_time, f.metadata_sha256,
                 json.dumps(list(f.build_requires)) if f.build_requires is not None else None, f.provenance_sha256),
            )

    def catalogued(self, files: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (sha256, filename) the catalog has, with their blob (as `pyfile` finds
        them), in one transaction: a sync asked file by file, each time waiting for the catalog's
        lock behind the downloads recording their blobs (36 files of one app: 0.19 s)."""
        wanted = set(files)
        shas = sorted({sha for sha, _ in wanted})
        found: set[tuple[str, str]] = set()
        with self.db() as db:
            for i in range(0, len(shas), 500):  # (SQLite's bound on parameters: 999 in older builds)
                part = shas[i:i + 500]
                found.update(db.execute(
                    "SELECT p.sha256, p.filename FROM pyfiles p JOIN blobs b ON b.sha256 = p.sha256"
                    f" WHERE p.sha256 IN ({','.join('?' * len(part))})", part))
        return found & wanted

    def pyfile_urls(self) -> dict[str, str]:
        """Every catalogued file's upstream URL (without credentials) → its sha256."""
        with self.db() as db:
            return {url: sha for url, sha in db.execute("SELECT url, sha256 FROM pyfiles WHERE url IS NOT NULL")}

    def pyfile(self, sha256: str, filename: str) -> CatalogFile | None:
        with self.db() as db:
            row = db.execute(
                "SELECT p.sha256, filename, project, version, kind, url, requires_python, yanked, upload_time,"
                " metadata_sha256, build_requires, b.size, provenance_sha256 FROM pyfiles p JOIN blobs b ON b.sha256 = p.sha256"
                " WHERE p.sha256 = ? AND filename = ?",
                (sha256, filename),
            ).fetchone()
        if row is None:
            return None
        return CatalogFile(
            sha256=row[0], filename=row[1], project=row[2], version=row[3], kind=row[4], url=row[5],
            requires_python=row[6], yanked=row[7], upload_time=row[8], metadata_sha256=row[9],
            build_requires=tuple(json.loads(row[10])) if row[10] is not None else None, size=row[11],
            provenance_sha256=row[12],
        )

    # -- snapshots -------------------------------------------------------------------------
    def put_snapshot(self, manifest: dict[str, Any], *, origin: str, summary: dict[str, Any] | None = None,
                     make_current: bool = True, created: str | None = None) -> str:
        """Write a snapshot manifest (canonical JSON), make it current unless told not to; returns its id.
        `created` is when the snapshot was made (an import keeps the time the outside made it)."""
        data = canonical_json(manifest)
        sid = hashlib.sha256(data).hexdigest()
        path = self.snapshots / f"{sid}.json"
        if not path.exists():
            with self.writing("writing a snapshot"):
                atomic_write(path, data, durable=True)
        with self.db() as db:
            db.execute(
                "INSERT OR IGNORE INTO snapshots(id, created, origin, summary) VALUES (?,?,?,?)",
                (sid, created or datetime.now(UTC).isoformat(timespec="seconds"), origin, json.dumps(summary or {})),
            )
        if make_current:
            self.set_ref("current", sid)
        return sid

    def snapshot_created(self, sid: str) -> str | None:
        with self.db() as db:
            row = db.execute("SELECT created FROM snapshots WHERE id = ?", (sid,)).fetchone()
        return row[0] if row else None

    def load_snapshot(self, sid: str) -> dict[str, Any]:
        path = self.snapshots / f"{Sha256(sid)}.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise StoreError(f"snapshot {sid} not found in {self.snapshots}") from exc
        if hashlib.sha256(data).hexdigest() != sid:
            raise IntegrityError(f"snapshot {sid} does not match its id: the store is damaged (run `mirror verify`)")
        doc: dict[str, Any] = json.loads(data)
        return doc

    def snapshot(self, sid: str) -> Snapshot:
        """The snapshot `sid` as a typed value (its document checked against its id)."""
        from airgap_mirror.store.snapshots import Snapshot

        return Snapshot.from_dict(self.load_snapshot(sid), id=sid)

    def set_ref(self, name: str, sid: str) -> None:
        tmp = self.refs / f".{name}.tmp"
        with self.writing(f"setting {name}"):
            tmp.write_text(sid + "\n")
        os.replace(tmp, self.refs / name)

    def ref(self, name: str = "current") -> str | None:
        try:
            return (self.refs / name).read_text().strip() or None
        except FileNotFoundError:
            return None

    def app_folders(self) -> dict[str, str]:
        """The folder of each app a sync named, by app name: what `mirror sync` with no folder named
        (and none in mirror.toml) syncs again. Local to this store: never in a snapshot or a bundle."""
        try:
            data = json.loads((self.base / "apps.json").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        folders = data.get("folders") if isinstance(data, dict) else None
        return {k: v for k, v in folders.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(folders, dict) else {}

    def remember_app_folders(self, folders: dict[str, str], *, forget: Iterable[str] = ()) -> None:
        """Record these apps' folders (absolute paths) beside the ones known, less the apps `forget`."""
        known = self.app_folders() | folders
        for name in forget:
            known.pop(name, None)
        data = json.dumps({"format_version": 1, "folders": dict(sorted(known.items()))}, indent=1).encode()
        with self.writing("recording the store's app folders"):
            atomic_write(self.base / "apps.json", data)


class Ingest:
    """One blob on its way into the store (see Store.ingest)."""

    def __init__(self, store: Store, *, expect: str | None, max_size: int | None, what: str, source: str,
                 hashed: bool = True) -> None:
        self.store, self.expect, self.max_size, self.what, self.source = store, expect, max_size, what, source
        self.size = 0
        self._hash = hashlib.sha256() if hashed else None
        self._path: Path | None = None
        self._fh: IO[bytes] | None = None
        self.sha256: str | None = None

    def __enter__(self) -> Ingest:
        with self.store.writing("creating a temp file"):
            fd, name = tempfile.mkstemp(dir=self.store.tmp, prefix="in-")
        self._path, self._fh = Path(name), os.fdopen(fd, "wb")
        return self

    def write(self, data: bytes) -> None:
        assert self._fh is not None, "write() outside `with store.ingest(...)`"
        self.size += len(data)
        if self.max_size is not None and self.size > self.max_size:
            raise IntegrityError(f"{self.what}: more than the {self.max_size} bytes promised; nothing kept")
        if self._hash is not None:
            self._hash.update(data)
        with self.store.writing(f"writing {self.what}"):
            self._fh.write(data)

    def commit(self) -> str:
        """Check the digest, then fsync and rename into place (a blob already there is kept)."""
        assert self._fh is not None and self._path is not None
        digest = self._hash.hexdigest() if self._hash is not None else str(self.expect)
        if self.expect is not None and digest != self.expect:
            raise IntegrityError(f"{self.what}: sha256 {digest} does not match {self.source} {self.expect}; nothing kept")
        final = self.store.blob_path(digest)
        with self.store.writing(f"writing {self.what}"):
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            if not final.is_file():
                final.parent.mkdir(parents=True, exist_ok=True)
                os.chmod(self._path, 0o444)
                os.replace(self._path, final)
                _fsync_dir(final.parent)
            self.store._record_blob(digest, self.size)
        self.sha256 = digest
        return digest

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        if self._path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._path.unlink()


def open_store(root: Path, *, create: bool = False) -> Store:
    store = Store(root)
    return store.create() if create else store.require()
