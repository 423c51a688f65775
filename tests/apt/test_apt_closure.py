"""The closure against a real signed fixture archive, checked against apt-get's own choice."""

from __future__ import annotations

from pathlib import Path

import pytest

from airgap_apt.archive import Source, load_suite
from airgap_apt.closure import Base, Request, Universe, minimal_system, resolve_closure, suggest
from airgap_apt.errors import ArchiveSignatureError, UnsatisfiableError
from tests.builders.debs import AptRoot, status_text

REQUESTS = ["app-tool", "libbar", "needs-api"]


def _universe(server, arch: str, tmp_path: Path) -> Universe:
    indexes = []
    for suite in ("fixture", "fixture-updates"):
        src = Source(url=server.url, suite=suite, keyrings=(server.keyring,))
        indexes += load_suite(src, [arch], tmp_path / "cache").indexes
    return Universe(indexes, arch, searched=["fixture", "fixture-updates"])


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
@pytest.mark.parametrize("recommends", [False, True])
def test_closure_equals_apt_get_simulation(debian_upstream, tmp_path: Path, arch: str, recommends: bool) -> None:
    universe = _universe(debian_upstream, arch, tmp_path)
    base = minimal_system(universe)
    assert set(base.versions) == {"base-req", "libc-fix"}
    ours = resolve_closure(universe, [Request(name=n, origin="test") for n in REQUESTS], base, with_recommends=recommends)

    apt = AptRoot(tmp_path / "aptroot", arch=arch)
    apt.add_source(debian_upstream.url, "fixture fixture-updates", debian_upstream.keyring)
    apt.set_status(status_text(universe, base))
    apt.run("update")
    apts = apt.simulate(*REQUESTS, *(["-o", "APT::Install-Recommends=true"] if recommends else []))
    # apt on an image as new as the suite upgrades none of the base packages we carry for versioned
    # dependencies (libbar pre-depends on libc-fix (>= 1.0)); every other choice is apt's own.
    assert set(ours.packages) - ours.base_upgrades == apts and ours.base_upgrades == {"libc-fix"}
    # What the fixture was built to exercise, so the comparison cannot pass vacuously.
    assert ours.packages["libfoo"].version == "1.2"              # versioned dep met only by -updates
    assert "postfix-fix" in ours.packages and "fallback-mta" not in ours.packages  # first alternative, virtual
    assert "libapi-impl" in ours.packages                         # versioned Provides
    assert {"pyish", "tool-foreign", "data-all", "pre-thing"} <= set(ours.packages)  # :any, M-A foreign, all, Pre-Depends
    assert ("docs-extra" in ours.packages) is recommends
    assert "base-req" not in ours.packages
    assert ours.why["libfoo"] == ("test", "app-tool", "libfoo")


def test_base_none_mirrors_the_complete_closure(debian_upstream, tmp_path: Path) -> None:
    universe = _universe(debian_upstream, "amd64", tmp_path)
    ours = resolve_closure(universe, [Request(name="libbar", origin="t")], Base())
    assert "libc-fix" in ours.packages


def test_status_file_base(debian_upstream, tmp_path: Path) -> None:
    universe = _universe(debian_upstream, "amd64", tmp_path)
    status = "Package: libfoo\nStatus: install ok installed\nVersion: 1.2\nArchitecture: amd64\n\n" \
             "Package: pyish\nStatus: deinstall ok config-files\nVersion: 1.0\nArchitecture: amd64\n"
    base = Base.from_status(status, "image")
    ours = resolve_closure(universe, [Request(name="app-tool", origin="t"), Request(name="libbar", origin="t")], base)
    assert "libfoo" not in ours.packages          # installed on the target at a version that satisfies
    assert "pyish" in ours.packages               # only its config files remain: not installed


def test_unsatisfiable_names_the_chain_and_suites(debian_upstream, tmp_path: Path) -> None:
    universe = _universe(debian_upstream, "amd64", tmp_path)
    with pytest.raises(UnsatisfiableError) as info:
        resolve_closure(universe, [Request(name="broken-dep", origin="app shop (Aptfile:2)")], Base())
    msg = str(info.value)
    assert "app shop (Aptfile:2) → broken-dep" in msg and "does-not-exist (>= 3)" in msg and "fixture-updates" in msg
    with pytest.raises(UnsatisfiableError, match="version 9.9 of libfoo is not in the suites .they have 1.0, 1.2."):
        resolve_closure(universe, [Request(name="libfoo", version="9.9", origin="t")], Base())
    with pytest.raises(UnsatisfiableError, match="did you mean app-tool"):
        resolve_closure(universe, [Request(name="app-tol", origin="t")], Base())


def test_suggestions_for_rpm_and_retired_names() -> None:
    names = ["unixodbc", "unixodbc-dev", "python3-dev", "libpq-dev", "python3-evdev"]
    assert suggest("unixODBC-devel", names)[0] == "unixodbc-dev"
    assert suggest("python-dev", names)[0] == "python3-dev"


def test_close_names_are_difflibs_answer_found_faster() -> None:
    """The suggestions leave out, before comparing, only names that cannot reach difflib's cutoff:
    the same answer as difflib.get_close_matches over the whole pool, for names close to many,
    to a few, and to none."""
    import difflib
    import random

    from airgap_apt.closure import _close_matches

    rng = random.Random(7)
    parts = ["lib", "python3", "dev", "gl", "mesa", "ssl", "x11", "qt5", "gtk", "odbc", "png", "jpeg", "z", "v8", "1", "0"]
    pool = {"-".join(rng.choices(parts, k=rng.randint(1, 4))) + rng.choice(["", "1", "6", "-dev", "-0", "3.14"])
            for _ in range(3000)}
    words = [*rng.sample(sorted(pool), 60), "libgl", "libgl1-mesa-glx", "python-dev", "x", "qqqq", "libssl1.0.0",
             *("".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789-.", k=rng.randint(1, 20))) for _ in range(40))]
    for word in words:
        assert _close_matches(word, pool) == difflib.get_close_matches(word, pool, n=4, cutoff=0.75), word


def test_wrong_signature_is_refused(debian_upstream, tmp_path: Path) -> None:
    from tests.builders.debs import stranger_keyring

    ring = stranger_keyring(tmp_path)
    with pytest.raises(ArchiveSignatureError, match="signature does not verify"):
        load_suite(Source(url=debian_upstream.url, suite="fixture", keyrings=(ring,)), ["amd64"], tmp_path / "c")
    # trusted=yes (a :repo: line's choice) skips the check on purpose
    idx = load_suite(Source(url=debian_upstream.url, suite="fixture", keyrings=(ring,), trusted=True), ["amd64"], tmp_path / "c")
    assert any(s.package == "app-tool" for s in idx.stanzas)


def test_release_and_detached_signature_without_inrelease(debian_upstream, tmp_path: Path) -> None:
    import shutil

    from tests.builders.upstreams import StaticServer

    root = tmp_path / "archive"
    shutil.copytree(debian_upstream.root / "dists" / "fixture", root / "dists" / "fixture")
    (root / "dists" / "fixture" / "InRelease").unlink()
    server = StaticServer(root)
    try:
        idx = load_suite(Source(url=server.url, suite="fixture", keyrings=(debian_upstream.keyring,)), ["amd64"], tmp_path / "c")
        assert any(s.package == "app-tool" for s in idx.stanzas)
        (root / "dists" / "fixture" / "Release.gpg").unlink()
        with pytest.raises(Exception, match="unsigned"):
            load_suite(Source(url=server.url, suite="fixture", keyrings=(debian_upstream.keyring,)), ["amd64"], tmp_path / "d")
    finally:
        server.stop()


def test_a_universe_over_whole_indexes_answers_as_over_their_stanzas() -> None:
    """A universe reads a name's paragraphs from the indexes only when asked (a closure visits a few
    of bookworm's 63k): its answers are those of the same stanzas given one by one, across two
    suites, architectures, versions listed twice, Provides and the required set."""
    from airgap_apt.index import PackagesIndex

    main = PackagesIndex(
        "Package: tool\nVersion: 1.0\nArchitecture: amd64\nDepends: libc6, mail-transport-agent\n\n"
        "Package: tool\nVersion: 1.0\nArchitecture: arm64\n\n"
        "Package: libc6\nVersion: 2.36\nArchitecture: amd64\nPriority: required\nProvides: libc6-any\n\n"
        "Package: base-files\nVersion: 12\nArchitecture: all\nEssential: yes\nPriority: required\n\n"
        "Package: exim4\nVersion: 4.96\nArchitecture: amd64\nPriority: standard\nProvides: mail-transport-agent\n\n"
        "Package: postfix\nVersion: 3.7\nArchitecture: amd64\nPriority: optional\nProvides: mail-transport-agent\n\n"
        "Package: old\nVersion: 1\nArchitecture: all\nProvides: gone\n", origin="http://main")
    updates = PackagesIndex(
        "Package: tool\nVersion: 1.1\nArchitecture: amd64\nDepends: libc6\n\n"
        "Package: libc6\nVersion: 2.36\nArchitecture: amd64\nPriority: required\nProvides: libc6-any\n\n"
        "Package: old\nVersion: 2\nArchitecture: all\n", origin="http://updates")
    lazy = Universe([main, updates], "amd64")
    assert not main._made  # nothing read yet
    eager = Universe([*main, *updates], "amd64")
    names = {s.package for s in [*main, *updates]} | {"mail-transport-agent", "libc6-any", "gone", "nothing"}
    for name in sorted(names):
        assert [(s.raw, s.origin) for s in lazy.versions(name)] == [(s.raw, s.origin) for s in eager.versions(name)]
        got, want = lazy.candidate(name), eager.candidate(name)
        assert (got and (got.raw, got.origin)) == (want and (want.raw, want.origin)), name
        assert [(s.package, v) for s, v in lazy.providers(name)] == [(s.package, v) for s, v in eager.providers(name)]
    assert lazy.candidate("tool").version == "1.1" and lazy.candidate("tool").origin == "http://updates"
    assert [s.package for s, _ in lazy.providers("mail-transport-agent")] == ["exim4", "postfix"]
    assert lazy.providers("gone") == []  # only a candidate provides: old 2 does not
    assert sorted(s.package for s in lazy.required()) == sorted(s.package for s in eager.required()) == ["base-files", "libc6"]
    closure = resolve_closure(Universe([main, updates], "amd64"), [Request(name="tool", origin="t")], Base())
    assert sorted(closure.packages) == ["libc6", "tool"]
