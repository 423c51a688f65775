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
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

import zstandard

from mirror.errors import InputError

from .errors import BundleFormatError, SignatureError
from .format import (MANIFEST, MAX_MANIFEST_BYTES, MAX_SIGNATURE_BYTES, MAX_WINDOW_SIZE, SIGNATURE, Manifest,
                     blob_member)
from .keys import PublicKey, parse_signature, verify

__all__ = ["BlobSink", "NullSink", "read_bundle", "read_manifest_unverified", "bundle_parts"]

_BLOCK = 512
_CHUNK = 1 << 20
# A GNU long name or PAX header is read whole before anything can be checked: our bundles write
# neither (ustar, short names), so anything beyond a few KiB is hostile.
MAX_EXT_HEADER = 64 << 10


def _show(name: str) -> str:
    """A member name for a message: at most a couple of hundred characters of it."""
    return repr(name[:200] + ("..." if len(name) > 200 else ""))


class _BoundedTarInfo(tarfile.TarInfo):
    """Refuses an extended header (GNU long name/link, PAX) that claims more than MAX_EXT_HEADER,
    before tarfile reads it (it would allocate the claimed size at once)."""

    def _proc_member(self, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:  # type: ignore[override]
        ext = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
               tarfile.SOLARIS_XHDTYPE)
        if self.type in ext and self.size > MAX_EXT_HEADER:
            raise BundleFormatError(f"an extended tar header claims {self.size:,} bytes (at most {MAX_EXT_HEADER:,}"
                                    " are read before the signature holds): not a bundle this tool wrote")
        return super()._proc_member(tarfile_)  # type: ignore[misc]


class BlobSink(Protocol):
    def begin(self, sha256: str, size: int) -> None: ...
    def write(self, data: bytes) -> None: ...
    def commit(self) -> None: ...
    def abort(self) -> None: ...


class NullSink:
    def begin(self, sha256: str, size: int) -> None:
        pass

    def write(self, data: bytes) -> None:
        pass

    def commit(self) -> None:
        pass

    def abort(self) -> None:
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
        self.fh: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray) -> int:  # type: ignore[override]
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

    def __init__(self, raw: BinaryIO, limit: int) -> None:
        self.raw, self.limit, self.used = raw, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray) -> int:  # type: ignore[override]
        room = self.limit - self.used
        if room <= 0:
            if self.raw.read(1):
                raise BundleFormatError("the bundle holds more data than its signed manifest accounts for")
            return 0
        view = memoryview(buf)[: min(len(buf), room)]
        try:
            n = self.raw.readinto(view)
        except zstandard.ZstdError as exc:
            raise BundleFormatError(f"the zstd stream is damaged or truncated ({exc})") from exc
        self.used += n
        return n


def _padded(n: int) -> int:
    return -(-n // _BLOCK) * _BLOCK


def _member(tar: tarfile.TarFile, name: str, max_size: int, expect_size: int | None = None) -> tarfile.TarInfo:
    try:
        info = tar.next()
    except (tarfile.TarError, EOFError) as exc:
        raise BundleFormatError(f"the bundle is truncated or damaged where {name} should be ({exc})") from exc
    if info is None:
        raise BundleFormatError(f"the bundle ends where {name} should be: it is truncated or a part is missing")
    if info.name != name:
        raise BundleFormatError(f"unexpected member {_show(info.name)} where {name} should be"
                                + (" (a path outside the bundle)" if info.name.startswith("/") or ".." in info.name.split("/") else ""))
    if not info.isreg():
        raise BundleFormatError(f"member {_show(info.name)} is not a regular file (links and devices are refused)")
    if info.size > max_size or (expect_size is not None and info.size != expect_size):
        raise BundleFormatError(f"member {_show(info.name)} is {info.size} bytes; the manifest says {expect_size if expect_size is not None else f'at most {max_size}'}")
    return info


def _read_small(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    fh = tar.extractfile(info)
    assert fh is not None
    try:
        data = fh.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise BundleFormatError(f"the bundle is truncated inside {info.name} ({exc})") from exc
    if len(data) != info.size:
        raise BundleFormatError(f"the bundle is truncated inside {info.name}")
    return data


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _one_zstd_frame(parts: Sequence[Path]) -> None:
    """The bundle is exactly one zstd frame, nothing before or after it (a skippable frame would be
    skipped by the decoder, unseen). Walks the frame's block headers only: one seek per block."""
    sizes = [p.stat().st_size for p in parts]
    total = sum(sizes)
    handles: dict[int, BinaryIO] = {}

    def read(offset: int, n: int) -> bytes:
        out = b""
        for i, (part, size) in enumerate(zip(parts, sizes)):
            if offset >= size:
                offset -= size
                continue
            fh = handles.setdefault(i, open(part, "rb"))
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


def _open(paths: Sequence[Path]) -> tuple[_Concat, _Bounded, tarfile.TarFile, io.BufferedReader]:
    parts = bundle_parts(paths)
    _one_zstd_frame(parts)
    concat = _Concat(parts)
    dctx = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW_SIZE)
    try:
        zr = dctx.stream_reader(concat, read_across_frames=True, read_size=_CHUNK)
    except zstandard.ZstdError as exc:
        raise BundleFormatError(f"not a zstd stream ({exc})") from exc
    bounded = _Bounded(zr, MAX_MANIFEST_BYTES + MAX_SIGNATURE_BYTES + 4 * _BLOCK)  # type: ignore[arg-type]
    buffered = io.BufferedReader(bounded, _CHUNK)
    try:
        tar = tarfile.open(fileobj=buffered, mode="r|", tarinfo=_BoundedTarInfo)
    except (tarfile.TarError, zstandard.ZstdError) as exc:
        raise BundleFormatError(f"not a bundle: {exc}") from exc
    return concat, bounded, tar, buffered


def read_manifest_unverified(paths: Sequence[Path]) -> Manifest:
    """The manifest, parsed but NOT checked against any key (for `bundle show`)."""
    concat, _, tar, _ = _open(paths)
    try:
        raw = _read_small(tar, _member(tar, MANIFEST, MAX_MANIFEST_BYTES))
        return Manifest.parse(raw)
    finally:
        concat.close()


def read_bundle(paths: Sequence[Path], trusted: Sequence[PublicKey], sink: BlobSink, *,
                before_blobs: Callable[[Manifest, PublicKey], None] = lambda m, k: None,
                on_bytes: Callable[[int], None] = lambda n: None) -> tuple[Manifest, PublicKey]:
    """Verify a bundle in one pass, handing each verified blob to `sink`; raises on the first fault."""
    if not trusted:
        raise SignatureError("no trusted keys: add the signer's public key with `mirror trust add KEY.pub`, or pass --trust")
    concat, bounded, tar, buffered = _open(paths)
    try:
        raw = _read_small(tar, _member(tar, MANIFEST, MAX_MANIFEST_BYTES))
        sig_info = _member(tar, SIGNATURE, MAX_SIGNATURE_BYTES)
        signature = parse_signature(_read_small(tar, sig_info))
        signer = verify(list(trusted), raw, signature)
        manifest = Manifest.parse(raw)
        if manifest.signer != signer.id_hex:
            raise SignatureError(f"the manifest names signer {manifest.signer} but key {signer.id_hex} signed it")
        # From here the signed manifest bounds the stream: headers, padded blobs and the tar trailer.
        bounded.limit = bounded.used + sum(_BLOCK + _padded(n) for _, n in manifest.blobs) + 2 * tarfile.RECORDSIZE
        before_blobs(manifest, signer)
        for sha, size in manifest.blobs:
            info = _member(tar, blob_member(sha), size, size)
            fh = tar.extractfile(info)
            assert fh is not None
            h = hashlib.sha256()
            got = 0
            sink.begin(sha, size)
            try:
                while chunk := fh.read(_CHUNK):
                    h.update(chunk)
                    sink.write(chunk)
                    got += len(chunk)
                    on_bytes(len(chunk))
                if got != size:
                    raise BundleFormatError(f"the bundle is truncated inside blob {sha}")
                if h.hexdigest() != sha:
                    raise BundleFormatError(f"blob {sha} does not match its sha256 (got {h.hexdigest()}): the bundle was altered")
            except (tarfile.TarError, EOFError) as exc:
                sink.abort()
                raise BundleFormatError(f"the bundle is truncated inside blob {sha} ({exc})") from exc
            except BaseException:
                sink.abort()
                raise
            sink.commit()
        try:
            extra = tar.next()
        except (tarfile.TarError, EOFError) as exc:
            raise BundleFormatError(f"the bundle's end is damaged ({exc})") from exc
        if extra is not None:
            raise BundleFormatError(f"member {_show(extra.name)} is not in the signed manifest")
        try:
            rest = buffered.read()
        except zstandard.ZstdError as exc:
            raise BundleFormatError(f"data after the end of the bundle is damaged ({exc})") from exc
        if rest.strip(b"\0"):
            raise BundleFormatError("the bundle has data after its last member that the manifest does not cover")
        return manifest, signer
    finally:
        concat.close()
