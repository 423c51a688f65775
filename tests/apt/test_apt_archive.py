"""Reading a suite's Packages index in whichever compressed form its Release lists."""

from __future__ import annotations

import gzip
import lzma

import pytest

from apt.archive import _decompress
from apt.index import IndexEntry, ReleaseFile

TEXT = b"Package: a\nVersion: 1\n\nPackage: b\nVersion: 2\n"


@pytest.mark.parametrize(("path", "data"), [
    ("main/binary-amd64/Packages.gz", gzip.compress(TEXT)),
    ("main/binary-amd64/Packages.gz", gzip.compress(TEXT[:20]) + gzip.compress(TEXT[20:])),  # two members
    ("main/binary-amd64/Packages.xz", lzma.compress(TEXT)),
    ("main/binary-amd64/Packages", TEXT),
])
def test_every_form_decompresses_to_the_same_text(path: str, data: bytes):
    assert _decompress(path, data) == TEXT


def test_gz_is_preferred_then_xz_then_plain():
    def release(*names: str) -> ReleaseFile:
        return ReleaseFile(suite="s", codename="s", architectures=("amd64",), components=("main",), acquire_by_hash=False,
                           files={n: IndexEntry(path=n, sha256="0" * 64, size=1) for n in names})

    base = "main/binary-amd64/Packages"
    assert release(base, base + ".xz", base + ".gz").packages_index("main", "amd64").path == base + ".gz"
    assert release(base, base + ".xz").packages_index("main", "amd64").path == base + ".xz"
    assert release(base).packages_index("main", "amd64").path == base
    assert release().packages_index("main", "amd64") is None
