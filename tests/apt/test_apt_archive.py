"""Reading a suite's Packages index in whichever compressed form its Release lists, whole (from the
cache) or chunk by chunk as it downloads."""

from __future__ import annotations

import gzip
import lzma

import pytest

from airgap_apt.archive import _decompress, _IndexReader
from airgap_apt.index import IndexEntry, PackagesIndex, ReleaseFile, parse_packages

TEXT = b"Package: a\nVersion: 1\n\nPackage: b\nVersion: 2\n"
FORMS = [
    ("main/binary-amd64/Packages.gz", gzip.compress(TEXT)),
    ("main/binary-amd64/Packages.gz", gzip.compress(TEXT[:20]) + gzip.compress(TEXT[20:])),  # two members
    ("main/binary-amd64/Packages.xz", lzma.compress(TEXT)),
    ("main/binary-amd64/Packages", TEXT),
]


@pytest.mark.parametrize(("path", "data"), FORMS)
def test_every_form_decompresses_to_the_same_text(path: str, data: bytes):
    assert _decompress(path, data) == TEXT


# Paragraphs cut anywhere (mid-field, mid-UTF-8 character, on the blank line), a whitespace-only
# separator, trailing bytes after the last gzip member.
BIG = "".join(f"Package: p{i}\nVersion: 1.{i}\n" + (f"Provides: v{i % 7} (= {i}),\n w{i}\n" if i % 3 else "")
              + f"Description: caf\u00e9 {i}\n more\n\n" for i in range(400)).encode()
BIG = BIG.replace(b"\n\nPackage: p7\n", b"\n \t\nPackage: p7\n")


@pytest.mark.parametrize(("path", "data"), [
    *FORMS,
    ("main/binary-amd64/Packages.gz", gzip.compress(BIG)),
    ("main/binary-amd64/Packages.gz", gzip.compress(BIG[:5000]) + gzip.compress(BIG[5000:])),
    ("main/binary-amd64/Packages.gz", gzip.compress(BIG) + b"\0" * 8),
    ("main/binary-amd64/Packages.xz", lzma.compress(BIG)),
    ("main/binary-amd64/Packages", BIG),
])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_an_index_parsed_as_it_downloads_is_the_index_parsed_whole(path: str, data: bytes, chunk: int):
    """What a download indexed chunk by chunk is exactly what the cached file indexes to, and its
    bytes are the downloaded bytes (the signed Release's hash is checked over them)."""
    text = _decompress(path, data)
    whole = parse_packages(text.decode("utf-8", "replace"), origin="o")
    reader = _IndexReader(path, "o")
    reader.fresh()(b"stale bytes of an attempt that failed")  # a retry starts over
    feed = reader.fresh()
    for i in range(0, len(data), chunk):
        feed(data[i:i + chunk])
    assert bytes(reader.raw) == data
    raw, index = reader.finish()
    assert raw == data and list(index) == whole and len(whole) in (2, 400)
    alone = PackagesIndex(text)
    assert (index.data, index.positions, index.provides_at) == (alone.data, alone.positions, alone.provides_at)
    if len(whole) == 400:  # every Provides line found, however the chunks cut it
        assert len(index.provides_at) == 266
        assert [(s.package, v) for s, v in index.provided("v3")] == [(f"p{i}", str(i)) for i in range(400) if i % 3 and i % 7 == 3]
        assert [s.package for s, _ in index.provided("w100")] == ["p100"]
    assert reader.whole == data.endswith(b"\0" * 8)  # followed as it came, but where it cannot be


def test_gz_is_preferred_then_xz_then_plain():
    def release(*names: str) -> ReleaseFile:
        return ReleaseFile(suite="s", codename="s", architectures=("amd64",), components=("main",), acquire_by_hash=False,
                           files={n: IndexEntry(path=n, sha256="0" * 64, size=1) for n in names})

    base = "main/binary-amd64/Packages"
    assert release(base, base + ".xz", base + ".gz").packages_index("main", "amd64").path == base + ".gz"
    assert release(base, base + ".xz").packages_index("main", "amd64").path == base + ".xz"
    assert release(base).packages_index("main", "amd64").path == base
    assert release().packages_index("main", "amd64") is None


def test_paragraphs_are_read_by_the_deb822_rules_in_any_field_order():
    """What indexes the universe (name, version, architecture, Provides) is read the same however a
    paragraph is laid out; the paragraph's text is kept exactly (it is what we publish)."""
    text = ("# a comment paragraph\n\n"
            "Package: a\nVersion: 1\nArchitecture: amd64\nProvides: x (= 1),\n y\nDescription: \U0001F600 \u00e9\n .\n more\n"
            " \t\n"                                         # a line of blanks ends a paragraph too
            "Architecture: all\nVersion: 2\nProvides: z\nPackage: b\n\n\n\n"   # fields in another order
            "Provides: w\nPackage: c\nVersion: 3\n\n"
            "Package: no-version\nArchitecture: all\n\n"     # not a package paragraph: skipped
            "Package: d\nVersion: 4\nDescription: Version: 9\n Package: e\n")
    got = [(s.package, s.version, s.architecture, s.provides) for s in parse_packages(text.encode())]
    assert got == [("a", "1", "amd64", "x (= 1),\n y"), ("b", "2", "all", "z"), ("c", "3", "all", "w"),
                   ("d", "4", "all", None)]
    first = parse_packages(text)[0]
    assert first.raw.endswith("\U0001F600 \u00e9\n .\n more") and first.get("Description").startswith("\U0001F600")
    assert parse_packages(text) == parse_packages(text.encode())  # str or bytes alike
