"""Hostile bundles: every length read before the signature holds is bounded (memory measured), every
signed field is type-checked, every name in a signed snapshot is checked before anything is written,
and stale split parts never pass for a new bundle."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from airgap_bundles.errors import BundleFormatError
from airgap_bundles.format import MANIFEST, SIGNATURE
from airgap_bundles.importer import import_bundle, verify_bundle
from airgap_bundles.keys import generate, sign
from airgap_bundles.writer import create_bundle
from airgap_mirror.store import Store
from airgap_mirror.store.canonical import canonical_json
from tests.builders.bundles import assert_refused, small_bundle, snapshot_of, store_state
from tests.builders.upstreams import clean_env

HUGE = 250 << 20


def _zstd_stream(chunks) -> bytes:
    cobj = zstandard.ZstdCompressor(level=1).compressobj()
    out = [cobj.compress(c) for c in chunks]
    out.append(cobj.flush())
    return b"".join(out)


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=tarfile.USTAR_FORMAT if kind == tarfile.REGTYPE else tarfile.GNU_FORMAT)[:512]


def _zeros(n: int):
    block = b"\0" * (1 << 20)
    while n > 0:
        yield block[: min(n, len(block))]
        n -= len(block)


def _huge_member_bundle(dest: Path, kind: str) -> Path:
    if kind == "gnu-longname":
        head = _header("././@LongLink", HUGE, tarfile.GNUTYPE_LONGNAME)
    elif kind == "pax-header":
        head = _header("././@PaxHeader", HUGE, tarfile.XHDTYPE)
    else:  # the manifest member itself
        head = _header(MANIFEST, HUGE)
    dest.write_bytes(_zstd_stream([head, *_zeros(HUGE)]))
    return dest


@pytest.mark.parametrize("kind", ["gnu-longname", "pax-header", "manifest"])
def test_a_huge_claim_before_the_signature_costs_no_memory(tmp_path, kind):
    key = generate()
    pub = tmp_path / "k.pub"
    pub.write_text(key.public.to_text())
    bundle = _huge_member_bundle(tmp_path / "evil.bundle", kind)
    assert bundle.stat().st_size < 1 << 20
    # Measured in a child of its own: getrusage(RUSAGE_CHILDREN) takes the largest child so far, so a
    # fresh interpreter runs the one check.
    probe = subprocess.run(
        [sys.executable, "-c",
         "import resource, subprocess, sys;"
         "p = subprocess.run(sys.argv[1:], capture_output=True, text=True);"
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024);"
         "print(p.returncode); sys.stdout.write(p.stderr)",
         sys.executable, "-m", "airgap_mirror.cli", "bundle", "verify", str(bundle), "--trust", str(pub)],
        capture_output=True, text=True, env=clean_env(), timeout=300)
    rss_mb, code, *err = probe.stdout.splitlines()
    assert int(code) != 0
    assert int(rss_mb) < 200, f"verify used {rss_mb} MB"
    message = "\n".join(err)
    assert len(message) < 2000 and "Traceback" not in message
    assert "extended tar header" in message or "bytes; the manifest says at most" in message


def _bundle_with(tmp_path: Path, change, name: str = "evil") -> tuple[Path, object, Store]:
    """A bundle whose manifest document `change` rewrote, then signed with a trusted key."""
    store = Store(tmp_path / f"outside-{name}").create()
    snapshot_of(store, [os.urandom(1000), b"x" * 300])
    key = generate()
    good = tmp_path / f"{name}-good.bundle"
    create_bundle(store, key, good, sequence=1)
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(good.read_bytes()), read_across_frames=True).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    doc = json.loads(members[0][1])
    change(doc)
    if "snapshot" in doc and isinstance(doc["snapshot"], dict):
        import hashlib

        doc["snapshot_id"] = hashlib.sha256(canonical_json(doc["snapshot"])).hexdigest()
    manifest = canonical_json(doc)
    signature = sign(key, manifest, "evil").to_text().encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in [(MANIFEST, manifest), (SIGNATURE, signature), *[(m.name, d) for m, d in members[2:]]]:
            ti = tarfile.TarInfo(info)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
    bad = tmp_path / f"{name}.bundle"
    bad.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    return bad, key, store


def _first_file(doc):
    return next(iter(doc["snapshot"]["python"]["files"].values()))


SIGNED_BUT_BAD = {
    "sequence-2**64": (lambda d: d.update(sequence=2**64), "sequence"),
    "sequence-2**62": (lambda d: d.update(sequence=2**62), "sequence"),
    "sequence-string": (lambda d: d.update(sequence="9"), "sequence"),
    "sequence-float": (lambda d: d.update(sequence=3.7), "sequence"),
    "sequence-bool": (lambda d: d.update(sequence=True), "sequence"),
    "sequence-zero": (lambda d: d.update(sequence=0), "sequence"),
    "mode": (lambda d: d.update(mode="sideways"), "mode"),
    "blob-size-string": (lambda d: d["blobs"][0].__setitem__(1, "12"), "blobs"),
    "blob-bytes": (lambda d: d.update(blob_bytes=d["blob_bytes"] + 1), "blob_bytes"),
    "filename-dotdot": (lambda d: _first_file(d).update(filename="../../etc/cron.d/x"), "no safe file name"),
    "filename-slash": (lambda d: _first_file(d).update(filename="a/b.whl"), "no safe file name"),
    "filename-nul": (lambda d: _first_file(d).update(filename="a\0.whl"), "no safe file name"),
    "filename-long": (lambda d: _first_file(d).update(filename="a" * 300 + ".whl"), "no safe file name"),
    "app-dotdot": (lambda d: d["snapshot"]["apps"].update({"../../x": {"targets": {}}}), "no safe file name"),
    # /simple/PROJECT/ is a folder of the published tree: each of these moved `current`, used the
    # sequence and then failed to publish, and `mirror serve` would not start until the next bundle.
    "project-absolute": (lambda d: _first_file(d).update(project="/etc/x"), "no safe file name"),
    "project-nul": (lambda d: _first_file(d).update(project="a\0b"), "no safe file name"),
    "project-long": (lambda d: _first_file(d).update(project="p" * 300), "no safe file name"),
    "project-not-a-string": (lambda d: _first_file(d).update(project=["x"]), "no safe file name"),
    "target-slash": (lambda d: d["snapshot"]["apps"]["app"]["targets"].update({"cp311/../..": {}}), "no safe file name"),
    "full-missing-blob": (lambda d: (d["blobs"].remove(next(b for b in d["blobs"] if b[0] != d["sbom"])),
                                     d.update(blob_bytes=sum(n for _, n in d["blobs"]))), "lacks"),
    "sbom-not-carried": (lambda d: d.update(sbom="e" * 64), "sbom"),
}


@pytest.mark.parametrize("case", sorted(SIGNED_BUT_BAD))
def test_a_signed_manifest_with_bad_fields_is_refused_before_anything_is_written(tmp_path, case):
    change, message = SIGNED_BUT_BAD[case]
    bad, key, _ = _bundle_with(tmp_path, change)
    inside = Store(tmp_path / "inside").create()
    assert_refused(bad, key, message, inside)
    assert not store_state(inside)[0]  # not one blob written


def test_the_unchanged_manifest_of_the_same_builder_imports(tmp_path):
    """The builder itself is sound: with no change, the re-signed bundle imports."""
    good, key, _ = _bundle_with(tmp_path, lambda d: None, "same")
    inside = Store(tmp_path / "inside").create()
    import_bundle(inside, [good], [key.public], publish=False)
    assert inside.ref("current")


def test_stale_split_parts_are_removed(tmp_path):
    store = Store(tmp_path / "outside").create()
    snapshot_of(store, [os.urandom(1 << 20) for _ in range(3)])
    key = generate()
    out = tmp_path / "m.bundle"
    first = create_bundle(store, key, out, sequence=1, split=1 << 20, level=1)
    assert len(first.files) >= 3
    snapshot_of(store, [b"small" * 10], tag="second")
    create_bundle(store, key, out, sequence=2, split=1 << 20)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("m.bundle"))
    assert left == ["m.bundle.001", "m.bundle.001.minisig", "m.bundle.minisig"], left
    manifest, _ = verify_bundle([out], [key.public])
    assert manifest.sequence == 2
    # And back to an unsplit bundle: the parts go, the plain file stays.
    create_bundle(store, key, out, sequence=3)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("m.bundle"))
    assert left == ["m.bundle", "m.bundle.minisig"], left


def test_a_skippable_frame_before_the_stream_is_refused(tmp_path):
    _, key, out = small_bundle(tmp_path)
    skippable = b"\x50\x2a\x4d\x18" + (8).to_bytes(4, "little") + b"hidden!!"
    bad = tmp_path / "skip.bundle"
    bad.write_bytes(skippable + out.read_bytes())
    with pytest.raises(BundleFormatError, match="zstd frame"):
        verify_bundle([bad], [key.public])


def test_two_trusted_keys_with_one_id_are_both_tried_and_trust_add_never_replaces_silently(tmp_path):
    from airgap_bundles.errors import KeyFormatError
    from airgap_bundles.keys import PublicKey
    from airgap_bundles.state import BundleState

    _, real, out = small_bundle(tmp_path)
    other = generate()
    # The same 8-byte id, another Ed25519 key.
    impostor = PublicKey(key_id=real.public.key_id, raw=other.public.raw)
    manifest, signer = verify_bundle([out], [impostor, real.public])
    assert signer.raw == real.public.raw
    inside = BundleState(Store(tmp_path / "inside").create())
    f_real, f_imp = tmp_path / "real.pub", tmp_path / "imp.pub"
    f_real.write_text(real.public.to_text())
    f_imp.write_text(impostor.to_text())
    inside.trust(f_real)
    inside.trust(f_real)  # the same key again is fine
    with pytest.raises(KeyFormatError, match="already trusted"):
        inside.trust(f_imp)
    assert [k.raw for k in inside.trusted()] == [real.public.raw]
    inside.trust(f_imp, replace=True)
    assert [k.raw for k in inside.trusted()] == [impostor.raw]


# (CONTTYPE, a "contiguous file", is a regular file to POSIX tar: its bytes are checked like any blob's.)
@pytest.mark.parametrize("kind", ["SYMTYPE", "LNKTYPE", "DIRTYPE", "FIFOTYPE", "CHRTYPE", "BLKTYPE", "GNUTYPE_SPARSE"])
def test_every_tar_member_type_but_a_file_is_refused(tmp_path, kind):
    from tests.builders.bundles import bundle_members, rebuild

    store = Store(tmp_path / "outside").create()
    snapshot_of(store, [os.urandom(3000), b"y" * 100])
    key = generate()
    good = tmp_path / "good.bundle"
    create_bundle(store, key, good, sequence=1)
    members = bundle_members(good)
    info, data = members[2]
    odd = tarfile.TarInfo(info.name)
    odd.type = getattr(tarfile, kind)
    odd.linkname = "/etc/passwd" if kind in ("SYMTYPE", "LNKTYPE") else ""
    odd.size = len(data) if kind == "GNUTYPE_SPARSE" else 0
    members[2] = (odd, data if odd.size else b"")
    bad = rebuild(members, tmp_path / "bad.bundle")
    inside = Store(tmp_path / "inside").create()
    with pytest.raises(BundleFormatError, match="not a regular file|unexpected member|truncated|damaged|bytes; the manifest says"):
        import_bundle(inside, [bad], [key.public], publish=False)
    blobs, snaps, current = store_state(inside)
    assert not snaps and current is None and not blobs


def test_anything_after_the_zstd_frame_is_refused(tmp_path):
    store = Store(tmp_path / "outside").create()
    snapshot_of(store, [os.urandom(300_000)])
    key = generate()
    out = tmp_path / "b.bundle"
    create_bundle(store, key, out, sequence=1, split=1 << 20)
    skippable = b"\x50\x2a\x4d\x18" + (8).to_bytes(4, "little") + b"hidden!!"
    last = sorted(tmp_path.glob("b.bundle.[0-9][0-9][0-9]"))[-1]
    last.write_bytes(last.read_bytes() + skippable)
    with pytest.raises(BundleFormatError, match="follow the bundle's zstd frame"):
        verify_bundle([out], [key.public])
    # A second, ordinary frame after the first is refused the same way.
    last.write_bytes(last.read_bytes()[: -len(skippable)] + zstandard.ZstdCompressor().compress(b"more"))
    with pytest.raises(BundleFormatError, match="follow the bundle's zstd frame"):
        verify_bundle([out], [key.public])


def test_a_bundle_whose_tree_cannot_be_published_leaves_current_and_the_sequence_as_they_were(tmp_path, monkeypatch):
    """The tree is built before `current` moves and the sequence is used: a publish that fails
    (here made to, as a full disk would) leaves the store serving what it served, and the same
    bundle imports once the cause is gone."""
    import airgap_mirror.publish
    from airgap_bundles.state import BundleState

    outside, key = Store(tmp_path / "outside").create(), generate()
    first, second = tmp_path / "first.bundle", tmp_path / "second.bundle"
    snapshot_of(outside, [b"one" * 100])
    create_bundle(outside, key, first, sequence=1)
    snapshot_of(outside, [b"one" * 100, b"two" * 100])
    create_bundle(outside, key, second, sequence=2)
    inside = Store(tmp_path / "inside").create()
    import_bundle(inside, [first], [key.public])
    before = inside.ref("current")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(airgap_mirror.publish, "publish", full_disk)
    with pytest.raises(OSError):
        import_bundle(inside, [second], [key.public])
    assert inside.ref("current") == before
    assert BundleState(inside).last_sequence(key.public.id_hex) == 1
    monkeypatch.undo()
    result = import_bundle(inside, [second], [key.public])
    assert result.current and inside.ref("current") != before


def test_a_deeply_nested_manifest_is_refused_in_one_line_everywhere(tmp_path):
    """An unsigned 'bundle' whose manifest nests 100,000 arrays deep: every command that reads a
    manifest says what it is in one line (a RecursionError traceback in bundle show, diff and
    bundle create --since before)."""
    deep = b"[" * 100_000 + b"]" * 100_000
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in ((MANIFEST, deep), (SIGNATURE, b"untrusted comment: x\nnot a signature\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bad = tmp_path / "deep.bundle"
    bad.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    store = Store(tmp_path / "s").create()
    snapshot_of(store, [b"x" * 100])
    for cmd in (["bundle", "show", str(bad)], ["diff", str(bad), "current", "--store", str(store.root)]):
        proc = subprocess.run([sys.executable, "-m", "airgap_mirror.cli", *cmd], capture_output=True, text=True, env=clean_env())
        assert proc.returncode != 0 and "Traceback" not in proc.stderr and "RecursionError" not in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) <= 2, proc.stderr


def test_a_signed_receipt_whose_snapshot_ids_are_not_hex_is_refused_in_one_line(tmp_path):
    """Checked for length alone, `/../../` plus 57 letters passed as a snapshot id and ended in a
    ValueError traceback when used."""
    from airgap_bundles.receipt import KIND as RECEIPT_KIND

    key = generate()
    doc = {"kind": RECEIPT_KIND, "public_key": key.public.to_text(), "site": "plant-b",
           "snapshots": ["/../../" + "z" * 57], "current": None, "created": "2026-12-07T00:00:00+00:00"}
    receipt = tmp_path / "evil.receipt"
    receipt.write_text(json.dumps({"receipt": doc, "signature": sign(key, canonical_json(doc), "x").to_text()}))
    store = Store(tmp_path / "s").create()
    snapshot_of(store, [b"x" * 100])
    subprocess.run([sys.executable, "-m", "airgap_mirror.cli", "keygen", "--out", str(tmp_path / "k")], check=True,
                   capture_output=True, env=clean_env())
    proc = subprocess.run([sys.executable, "-m", "airgap_mirror.cli", "bundle", "create", "--store", str(store.root), "--key",
                           str(tmp_path / "k.key"), "-o", str(tmp_path / "b.bundle"), "--since-receipt", str(receipt)],
                          capture_output=True, text=True, env=clean_env())
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "not a receipt this tool wrote" in proc.stderr, proc.stderr
