"""A wheel's METADATA, as the catalog and the served PEP 658 files get it: read from the central
directory straight to the one member, with zipfile's answer in every case (zip64, a prefix, stored or
deflated, none, two, too large, a CRC that does not match)."""

from __future__ import annotations

import io
import zipfile
import zlib

import pytest

from airgap_mirror.store import distinfo
from airgap_mirror.store.distinfo import read_wheel

METADATA = b"Metadata-Version: 2.1\nName: demo\nVersion: 1.0\nRequires-Python: >=3.9\n\nA description.\n"


def _wheel(path, members, *, compression=zipfile.ZIP_DEFLATED, zip64=False, comment=b"", prefix=b""):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = compression
            with zf.open(info, "w", force_zip64=zip64) as fh:
                fh.write(data)
        zf.comment = comment
    path.write_bytes(prefix + buf.getvalue())
    return path


def _both(path):
    """(the direct reader's answer or "unusual", zipfile's answer)"""
    try:
        fast = distinfo._metadata_member(path)
    except distinfo._Unusual:
        fast = "unusual"
    return fast, distinfo._metadata_member_by_zipfile(path)


MANY = [(f"demo/m{i}.py", b"x = %d\n" % i) for i in range(300)]


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED])
def test_the_metadata_among_many_members(tmp_path, compression):
    whl = _wheel(tmp_path / "demo-1.0-py3-none-any.whl",
                 [*MANY, ("demo-1.0.dist-info/WHEEL", b"Wheel-Version: 1.0\n"), ("demo-1.0.dist-info/METADATA", METADATA),
                  ("demo-1.0.dist-info/RECORD", b"")], compression=compression, comment=b"a comment")
    assert _both(whl) == (METADATA, METADATA)
    info = read_wheel(whl)
    assert info is not None and info.metadata == METADATA and info.requires_python == ">=3.9"


def test_names_that_only_look_like_it_do_not_count(tmp_path):
    whl = _wheel(tmp_path / "a.whl", [("demo-1.0.dist-info/METADATA.bak", b"no"), ("x/demo-1.0.dist-info/METADATA", b"no"),
                                      ("demo-1.0.dist-info/METADATA", METADATA)])
    assert _both(whl) == (METADATA, METADATA)


def test_none_or_two_is_no_metadata(tmp_path):
    assert _both(_wheel(tmp_path / "none.whl", MANY)) == (None, None)
    two = _wheel(tmp_path / "two.whl", [("a-1.dist-info/METADATA", METADATA), ("b-1.dist-info/METADATA", METADATA)])
    assert _both(two) == (None, None)
    assert read_wheel(two) is None


def test_a_member_too_large_is_not_read(tmp_path, monkeypatch):
    monkeypatch.setattr(distinfo, "_MAX_MEMBER", len(METADATA) - 1)
    whl = _wheel(tmp_path / "big.whl", [("demo-1.0.dist-info/METADATA", METADATA)])
    assert _both(whl) == (None, None)


def test_a_damaged_member_is_refused_as_zipfile_refuses_it(tmp_path):
    whl = _wheel(tmp_path / "bad.whl", [("demo-1.0.dist-info/METADATA", METADATA)], compression=zipfile.ZIP_STORED)
    data = whl.read_bytes()
    at = data.index(b"Name: demo")
    whl.write_bytes(data[:at] + b"Name: evil" + data[at + 10:])  # same length, CRC no longer matches
    assert _both(whl) == (None, None)
    assert read_wheel(whl) is None


def test_zip64_and_a_prefix_are_left_to_zipfile(tmp_path):
    z64 = _wheel(tmp_path / "z64.whl", [("demo-1.0.dist-info/METADATA", METADATA)], zip64=True)
    prefixed = _wheel(tmp_path / "pre.whl", [("demo-1.0.dist-info/METADATA", METADATA)], prefix=b"#!/bin/sh\nexit 0\n")
    for whl in (z64, prefixed):
        fast, slow = _both(whl)
        assert slow == METADATA and fast in ("unusual", METADATA)
        assert read_wheel(whl).metadata == METADATA


def test_not_a_zip_or_a_missing_file(tmp_path):
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip at all")
    assert read_wheel(junk) is None
    assert read_wheel(tmp_path / "missing.whl") is None


def test_a_truncated_wheel(tmp_path):
    whl = _wheel(tmp_path / "t.whl", [*MANY, ("demo-1.0.dist-info/METADATA", METADATA)])
    data = whl.read_bytes()
    whl.write_bytes(data[: len(data) // 2])
    assert read_wheel(whl) is None
    assert zlib  # (deflate is what wheels use)


def test_a_deflate_stream_that_does_not_inflate(tmp_path):
    """zipfile raised zlib's error out of read_wheel for it (a wheel as its index published it: the
    hash matched); now no metadata, by either reader."""
    whl = _wheel(tmp_path / "z.whl", [("demo-1.0.dist-info/METADATA", METADATA * 50)])
    data = bytearray(whl.read_bytes())
    at = data.index(b"PK\x03\x04") + 30 + len("demo-1.0.dist-info/METADATA")
    data[at:at + 8] = b"\xff" * 8  # the first bytes of the deflate stream: an invalid block type
    whl.write_bytes(bytes(data))
    assert _both(whl) == (None, None)
    assert read_wheel(whl) is None


def _sdist(path, members):
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return path


PYPROJECT = b'[build-system]\nrequires = ["hatchling>=1.20"]\nbuild-backend = "hatchling.build"\n'


def test_an_sdist_is_read_up_to_the_last_file_wanted(tmp_path):
    """PKG-INFO and pyproject.toml, the first top-level one of each (the reading stops once both are
    in: same answers for the corpus's 198 real sdists, measured in the note); an sdist whose tail is
    damaged (published so: its hash only says it is what the index has) still gives them, and one
    without pyproject.toml, read to its damaged end, gives what it has, never an error."""
    filler = [(f"demo-1.0/src/f{i}.c", bytes(range(256)) * 64) for i in range(200)]
    good = _sdist(tmp_path / "demo-1.0.tar.gz", [("demo-1.0/PKG-INFO", METADATA), *filler[:10],
                                                 ("demo-1.0/pyproject.toml", PYPROJECT), *filler[10:],
                                                 ("demo-1.0/PKG-INFO", b"Metadata-Version: 2.1\nRequires-Python: >=2.7\n")])
    info = distinfo.read_sdist(good)
    assert info.requires_python == ">=3.9" and info.build_requires == ("hatchling>=1.20",)
    data = bytearray(good.read_bytes())
    for at in range(len(data) * 3 // 4, len(data) - 16, 97):  # the last quarter: damaged deflate data
        data[at] ^= 0x5A
    damaged = tmp_path / "damaged-1.0.tar.gz"
    damaged.write_bytes(bytes(data))
    with pytest.raises((zlib.error, OSError, EOFError)):  # (as gzip itself finds it)
        import gzip

        gzip.decompress(bytes(data))
    assert distinfo.read_sdist(damaged) == info
    legacy = bytearray(_sdist(tmp_path / "legacy-1.0.tar.gz", [("legacy-1.0/PKG-INFO", METADATA), *filler]).read_bytes())
    for at in range(len(legacy) * 3 // 4, len(legacy) - 16, 97):
        legacy[at] ^= 0x5A
    (tmp_path / "legacy-1.0.tar.gz").write_bytes(bytes(legacy))
    got = distinfo.read_sdist(tmp_path / "legacy-1.0.tar.gz")
    assert got.requires_python == ">=3.9" and got.build_requires == distinfo.LEGACY_BUILD_REQUIRES


@pytest.mark.parametrize("form", ["zip", "tar.gz", "tar.bz2", "tar.xz", "tar"])
def test_an_sdist_is_read_by_its_content_whatever_its_name(tmp_path, form):
    """The store names a blob by its sha256: a .zip sdist (numpy-1.20.1.zip) was read as a tar and
    its real build requirements lost."""
    import io
    import tarfile
    import zipfile

    files = {"pkg-1.0/PKG-INFO": b"Metadata-Version: 2.1\nName: pkg\nVersion: 1.0\nRequires-Python: >=3.7\n",
             "pkg-1.0/pyproject.toml": b'[build-system]\nrequires = ["setuptools<49.2.0", "Cython>=0.29.21,<3.0"]\n'}
    blob = tmp_path / ("ab" * 32)  # as the store names it: no suffix
    if form == "zip":
        with zipfile.ZipFile(blob, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in files.items():
                zf.writestr(name, data)
    else:
        mode = {"tar.gz": "w:gz", "tar.bz2": "w:bz2", "tar.xz": "w:xz", "tar": "w"}[form]
        with tarfile.open(blob, mode) as tf:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    info = distinfo.read_sdist(blob)
    assert info.build_requires == ("setuptools<49.2.0", "Cython>=0.29.21,<3.0") and info.requires_python == ">=3.7"


def test_a_stores_zip_sdists_are_read_again_once(tmp_path):
    """A store synced before: its catalog holds the legacy build requirements for every .zip sdist;
    the next sync reads them again by content, once."""
    import zipfile

    from airgap_mirror.store import CatalogFile, open_store
    from airgap_mirror.sync.downloads import correct_sdist_facts

    store = open_store(tmp_path / "s", create=True)
    src = tmp_path / "numpy-1.20.1.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("numpy-1.20.1/PKG-INFO", "Metadata-Version: 2.1\nName: numpy\nVersion: 1.20.1\n")
        zf.writestr("numpy-1.20.1/pyproject.toml", '[build-system]\nrequires = ["setuptools<49.2.0", "wheel<=0.35.1"]\n')
    sha = store.put_file(src)
    store.record_pyfile(CatalogFile(sha256=sha, filename=src.name, project="numpy", version="1.20.1", kind="sdist",
                                    size=src.stat().st_size, url="https://example.invalid/" + src.name,
                                    build_requires=distinfo.LEGACY_BUILD_REQUIRES))
    correct_sdist_facts(store)
    assert store.pyfile(sha, src.name).build_requires == ("setuptools<49.2.0", "wheel<=0.35.1")
    store.record_pyfile(CatalogFile(sha256=sha, filename=src.name, project="numpy", version="1.20.1", kind="sdist",
                                    size=src.stat().st_size, build_requires=("x",)))
    correct_sdist_facts(store)  # done once: the flag is set
    assert store.pyfile(sha, src.name).build_requires == ("x",)
