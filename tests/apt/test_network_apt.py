"""Against Debian bookworm itself (network): our closure equals apt's, and apt installs from our repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apt.archive import Source, load_suite
from apt.aptfile import read_aptfile
from apt.closure import Request, Universe, minimal_system, resolve_closure
from tests.builders.debs import AptRoot, status_text
from tests.builders.cli import Served, run_mirror

pytestmark = pytest.mark.network
DEBIAN = "http://deb.debian.org/debian"
CORPUS = Path(__file__).parents[3] / "shared" / "corpus" / "apps"


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory):
    cache = tmp_path_factory.mktemp("aptcache")
    stanzas = load_suite(Source(url=DEBIAN, suite="bookworm"), ["amd64"], cache).stanzas
    universe = Universe(stanzas, "amd64", searched=["bookworm"])
    base = minimal_system(universe)
    root = tmp_path_factory.mktemp("aptroot")
    apt = AptRoot(root)
    apt.add_source(DEBIAN, "bookworm", Path("/usr/share/keyrings/debian-archive-keyring.gpg"))
    apt.set_status(status_text(universe, base))
    apt.run("update")
    return universe, base, apt


@pytest.mark.parametrize("packages", [
    ["unixodbc", "unixodbc-dev"],
    [p.name for p in read_aptfile(CORPUS / "apt-facture-tess" / "Aptfile").packages],
    [p.name for p in read_aptfile(CORPUS / "apt-pdf-tools-business" / "Aptfile").packages],
], ids=["unixodbc", "apt-facture-tess", "apt-pdf-tools-business"])
def test_closure_equals_apts_own(bookworm, packages):
    universe, base, apt = bookworm
    ours = resolve_closure(universe, [Request(name=p, origin="test") for p in packages], base)
    assert set(ours.packages) == apt.simulate(*packages)


def test_apt_installs_unixodbc_from_our_repository(bookworm, tmp_path):
    universe, base, _ = bookworm
    app = tmp_path / "apps" / "odbc"
    app.mkdir(parents=True)
    (app / "Aptfile").write_text("unixodbc\nunixodbc-dev\n")
    store = tmp_path / "store"
    summary = json.loads(run_mirror("sync", str(app), "--store", str(store), "--installers", "", "--json").stdout)
    assert summary["ok"], summary
    run_mirror("publish", "--store", str(store))
    served = Served(store)
    try:
        apt = AptRoot(tmp_path / "root")
        key = tmp_path / "key.asc"
        key.write_bytes((store / "published" / "current" / "debian" / "airgap-mirror.asc").read_bytes())
        apt.add_source(served.base + "/debian", "bookworm", key)
        apt.set_status(status_text(universe, base))
        apt.run("update")
        apt.run("install", "--download-only", "unixodbc", "unixodbc-dev")
        got = {p.name.split("_")[0] for p in (apt.root / "var/cache/apt/archives").glob("*.deb")}
        assert {"unixodbc", "unixodbc-dev", "libodbc2"} <= got
    finally:
        served.stop()
