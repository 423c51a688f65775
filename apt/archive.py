"""Upstream Debian archives: a suite's Release verified with gpgv, its Packages indexes checked
against the Release's SHA256, parsed, and cached by hash so an unchanged index is never re-parsed.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import lzma
import marshal
import os
import queue
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from airgap_mirror import logs
from airgap_mirror.errors import IntegrityError, TransportError
from airgap_mirror.fetch import get_bytes, get_streaming
from airgap_mirror.store import atomic_write
from airgap_mirror.urls import redact

from .gpg import verify_clearsigned, verify_detached
from .index import IndexEntry, PackagesIndex, ReleaseFile, Stanza, decoded_names, parse_release, scan_lines

_log = logs.get(__name__)

__all__ = ["Source", "SuiteIndex", "load_suite", "fetch_release"]

_CACHE_FORMAT = 3
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """One `deb URL SUITE COMPONENT...` line: where packages come from and who must have signed them."""

    url: str
    suite: str
    components: tuple[str, ...] = ("main",)
    keyrings: tuple[Path, ...] = (DEBIAN_KEYRING,)
    trusted: bool = False

    @property
    def label(self) -> str:
        return f"{redact(self.url)} {self.suite} {' '.join(self.components)}"

    def to_dict(self) -> dict[str, object]:
        return {"url": redact(self.url), "suite": self.suite, "components": list(self.components)}


@dataclass(slots=True, kw_only=True)
class SuiteIndex:
    source: Source
    release: ReleaseFile
    indexes: list[PackagesIndex] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # component/arch pairs the suite does not have

    @property
    def stanzas(self) -> list[Stanza]:
        """Every package paragraph of every index (a Stanza made of each: for a look at all of them)."""
        return [s for index in self.indexes for s in index]


def fetch_release(src: Source) -> ReleaseFile:
    """A suite's Release, verified against the source's keyrings (unless the source is trusted=yes)."""
    base = f"{src.url}/dists/{src.suite}"
    what = f"{src.label}: Release"
    try:
        data = get_bytes(f"{base}/InRelease", max_bytes=16 << 20)
    except TransportError:
        data = None
    if data is not None:
        if src.trusted:
            text = _strip_clearsign(data) if data.startswith(b"-----BEGIN PGP") else data
        else:
            text = verify_clearsigned(data, src.keyrings, what)
    else:
        text = get_bytes(f"{base}/Release", max_bytes=16 << 20)
        if not src.trusted:
            try:
                sig = get_bytes(f"{base}/Release.gpg", max_bytes=1 << 20)
            except TransportError as exc:
                raise IntegrityError(f"{what}: the archive is unsigned (no InRelease, no Release.gpg);"
                                     " mark the repository [trusted=yes] only if you trust it by other means") from exc
            verify_detached(text, sig, src.keyrings, what)
    return parse_release(text.decode("utf-8"))


def _strip_clearsign(data: bytes) -> bytes:
    body = data.split(b"\n\n", 1)[1]
    body = body.split(b"\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    return b"\n".join(line[2:] if line.startswith(b"- ") else line for line in body.split(b"\n")) + b"\n"


def _decompress(path: str, data: bytes) -> bytes:
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        inflate = zlib.decompressobj(wbits=31)  # one gzip member, as archives write them: zlib's C loop
        out = inflate.decompress(data)
        return out if inflate.eof and not inflate.unused_data else gzip.decompress(data)
    return data


def parse_whole(path: str, data: bytes, origin: str | None = None) -> PackagesIndex:
    """A whole Packages file, in the compressed form its path names."""
    return PackagesIndex(_decompress(path, data), origin)


def _load_index(src: Source, release: ReleaseFile, component: str, arch: str, cache: Path) -> PackagesIndex | None:
    entry = release.packages_index(component, arch)
    if entry is None:
        return None
    # Cached decompressed, with where its lines are, as marshal data (no code on load; 0.03 s).
    parsed = cache / "parsed" / f"{entry.sha256}.{hashlib.sha256(src.url.encode()).hexdigest()[:12]}.v{_CACHE_FORMAT}"
    if parsed.is_file():
        try:
            data, positions, provides_at = marshal.loads(parsed.read_bytes())
            return PackagesIndex(data, src.url, positions=positions, provides_at=provides_at)
        except (OSError, ValueError, EOFError, TypeError):
            parsed.unlink(missing_ok=True)
    raw_path = cache / "raw" / entry.sha256
    data = raw_path.read_bytes() if raw_path.is_file() else None
    if data is not None and hashlib.sha256(data).hexdigest() == entry.sha256:
        index = parse_whole(entry.path, data, src.url)
    else:
        data, index = _download_index(src, release, entry)
        atomic_write(raw_path, data)
    # Written while the .debs download (`start_cache_writes`), not beside the closures' work; a
    # cache, so a run killed meanwhile only leaves it to be made again.
    _PENDING.append((parsed, index))
    return index


def _download_index(src: Source, release: ReleaseFile, entry: IndexEntry) -> tuple[bytes, PackagesIndex]:
    """A Packages index, decompressed and parsed as it arrives (on a link slower than the parse, it
    is parsed when its last byte is in); none of it is used unless its size and sha256 are the ones
    the signed Release gives."""
    base = f"{src.url}/dists/{src.suite}"
    urls = [f"{base}/{entry.path}"]
    if release.acquire_by_hash:  # immune to the archive being updated while we read it
        urls.insert(0, f"{base}/{os.path.dirname(entry.path)}/by-hash/SHA256/{entry.sha256}")
    last: Exception | None = None
    for url in urls:
        reader = _IndexReader(entry.path, src.url)
        try:
            try:
                get_streaming(url, reader.fresh, max_bytes=entry.size + 1)
            except TransportError as exc:
                last = exc
                continue
            digest = hashlib.sha256(reader.raw).hexdigest()
            if digest != entry.sha256 or len(reader.raw) != entry.size:
                raise IntegrityError(f"{src.label}: {entry.path} has sha256 {digest}, the signed Release says"
                                     f" {entry.sha256}; nothing from it is used (the mirror may be mid-update: retry)")
            return reader.finish()
        finally:
            reader.close()
    raise last  # type: ignore[misc]


def _decompressor(path: str) -> zlib._Decompress | lzma.LZMADecompressor | None:
    if path.endswith(".gz"):
        return zlib.decompressobj(wbits=31)
    if path.endswith(".xz"):
        return lzma.LZMADecompressor()
    return None


class _Inflater:
    """The incremental decompressor of one index's form, going on to a next gzip member."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.state = _decompressor(path)

    @property
    def eof(self) -> bool:
        return self.state is None or self.state.eof

    def decompress(self, chunk: bytes) -> bytes:
        if self.state is None:
            return chunk
        out = []
        while chunk and self.state is not None:
            state = self.state
            out.append(state.decompress(chunk))
            if not state.eof:
                break
            chunk = state.unused_data  # a next gzip member
            if chunk:
                self.state = _decompressor(self.path)
        return b"".join(out)


_END, _FAILED = object(), object()


class _IndexReader:
    """Decompresses and indexes a Packages file as it downloads, on both cores: what arrives is
    decompressed in a thread of its own (zlib and lzma let go of the interpreter lock), while the
    downloading thread finds the Package and Provides lines among the whole lines decompressed so
    far; the rest waits for the next piece. A stream the incremental decompressors cannot follow
    (trailing data after the last gzip member, say) is decompressed whole at the end, as a file
    read from the cache is."""

    def __init__(self, path: str, origin: str) -> None:
        self.path, self.origin = path, origin
        self._inbox: queue.SimpleQueue[bytes | None] | None = None
        self._outbox: queue.SimpleQueue[object] | None = None

    def fresh(self) -> Callable[[bytes], None]:
        """A new start (each download attempt): the consumer of this attempt's chunks."""
        self.close()
        self.raw = bytearray()
        self.text = bytearray()  # decompressed
        self._positions: dict[bytes, list[int]] = {}
        self._provides_at: list[int] = []
        self._scanned = 0
        self.whole = False  # decompress the whole file at the end instead
        self._inflater = _Inflater(self.path)
        self._ended = False
        if self._inflater.state is not None:
            inbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
            outbox: queue.SimpleQueue[object] = queue.SimpleQueue()
            self._inbox, self._outbox = inbox, outbox
            threading.Thread(target=self._inflating, args=(self._inflater, inbox, outbox),
                             name="apt-index-inflate", daemon=True).start()
        return self.feed

    @staticmethod
    def _inflating(inflater: _Inflater, inbox: queue.SimpleQueue[bytes | None], outbox: queue.SimpleQueue[object]) -> None:
        # Always ends its outbox (`finish` waits for that): on any failure the whole file is
        # decompressed again at the end, where a real error is raised in the caller's thread.
        ended = _FAILED
        try:
            while (chunk := inbox.get()) is not None:
                outbox.put(inflater.decompress(chunk))
            ended = _END
        except Exception:  # noqa: BLE001  (the whole file is decompressed again at the end)
            _log.debug("decompressing an index while it downloads failed", exc_info=True)
        finally:
            outbox.put(ended)

    def feed(self, chunk: bytes) -> None:
        self.raw += chunk
        if self.whole:
            return
        if self._inbox is None:
            self._take(chunk)
            return
        self._inbox.put(chunk)
        self._drain(wait=False)

    def _drain(self, *, wait: bool) -> None:
        """Parse what has been decompressed (`wait`: all of it, to the end)."""
        outbox = self._outbox
        while not self._ended and outbox is not None:
            try:
                piece = outbox.get() if wait else outbox.get_nowait()
            except queue.Empty:
                return
            if piece is _END or piece is _FAILED:
                self._ended = True
                self.whole = self.whole or piece is _FAILED
            elif not self.whole:
                self._take(piece)  # type: ignore[arg-type]

    def close(self) -> None:
        """Let this attempt's decompressing thread end (it ends by itself once its inbox is closed)."""
        if self._inbox is not None:
            self._inbox.put(None)
            self._inbox = None

    def _take(self, data: bytes, final: bool = False) -> None:
        self.text += data
        stop = len(self.text) if final else self.text.rfind(b"\n")  # up to the last whole line
        if stop > self._scanned:
            scan_lines(self.text, self._scanned, stop, self._positions, self._provides_at)
            self._scanned = stop

    def finish(self) -> tuple[bytes, PackagesIndex]:
        """The file's bytes and its index, once the download is complete."""
        data = bytes(self.raw)
        if self._inbox is not None:
            self.close()
            self._drain(wait=True)
        if not self.whole and not self._inflater.eof:
            self.whole = True  # cut short (the hash check says so), or a form we do not follow
        if self.whole:
            return data, parse_whole(self.path, data, self.origin)
        self._take(b"", final=True)
        # (the decompressed bytearray itself, not a copy: 50 MB for bookworm main)
        return data, PackagesIndex(self.text, self.origin, positions=decoded_names(self._positions),
                                   provides_at=self._provides_at)


_PENDING: list[tuple[Path, PackagesIndex]] = []
_WRITERS: list[threading.Thread] = []


def start_cache_writes() -> None:
    """Start writing the parsed indexes of this run to the cache, one after another in a thread (at
    once, each index's marshalled copy was in memory at the same time: 50 MB each for bookworm)."""
    if _PENDING:
        pending = list(_PENDING)
        _PENDING.clear()
        def write_all() -> None:
            for item in pending:
                _write_cache(*item)

        writer = threading.Thread(target=write_all, name="apt-cache", daemon=True)
        writer.start()
        _WRITERS.append(writer)


def _write_cache(path: Path, index: PackagesIndex) -> None:
    with contextlib.suppress(OSError):  # a full disk costs the next run a parse, not this run its result
        atomic_write(path, marshal.dumps(index.cached()))


def finish_cache_writes() -> None:
    """Write the parsed indexes of this run to the cache, and wait for them."""
    start_cache_writes()
    while _WRITERS:
        _WRITERS.pop().join()


def load_suite(src: Source, archs: Sequence[str], cache: Path, *, release: ReleaseFile | None = None) -> SuiteIndex:
    """Verified Release and the parsed Packages of every component × arch (and `all`) of one suite."""
    release = release or fetch_release(src)
    out = SuiteIndex(source=src, release=release)
    seen: set[tuple[str, str]] = set()
    # Exactly the indexes apt reads: the architectures the Release lists, and binary-all only where
    # it says it has one of its own.
    for comp in src.components:
        for arch in dict.fromkeys([*archs] + (["all"] if release.reads_binary_all() else [])):
            if (comp, arch) in seen:
                continue
            seen.add((comp, arch))
            index = _load_index(src, release, comp, arch, cache) if release.supports(arch) else None
            if index is None:
                if arch != "all":
                    out.missing.append(f"{comp}/{arch}")
                continue
            out.indexes.append(index)
    return out
