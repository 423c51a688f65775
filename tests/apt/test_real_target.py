"""On a real Debian target, offline: a `debootstrap --variant=minbase` bookworm root (cached by set-up)
and a slice of bookworm itself (Debian's signed InRelease and Packages, real .debs) served on loopback.
Our default base must be a lower bound of the real root, and apt-get inside the root installs an
Aptfile's packages (perl:any and python3:any dependents, a .deb URL, a :repo: line) from our
repository alone, maintainer scripts and all."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.builders import realtarget
from tests.builders.cli import Served, run_mirror
from tests.builders.debs import GpgKey, make_deb, write_archive
from tests.builders.upstreams import StaticServer

pytestmark = pytest.mark.skipif(realtarget.skip_reason() is not None, reason=str(realtarget.skip_reason()))


@pytest.fixture(scope="module")
def bookworm_slice():
    server = StaticServer(realtarget.SLICE)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def root_packages(tmp_path_factory) -> set[str]:
    return realtarget.Chroot(tmp_path_factory.mktemp("probe") / "root").installed()


def test_default_base_is_a_lower_bound_of_a_real_minbase(bookworm_slice, root_packages, tmp_path):
    from airgap_apt.archive import Source, load_suite
    from airgap_apt.closure import Universe, minimal_system

    src = Source(url=bookworm_slice.url, suite=realtarget.SUITE, keyrings=(realtarget.DEBIAN_KEYRING,))
    universe = Universe(load_suite(src, [realtarget.ARCH], tmp_path / "cache").indexes, realtarget.ARCH,
                        searched=[realtarget.SUITE])
    base = set(minimal_system(universe).versions)
    assert base <= root_packages, f"assumed installed but absent from a real minbase: {sorted(base - root_packages)}"
    # Not vacuous: the base covers most of the real system, and the real system has no perl.
    assert len(base) >= 0.9 * len(root_packages)
    assert "perl" not in root_packages and "perl" not in base and "usrmerge" not in base


@pytest.fixture(scope="module")
def vendor_repo(tmp_path_factory):
    """A third-party repository for a :repo: line, signed with its own throwaway key."""
    work = tmp_path_factory.mktemp("vendor")
    key = GpgKey.create(work / "gnupg", "Vendor Repo")
    debs = [make_deb(work / "debs", "vendor-cli", "2.0", "all", depends="perl:any, python3:any")]
    write_archive(work / "repo", "stable", debs, key)
    keyfile = key.export(work / "vendor.gpg")
    key.stop()
    server = StaticServer(work / "repo")
    yield server, keyfile
    server.stop()


def test_apt_get_installs_the_aptfile_inside_a_real_minbase(bookworm_slice, vendor_repo, tmp_path):
    vendor, vendor_key = vendor_repo
    app = tmp_path / "apps" / "cows"
    app.mkdir(parents=True)
    (app / "Aptfile").write_text(
        "cowsay\npython3-six\n"
        f"{bookworm_slice.url}/{realtarget.url_deb_path()}\n"
        f":repo:deb [signed-by={vendor_key}] {vendor.url} stable main\nvendor-cli\n")
    (tmp_path / "mirror.toml").write_text(
        f'[store]\npath = "{tmp_path / "store"}"\n[apps]\npaths = ["{tmp_path / "apps"}/*"]\n'
        f'[apt]\ndistros = ["{realtarget.SUITE}"]\narchitectures = ["{realtarget.ARCH}"]\n'
        f'[[apt.sources]]\nurl = "{bookworm_slice.url}"\nsuites = ["{{distro}}"]\ncomponents = ["main"]\n'
        f'keyrings = ["{realtarget.DEBIAN_KEYRING}"]\n')
    config = str(tmp_path / "mirror.toml")
    summary = json.loads(run_mirror("sync", "--config", config, "--installers", "", "--json").stdout)
    assert summary["ok"], summary
    run_mirror("publish", "--config", config)
    served = Served(tmp_path / "store")
    try:
        root = realtarget.Chroot(tmp_path / "root")
        key = tmp_path / "airgap-mirror.asc"
        with urllib.request.urlopen(served.base + "/debian/airgap-mirror.asc") as resp:
            key.write_bytes(resp.read())
        # The components the app's machines list, as `client-config --app` prints them: main and the
        # app's own (its :repo: and .deb URL packages live there, apart from Debian's).
        advice = run_mirror("client-config", "--url", served.base, "--config", config, "--app", str(app)).stdout
        components = next(line.split(":", 1)[1].strip() for line in advice.splitlines() if line.startswith("Components:"))
        assert components == "main app-cows"
        root.add_source(served.base + "/debian", realtarget.SUITE, key, components=components)
        update = root.run("apt-get", "update")
        assert "Err:" not in update.stdout, update.stdout
        install = root.run("apt-get", "install", "-y", "--no-install-recommends",
                           "cowsay", "python3-six", realtarget.URL_DEB, "vendor-cli")
        assert "127.0.0.1" in install.stdout and "deb.debian.org" not in install.stdout
        assert {"cowsay", "perl", "python3-six", "python3", realtarget.URL_DEB, "vendor-cli"} <= root.installed()
        # Installed for real: maintainer scripts ran and the programs work.
        assert "moo" in root.run("/usr/games/cowsay", "moo").stdout
        assert root.run("python3", "-c", "import six; print(six.__version__)").stdout.strip()
        assert "Hello, world!" in root.run("hello").stdout
    finally:
        served.stop()
