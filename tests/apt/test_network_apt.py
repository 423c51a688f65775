"""Against Debian bookworm itself (network): apt-get's own choice on a real minimal system (the dpkg
status of the cached debootstrap minbase root) is within our closure, exactly so when we are given that
status, and apt installs from our repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apt.archive import Source, load_suite
from apt.aptfile import read_aptfile
from apt.closure import Request, Universe, minimal_system, resolve_closure
from apt.closure import Base
from tests.builders import realtarget
from tests.builders.cli import Served, run_mirror
from tests.builders.debs import AptRoot

pytestmark = [pytest.mark.network,
              pytest.mark.skipif(realtarget.skip_reason() is not None, reason=str(realtarget.skip_reason()))]
DEBIAN = "http://deb.debian.org/debian"
CORPUS = Path(__file__).parents[3] / "shared" / "corpus" / "apps"


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory):
    cache = tmp_path_factory.mktemp("aptcache")
    indexes = load_suite(Source(url=DEBIAN, suite="bookworm"), ["amd64"], cache).indexes
    universe = Universe(indexes, "amd64", searched=["bookworm"])
    base = minimal_system(universe)
    status = _real_status()
    root = tmp_path_factory.mktemp("aptroot")
    apt = AptRoot(root)
    apt.add_source(DEBIAN, "bookworm", Path("/usr/share/keyrings/debian-archive-keyring.gpg"))
    apt.set_status(status)
    apt.run("update")
    return universe, base, apt, Base.from_status(status, "minbase root")


def _real_status() -> str:
    """/var/lib/dpkg/status of the cached debootstrap minbase root: a real target, not a model."""
    import tarfile

    with tarfile.open(realtarget.ROOT_TAR) as tar:
        return tar.extractfile("./var/lib/dpkg/status").read().decode()


@pytest.mark.parametrize("packages", [
    ["unixodbc", "unixodbc-dev"],
    [p.name for p in read_aptfile(CORPUS / "apt-facture-tess" / "Aptfile").packages],
    [p.name for p in read_aptfile(CORPUS / "apt-pdf-tools-business" / "Aptfile").packages],
], ids=["unixodbc", "apt-facture-tess", "apt-pdf-tools-business"])
def test_closure_equals_apts_own(bookworm, packages):
    universe, base, apt, real = bookworm
    apts = apt.simulate(*packages)
    requests = [Request(name=p, origin="test") for p in packages]
    assert set(resolve_closure(universe, requests, real).packages) == apts   # given the target's own status
    assert set(resolve_closure(universe, requests, base).packages) >= apts   # the default base: never less


def test_apt_installs_unixodbc_from_our_repository(tmp_path):
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
        apt.set_status(_real_status())
        apt.run("update")
        apt.run("install", "--download-only", "unixodbc", "unixodbc-dev")
        got = {p.name.split("_")[0] for p in (apt.root / "var/cache/apt/archives").glob("*.deb")}
        assert {"unixodbc", "unixodbc-dev", "libodbc2"} <= got
    finally:
        served.stop()


def test_mirror_inits_config_syncs_an_aptfile_against_debians_archives(tmp_path):
    """`mirror init`'s own config (bookworm, -updates and -security, whose Release names a binary-all
    index it does not have) syncs an Aptfile with no warning: the indexes read are the ones apt reads."""
    run_mirror("init", str(tmp_path / "mirror.toml"))
    app = tmp_path / "apps" / "a"
    app.mkdir(parents=True)
    (app / "Aptfile").write_text("cowsay\n")
    summary = json.loads(run_mirror("sync", "--config", str(tmp_path / "mirror.toml"), "--installers", "", "--json").stdout)
    assert summary["ok"] and not summary["warnings"], summary
    snap = json.loads(next((tmp_path / "mirror-store" / "store-v1" / "snapshots").glob("*.json")).read_text())
    sources = snap["apt"]["targets"]["bookworm-amd64"]["sources"]
    assert {s["suite"] for s in sources} == {"bookworm", "bookworm-updates", "bookworm-security"}
    assert "cowsay" in {n for n, _, _ in snap["apps"]["a"]["apt"]["bookworm-amd64"]["packages"]}
