"""Reading a bundle: one streaming pass that trusts nothing until it is checked.

The signature of the manifest is checked against the trusted keys before the manifest is parsed;
then every member must be the next blob the manifest lists, a regular file of exactly the listed
size whose sha256 matches, and nothing may follow the last one. Reads are bounded throughout: a
zstd frame may not ask for a window over 128 MiB, and the stream may not run past what the signed
manifest accounts for. Blobs go to a sink (nothing, for verify; the store, for import).
"""

from __future__ import annotations

import hashlib
import io
import queue
import tarfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

import zstandard

from airgap_mirror.errors import InputError

from .errors import BundleFormatError, SignatureError
from .format import MANIFEST, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, MAX_WINDOW_SIZE, SIGNATURE, Manifest, blob_member
from .keys import PublicKey, parse_signature, verify

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = ["BlobSink", "NullSink", "read_bundle", "read_manifest_unverified", "bundle_parts"]

_BLOCK = 512
_CHUNK = 1 << 20
_EXTENDED = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
             tarfile.SOLARIS_XHDTYPE)


def _show(name: str) -> str:
    """A member name for a message: at most a couple of hundred characters of it."""
    return repr(name[:200] + ("..." if len(name) > 200 else ""))


class BlobSink(Protocol):
    def begin(self, sha256: str, size: int) -> None: ...
    def write(self, data: bytes) -> None: ...
    def commit(self) -> None: ...  # the blob's sha256 was checked by the reader
    def abort(self) -> None: ...
    def finish(self) -> None: ...  # every blob committed is in place when this returns


class NullSink:
    def begin(self, sha256: str, size: int) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def finish(self) -> None:
        pass


def bundle_parts(paths: Sequence[Path]) -> list[Path]:
    """The files of a bundle in order: OUT itself, or OUT.001, OUT.002, ... (given as OUT or as parts)."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_file():
            out.append(p)
            continue
        parts = sorted(p.parent.glob(p.name + ".[0-9][0-9][0-9]"))
        if not parts:
            raise InputError(f"bundle {p} does not exist")
        out.extend(parts)
    numbered = [p for p in out if p.suffix[1:].isdigit()]
    if numbered:
        stems = {p.with_suffix("") for p in numbered}
        if len(stems) != 1 or len(numbered) != len(out):
            raise InputError("give the parts of one bundle only")
        want = [f"{n:03d}" for n in range(1, len(numbered) + 1)]
        have = [p.suffix[1:] for p in sorted(numbered)]
        if have != want:
            missing = sorted(set(want) - set(have)) or [f"{len(have) + 1:03d}?"]
            raise BundleFormatError(f"bundle parts are not consecutive: part {missing[0]} is missing")
        out = sorted(numbered)
    return out


class _Concat(io.RawIOBase):
    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.fh: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf: WriteableBuffer, /) -> int:
        while True:
            if self.fh is None:
                if not self.paths:
                    return 0
                self.fh = open(self.paths.pop(0), "rb")
            n = self.fh.readinto(buf)
            if n:
                return n
            self.fh.close()
            self.fh = None

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
        super().close()


class _Bounded(io.RawIOBase):
    """The decompressed stream, refusing to yield more than `limit` bytes (raised once the manifest is known)."""

    def __init__(self, raw: zstandard.ZstdDecompressionReader, limit: int) -> None:
        self.raw, self.limit, self.used = raw, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: WriteableBuffer, /) -> int:
        room = self.limit - self.used
        if room <= 0:
            if self.raw.read(1):
                raise BundleFormatError("the bundle holds more data than its signed manifest accounts for")
            return 0
        view = memoryview(buf)
        view = view[: min(len(view), room)]
        try:
            n = self.raw.readinto(view)
        except zstandard.ZstdError as exc:
            raise BundleFormatError(f"the zstd stream is damaged or truncated ({exc})") from exc
        self.used += n
        return n


def _padded(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


class _Tar:
    """The bundle's USTAR stream, read member by member straight from the decompressed stream.

    Our bundles hold regular files with short names only, so this reader takes nothing else: an
    extended header (PAX, GNU long name) or any other member type is refused before its content is
    read. (tarfile's stream mode copied every blob several times through small buffers.)"""

    def __init__(self, stream: io.BufferedReader) -> None:
        self.stream = stream
        self.ended = False

    def _exact(self, n: int, where: str) -> bytes:
        try:
            data = self.stream.read(n)
        except zstandard.ZstdError as exc:
            raise BundleFormatError(f"the zstd stream is damaged or truncated ({exc})") from exc
        if len(data) != n:
            raise BundleFormatError(f"the bundle is truncated {where}: it is cut short or a part is missing")
        return data

    def next(self, name: str) -> tarfile.TarInfo | None:
        """The next member's header (None at the end-of-archive block); `name` is what should come."""
        buf = self._exact(_BLOCK, f"where {name} should be")
        if buf == tarfile.NUL * _BLOCK:
            self.ended = True
            return None
        try:
            info = tarfile.TarInfo.frombuf(buf, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise BundleFormatError(f"the bundle is damaged where {name} should be (a bad tar header: {exc})") from exc
        if info.type in _EXTENDED:
            raise BundleFormatError(f"an extended tar header (PAX or GNU long name, {info.size:,} bytes) where {name}"
                                    " should be: not a bundle this tool wrote")
        return info

    def member(self, name: str, max_size: int, expect_size: int | None = None) -> tarfile.TarInfo:
        info = self.next(name)
        if info is None:
            raise BundleFormatError(f"the bundle ends where {name} should be: it is truncated or a part is missing")
        if info.name != name:
            raise BundleFormatError(f"unexpected member {_show(info.name)} where {name} should be"
                                    + (" (a path outside the bundle)" if info.name.startswith("/") or ".." in info.name.split("/") else ""))
        if info.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
            raise BundleFormatError(f"member {_show(info.name)} is not a regular file (links and devices are refused)")
        if info.size > max_size or (expect_size is not None and info.size != expect_size):
            raise BundleFormatError(f"member {_show(info.name)} is {info.size} bytes; the manifest says {expect_size if expect_size is not None else f'at most {max_size}'}")
        return info

    def chunks(self, info: tarfile.TarInfo) -> Iterator[bytes]:
        """A member's content in chunks of at most _CHUNK, then its padding skipped."""
        left = info.size
        while left:
            n = min(left, _CHUNK)
            yield self._exact(n, f"inside {info.name}")
            left -= n
        pad = _padded(info.size) - info.size
        if pad:
            self._exact(pad, f"after {info.name}")

    def small(self, info: tarfile.TarInfo) -> bytes:
        return b"".join(self.chunks(info))

    def prefetch(self) -> _Prefetch:
        """From here on, decompress ahead on a thread of its own (the caller hashes meanwhile). Only
        once the signed manifest has set the stream's bound, which the thread then reads up to."""
        raw = _Prefetch(self.stream)
        self.stream = io.BufferedReader(raw, _CHUNK)
        return raw


class _Prefetch(io.RawIOBase):
    """Reads `source` on a thread, up to `_AHEAD` chunks ahead; errors surface in the reader."""

    _AHEAD = 8

    def __init__(self, source: io.BufferedReader) -> None:
        self.source = source
        self._queue: queue.Queue[memoryview | BaseException | None] = queue.Queue(self._AHEAD)
        self._chunk = memoryview(b"")
        self._done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bundle-decompress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                buf = bytearray(_CHUNK)
                n = self.source.readinto(buf)
                if not n:
                    break
                self._queue.put(memoryview(buf)[:n])
            self._queue.put(None)
        except BaseException as exc:  # noqa: BLE001  (raised in the reading thread)
            self._queue.put(exc)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: WriteableBuffer, /) -> int:
        while not self._chunk:
            if self._done:
                return 0
            item = self._queue.get()
            if item is None:
                self._done = True
                return 0
            if isinstance(item, BaseException):
                self._done = True
                raise item
            self._chunk = item
        view = memoryview(buf).cast("B")
        n = min(len(view), len(self._chunk))
        view[:n] = self._chunk[:n]
        self._chunk = self._chunk[n:]
        return n

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():  # let a blocked put() through
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        super().close()


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _one_zstd_frame(parts: Sequence[Path]) -> None:
    """The bundle is exactly one zstd frame, nothing before or after it (a skippable frame would be
    skipped by the decoder, unseen). Walks the frame's block headers only: one seek per block."""
    sizes = [p.stat().st_size for p in parts]
    total = sum(sizes)
    handles: dict[int, BinaryIO] = {}

    def read(offset: int, n: int) -> bytes:
        out = b""
        for i, (part, size) in enumerate(zip(parts, sizes, strict=False)):
            if offset >= size:
                offset -= size
                continue
            fh = handles.get(i)
            if fh is None:
                fh = handles[i] = open(part, "rb")
            fh.seek(offset)
            out += fh.read(min(n - len(out), size - offset))
            offset = 0
            if len(out) == n:
                break
        if len(out) != n:
            raise BundleFormatError("the zstd stream is truncated (a part may be missing)")
        return out

    try:
        if read(0, 4) != _ZSTD_MAGIC:
            raise BundleFormatError("not a bundle: it does not start with a zstd frame")
        fhd = read(4, 1)[0]
        single_segment = bool(fhd & 0x20)
        fcs = {0: 1 if single_segment else 0, 1: 2, 2: 4, 3: 8}[fhd >> 6]
        pos = 5 + (0 if single_segment else 1) + {0: 0, 1: 1, 2: 2, 3: 4}[fhd & 3] + fcs
        while True:
            header = int.from_bytes(read(pos, 3), "little")
            last, kind, size = header & 1, (header >> 1) & 3, header >> 3
            if kind == 3:
                raise BundleFormatError("the zstd stream is damaged (a reserved block type)")
            pos += 3 + (1 if kind == 1 else size)
            if pos > total:
                raise BundleFormatError("the zstd stream is truncated (a part may be missing)")
            if last:
                break
        pos += 4 if fhd & 0x04 else 0
        if pos != total:
            raise BundleFormatError(f"{total - pos:,} bytes follow the bundle's zstd frame: nothing may follow it")
    finally:
        for fh in handles.values():
            fh.close()


def _open(paths: Sequence[Path]) -> tuple[_Concat, _Bounded, _Tar]:
    parts = bundle_parts(paths)
    _one_zstd_frame(parts)
    concat = _Concat(parts)
    dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE)
    try:
        zr = dctx.stream_reader(cast(BinaryIO, concat), read_across_frames=True, read_size=_CHUNK)
    except zstandard.ZstdError as exc:
        raise BundleFormatError(f"not a zstd stream ({exc})") from exc
    bounded = _Bounded(zr, MAX_MANIFEST_BYTES + MAX_SIGNATURE_BYTES + 4 * _BLOCK)
    return concat, bounded, _Tar(io.BufferedReader(bounded, _CHUNK))


def read_manifest_unverified(paths: Sequence[Path]) -> Manifest:
    """The manifest, parsed but NOT checked against any key (for `bundle show`)."""
    concat, _, tar = _open(paths)
    try:
        raw = tar.small(tar.member(MANIFEST, MAX_MANIFEST_BYTES))
        return Manifest.parse(raw)
    finally:
        concat.close()


def read_bundle(paths: Sequence[Path], trusted: Sequence[PublicKey], sink: BlobSink, *,
                before_blobs: Callable[[Manifest, PublicKey], None] = lambda m, k: None,
                on_bytes: Callable[[int], None] = lambda n: None) -> tuple[Manifest, PublicKey]:
    """Verify a bundle in one pass, handing each verified blob to `sink`; raises on the first fault."""
    if not trusted:
        raise SignatureError("no trusted keys: add the signer's public key with `mirror trust add KEY.pub`, or pass --trust")
    concat, bounded, tar = _open(paths)
    try:
        raw = tar.small(tar.member(MANIFEST, MAX_MANIFEST_BYTES))
        signature = parse_signature(tar.small(tar.member(SIGNATURE, MAX_SIGNATURE_BYTES)))
        signer = verify(list(trusted), raw, signature)
        manifest = Manifest.parse(raw)
        if manifest.signer != signer.id_hex:
            raise SignatureError(f"the manifest names signer {manifest.signer} but key {signer.id_hex} signed it")
        # From here the signed manifest bounds the stream: headers, padded blobs and the tar trailer.
        bounded.limit = bounded.used + sum(_BLOCK + _padded(n) for _, n in manifest.blobs) + 2 * tarfile.RECORDSIZE
        before_blobs(manifest, signer)
        ahead = tar.prefetch()
        try:
            _blobs(tar, manifest, sink, on_bytes)
        except BaseException:
            sink.abort()
            raise
        finally:
            ahead.close()
        return manifest, signer
    finally:
        concat.close()


def _blobs(tar: _Tar, manifest: Manifest, sink: BlobSink, on_bytes: Callable[[int], None]) -> None:
    """Every blob in the manifest's order, each hashed as it streams and handed to `sink`; nothing after."""
    for sha, size in manifest.blobs:
        info = tar.member(blob_member(sha), size, size)
        h = hashlib.sha256()
        sink.begin(sha, size)
        try:
            for chunk in tar.chunks(info):
                h.update(chunk)
                sink.write(chunk)
                on_bytes(len(chunk))
            if h.hexdigest() != sha:
                raise BundleFormatError(f"blob {sha} does not match its sha256 (got {h.hexdigest()}): the bundle was altered")
        except BaseException:
            sink.abort()
            raise
        sink.commit()
    extra = tar.next("the end of the bundle")
    if extra is not None:
        raise BundleFormatError(f"member {_show(extra.name)} is not in the signed manifest")
    try:
        rest = tar.stream.read()
    except zstandard.ZstdError as exc:
        raise BundleFormatError(f"data after the end of the bundle is damaged ({exc})") from exc
    if rest.strip(b"\0"):
        raise BundleFormatError("the bundle has data after its last member that the manifest does not cover")
    sink.finish()
