"""Bundles for tests: snapshots of random blobs, signed bundles, their raw members to tamper with,
and what an import may have changed in a store."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import zstandard

from airgap_bundles.keys import generate
from airgap_bundles.writer import create_bundle
from airgap_mirror.store import Store


def snapshot_of(store: Store, blobs: list[bytes], tag: str = "") -> str:
    files = {}
    for i, data in enumerate(blobs):
        sha = store.put_bytes(data)
        files[sha] = {"filename": f"p{i}-1.0-py3-none-any.whl", "project": f"p{i}", "version": "1.0", "kind": "wheel",
                      "size": len(data), "url": None, "requires_python": None, "yanked": None, "upload_time": None,
                      "metadata_sha256": None}
    manifest = {"format_version": 1, "kind": "airgap-mirror/snapshot", "targets": {}, "note": tag,
                "apps": {"app": {"targets": {}}}, "python": {"files": files, "installers": {}, "build": {}}}
    return store.put_snapshot(manifest, origin="sync")


def signed_bundle(tmp_path: Path, blobs: int, blob_size: int) -> tuple[str, Path, Path]:
    """A snapshot of `blobs` random blobs in an outside store, bundled (level 1) and signed:
    (snapshot id, bundle, public key file)."""
    store = Store(tmp_path / "outside").create()
    sid = snapshot_of(store, [os.urandom(blob_size) for _ in range(blobs)])
    key = generate()
    bundle = tmp_path / "big.bundle"
    create_bundle(store, key, bundle, sequence=1, level=1)
    pub = tmp_path / "k.pub"
    pub.write_text(key.public.to_text())
    return sid, bundle, pub


def store_state(store: Store) -> tuple[set[str], set[str], str | None]:
    """What an import may change: blobs, snapshots, the current ref (the tmp folder must stay empty)."""
    blobs = {p.name for p in store.blobs.rglob("*") if p.is_file()}
    snaps = {p.name for p in store.snapshots.glob("*.json")}
    assert not list(store.tmp.iterdir()), "a temp file was left behind"
    return blobs, snaps, store.ref("current")


def raw_tar(bundle: Path) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bundle.read_bytes()), read_across_frames=True).read()


def recompress(tar_bytes: bytes, dest: Path) -> Path:
    dest.write_bytes(zstandard.ZstdCompressor(level=3, write_checksum=True).compress(tar_bytes))
    return dest


def bundle_members(bundle: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(raw_tar(bundle)), mode="r:") as tar:
        for m in tar.getmembers():
            out.append((m, tar.extractfile(m).read() if m.isreg() else b""))
    return out


def rebuild(members: list[tuple[tarfile.TarInfo, bytes]], dest: Path) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return recompress(buf.getvalue(), dest)


def assert_refused(bad: Path, key, message: str, inside: Store) -> None:  # noqa: ANN001  (a SecretKey)
    """`bad` is refused by verify and by import with `message`, and the inside store is unchanged."""
    import pytest

    from airgap_bundles.errors import BundleFormatError, SignatureError
    from airgap_bundles.importer import import_bundle, verify_bundle

    with pytest.raises((BundleFormatError, SignatureError), match=message):
        verify_bundle([bad], [key.public])
    with pytest.raises((BundleFormatError, SignatureError), match=message):
        import_bundle(inside, [bad], [key.public], publish=False)
    _, snaps, current = store_state(inside)
    assert not snaps and current is None


def small_bundle(tmp_path: Path, key=None, name: str = "b.bundle") -> tuple[Store, object, Path]:  # noqa: ANN001
    """A store with one small snapshot, and its bundle signed with `key` (a new one by default)."""
    store = Store(tmp_path / "outside").create()
    snapshot_of(store, [b"abc" * 100])
    key = key or generate()
    out = tmp_path / name
    create_bundle(store, key, out, sequence=1)
    return store, key, out
