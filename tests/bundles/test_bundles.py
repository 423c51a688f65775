"""Bundles: deterministic, delta and split creation; verification that refuses every tampering
before anything is trusted; imports that are atomic, resumable and replay-proof."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from airgap_bundles.errors import BaseMissingError, BundleFormatError, ReplayError, SignatureError
from airgap_bundles.format import blob_member
from airgap_bundles.importer import import_bundle, verify_bundle
from airgap_bundles.keys import generate
from airgap_bundles.reader import bundle_parts
from airgap_bundles.writer import create_bundle
from airgap_mirror.errors import InputError
from airgap_mirror.store import Store
from tests.builders.bundles import (
    assert_refused,
    bundle_members,
    raw_tar,
    rebuild,
    recompress,
    signed_bundle,
    snapshot_of,
    store_state,
)
from tests.builders.upstreams import clean_env


@pytest.fixture
def outside(tmp_path: Path):
    store = Store(tmp_path / "outside").create()
    blobs = [os.urandom(200_000) for _ in range(6)] + [b"small text blob\n" * 100]
    sid = snapshot_of(store, blobs)
    key = generate()
    return store, sid, key, blobs


@pytest.fixture
def bundle(outside, tmp_path: Path) -> Path:
    store, _, key, _ = outside
    out = tmp_path / "b" / "full.bundle"
    create_bundle(store, key, out, sequence=5, force=True)
    return out


def test_deterministic_bytes(outside, tmp_path: Path) -> None:
    store, _, key, _ = outside
    a = create_bundle(store, key, tmp_path / "a.bundle", sequence=1, force=True)
    b = create_bundle(store, key, tmp_path / "b.bundle", sequence=1, force=True)
    assert (tmp_path / "a.bundle").read_bytes() == (tmp_path / "b.bundle").read_bytes()
    assert a.bundle_id == b.bundle_id
    c = create_bundle(store, key, tmp_path / "c.bundle", sequence=2, force=True)
    assert c.bundle_id != a.bundle_id
    # Above level 9 zstd's workers compress: how many there are (the machine's cores) changes nothing.
    one = create_bundle(store, key, tmp_path / "w1.bundle", sequence=1, force=True, level=12, threads=1)
    four = create_bundle(store, key, tmp_path / "w4.bundle", sequence=1, force=True, level=12, threads=4)
    assert (tmp_path / "w1.bundle").read_bytes() == (tmp_path / "w4.bundle").read_bytes()
    assert one.bundle_id == four.bundle_id == a.bundle_id   # the id names the content, not its compression


def test_default_sequence_increases_per_key(outside, tmp_path: Path) -> None:
    store, _, key, _ = outside
    seqs = [create_bundle(store, key, tmp_path / f"{i}.bundle").sequence for i in range(3)]
    assert seqs == [1, 2, 3]
    assert create_bundle(store, generate(), tmp_path / "other.bundle").sequence == 1


def test_full_import_round_trip(outside, bundle: Path, tmp_path: Path) -> None:
    store, sid, key, blobs = outside
    inside = Store(tmp_path / "inside").create()
    result = import_bundle(inside, [bundle], [key.public], publish=False)
    assert result.current and inside.ref("current") == sid
    assert inside.load_snapshot(sid) == store.load_snapshot(sid)
    for data in blobs:
        import hashlib
        assert inside.read_blob(hashlib.sha256(data).hexdigest()) == data
    # Importing the same bundle again is harmless and changes nothing.
    before = store_state(inside)
    again = import_bundle(inside, [bundle], [key.public], publish=False)
    assert again.already_imported and again.blobs_written == 0 and store_state(inside) == before


def test_delta_carries_only_new_blobs(outside, bundle: Path, tmp_path: Path) -> None:
    store, sid1, key, blobs = outside
    new = [os.urandom(50_000)]
    sid2 = snapshot_of(store, blobs[:3] + new, tag="second")
    delta = tmp_path / "delta.bundle"
    res = create_bundle(store, key, delta, since=sid1[:12], sequence=6, force=True)
    assert res.blobs == 1 and res.base_snapshot == sid1
    assert delta.stat().st_size < bundle.stat().st_size / 5
    inside = Store(tmp_path / "inside").create()
    with pytest.raises(BaseMissingError, match="delta on snapshot"):
        import_bundle(inside, [delta], [key.public], publish=False)
    assert store_state(inside) == (set(), set(), None)
    import_bundle(inside, [bundle], [key.public], publish=False)
    import_bundle(inside, [delta], [key.public], publish=False)
    assert inside.ref("current") == sid2
    assert inside.load_snapshot(sid2) == store.load_snapshot(sid2)
    # --since an earlier bundle file, and last-exported, pick the same base
    assert create_bundle(store, key, tmp_path / "d2.bundle", since=str(bundle), sequence=7).base_snapshot == sid1
    assert create_bundle(store, key, tmp_path / "d3.bundle", since="last-exported", sequence=8, force=True,
                         allow_empty=True).base_snapshot == sid2  # (the site has sid2 already: an empty delta, asked for)


def test_split_parts_and_stock_minisign(outside, tmp_path: Path) -> None:
    store, sid, key, _ = outside
    keyfile = tmp_path / "k.pub"
    keyfile.write_text(key.public.to_text())
    out = tmp_path / "split.bundle"
    res = create_bundle(store, key, out, split=1 << 20, sequence=1, force=True)
    assert [p.name for p in res.files] == ["split.bundle.001", "split.bundle.002"]
    assert res.files[0].stat().st_size == 1 << 20
    for f in [*res.files, out]:
        sig = f.with_name(f.name + ".minisig")
        target = f
        if f == out:  # the whole: the parts concatenated
            target = tmp_path / "joined"
            target.write_bytes(b"".join(p.read_bytes() for p in res.files))
        proc = subprocess.run(["minisign", "-V", "-p", str(keyfile), "-m", str(target), "-x", str(sig)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    # Import by naming the bundle or its parts; a missing part is named.
    inside = Store(tmp_path / "inside").create()
    import_bundle(inside, [out], [key.public], publish=False)
    assert inside.ref("current") == sid
    res.files[1].unlink()
    res.files[0].rename(tmp_path / "split.bundle.002")
    with pytest.raises(BundleFormatError, match="part 001 is missing"):
        bundle_parts([out])


def test_untrusted_and_replay(outside, bundle: Path, tmp_path: Path) -> None:
    store, sid, key, _ = outside
    inside = Store(tmp_path / "inside").create()
    with pytest.raises(SignatureError, match="not trusted"):
        verify_bundle([bundle], [generate().public])
    with pytest.raises(SignatureError, match="no trusted keys"):
        import_bundle(inside, [bundle], [], publish=False)
    assert store_state(inside) == (set(), set(), None)
    newer = tmp_path / "newer.bundle"
    create_bundle(store, key, newer, sequence=9, force=True)
    import_bundle(inside, [newer], [key.public], publish=False)
    before = store_state(inside)
    with pytest.raises(ReplayError, match="sequence 5 .* not newer than 9"):
        import_bundle(inside, [bundle], [key.public], publish=False)
    assert store_state(inside) == before
    older = import_bundle(inside, [bundle], [key.public], publish=False, allow_older=True)
    assert not older.current and inside.ref("current") == sid  # same snapshot here, but never made current by it


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _tampered(kind: str, bundle: Path, tmp_path: Path) -> Path:
    dest = tmp_path / f"{kind}.bundle"
    members = bundle_members(bundle)
    raw = raw_tar(bundle)
    if kind == "manifest-byte":
        at = raw.index(b'"sequence":5') + len('"sequence":')
        return recompress(raw[:at] + b"6" + raw[at + 1:], dest)
    if kind == "signature-byte":
        info, data = members[1]
        lines = data.split(b"\n")
        lines[1] = lines[1][:20] + (b"A" if lines[1][20:21] != b"A" else b"B") + lines[1][21:]
        members[1] = (info, b"\n".join(lines))
        return rebuild(members, dest)
    if kind == "blob-byte":
        info, data = members[3]
        members[3] = (info, bytes([data[0] ^ 1]) + data[1:])
        return rebuild(members, dest)
    if kind == "zstd-framing":
        shutil.copy(bundle, dest)
        _flip(dest, 2)  # inside the zstd magic number / frame header
        return dest
    if kind == "zstd-body":
        shutil.copy(bundle, dest)
        _flip(dest, dest.stat().st_size // 2)
        return dest
    if kind == "truncated":
        dest.write_bytes(bundle.read_bytes()[: bundle.stat().st_size * 2 // 3])
        return dest
    if kind == "dotdot-member":
        info, data = members[3]
        evil = tarfile.TarInfo("../x")
        evil.size = len(data)
        members.insert(3, (evil, data))
        return rebuild(members, dest)
    if kind == "symlink-member":
        link = tarfile.TarInfo(blob_member(members[2][0].name.rsplit("/", 1)[1]))
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        members[2] = (link, b"")
        return rebuild(members, dest)
    if kind == "extra-member":
        extra = tarfile.TarInfo("blobs/sha256/" + "0" * 64)
        extra.size = 3
        members.append((extra, b"abc"))
        return rebuild(members, dest)
    if kind == "missing-blob":
        del members[4]
        return rebuild(members, dest)
    if kind == "duplicate-blob":
        members.insert(4, members[3])
        return rebuild(members, dest)
    if kind == "unsigned":
        del members[1]
        return rebuild(members, dest)
    if kind == "huge-window":
        # A frame of unknown size that declares a 1 GiB window: a decoder would have to reserve it.
        params = zstandard.ZstdCompressionParameters.from_level(3, window_log=30, write_content_size=False)
        cobj = zstandard.ZstdCompressor(compression_params=params).compressobj()
        data = cobj.compress(raw) + cobj.flush()
        assert zstandard.get_frame_parameters(data).window_size == 1 << 30
        dest.write_bytes(data)
        return dest
    raise AssertionError(kind)


@pytest.mark.parametrize(("kind", "message"), [
    ("manifest-byte", "does not match the signed bytes"),
    ("signature-byte", "does not match the signed bytes|malformed|not base64"),
    ("blob-byte", "does not match its sha256"),
    ("zstd-framing", "not a zstd stream|zstd stream is damaged|not a bundle"),
    ("zstd-body", "zstd stream is damaged|truncated|does not match|nothing may follow"),  # (a block header hit)
    ("truncated", "truncated|damaged"),
    ("dotdot-member", "unexpected member '../x'.*outside the bundle"),
    ("symlink-member", "not a regular file"),
    ("extra-member", "not in the signed manifest"),
    ("missing-blob", "unexpected member|truncated"),
    ("duplicate-blob", "unexpected member"),
    ("unsigned", "unexpected member .blobs/sha256"),
    ("huge-window", "damaged|too much memory|window"),
])
def test_tampering_is_refused_and_the_store_is_unchanged(outside, bundle: Path, tmp_path: Path, kind: str, message: str) -> None:
    store, sid, key, _ = outside
    bad = _tampered(kind, bundle, tmp_path)
    inside = Store(tmp_path / "inside").create()
    assert_refused(bad, key, message, inside)
    # The untouched bundle still imports into the same store afterwards.
    import_bundle(inside, [bundle], [key.public], publish=False)
    assert inside.ref("current") == sid


def test_import_killed_midway_leaves_store_consistent_and_rerun_finishes(tmp_path: Path) -> None:
    sid, out, pub = signed_bundle(tmp_path, 120, 1 << 20)
    inside_root = tmp_path / "inside"
    cmd = [sys.executable, "-m", "airgap_mirror.cli", "bundle", "import", str(out), "--store", str(inside_root),
           "--trust", str(pub), "--no-publish"]
    proc = subprocess.Popen(cmd, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    blobs_dir = inside_root / "store-v1" / "blobs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if blobs_dir.is_dir() and sum(1 for _ in blobs_dir.rglob("*") if _.is_file()) >= 20:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the import finished before it could be killed; make the bundle bigger"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    inside = Store(inside_root)
    assert inside.ref("current") is None and not list(inside.snapshots.glob("*.json"))
    import hashlib
    for blob in (p for p in blobs_dir.rglob("*") if p.is_file()):  # whatever is in, is whole and correct
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    done = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert inside.ref("current") == sid
    assert inside.load_snapshot(sid) == Store(tmp_path / "outside").load_snapshot(sid)


def test_since_must_name_something(outside, tmp_path: Path) -> None:
    store, _, key, _ = outside
    with pytest.raises(InputError, match="--since deadbeef: .deadbeef. names no snapshot"):
        create_bundle(store, key, tmp_path / "x.bundle", since="deadbeef")
    with pytest.raises(InputError, match="has not exported a bundle yet"):
        create_bundle(store, key, tmp_path / "x.bundle", since="last-exported")
