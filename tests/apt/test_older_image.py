"""An image older than the suite: the target has an older version of a base package than the one
the app's packages depend on exactly (perl on `perl-base (= 5.36.0-7+deb12u3)` on an image with
deb12u2). The mirror carries the suite's version of such a base package, and apt-get, on a root
whose dpkg status has the old version, installs the app's package from the mirror alone."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.builders.cli import Served, run_mirror
from tests.builders.debs import AptRoot, GpgKey, make_deb, write_archive
from tests.builders.upstreams import StaticServer, apt_config, aptfile_app

# The image was made when the suite had baselib 1.0; a point release brought 2.0 (in -updates).
OLD_STATUS = """Package: baselib
Status: install ok installed
Priority: required
Essential: yes
Version: 1.0
Architecture: amd64

Package: other-base
Status: install ok installed
Priority: required
Version: 1.0
Architecture: amd64
"""


def _old_root(tmp_path: Path, served: Served) -> AptRoot:
    """An apt root whose dpkg status has the release's versions, pointed at our repository alone."""
    apt = AptRoot(tmp_path / "root")
    ring = tmp_path / "airgap-mirror.asc"
    with urllib.request.urlopen(served.base + "/debian/airgap-mirror.asc") as resp:
        ring.write_bytes(resp.read())
    apt.add_source(served.base + "/debian", "fixture", ring)
    apt.set_status(OLD_STATUS)
    apt.run("update")
    return apt


def test_an_image_older_than_the_suite_installs_a_package_that_needs_a_newer_base(tmp_path: Path):
    key = GpgKey.create(tmp_path / "gnupg")
    debs = tmp_path / "debs"
    archive = tmp_path / "archive"
    write_archive(archive, "fixture", [make_deb(debs, "baselib", "1.0", priority="required", essential="yes"),
                                       make_deb(debs, "other-base", "1.0", priority="required"),
                                       make_deb(debs, "unversioned-user", "1.0", depends="other-base")], key, arches="amd64")
    write_archive(archive, "fixture-updates", [
        make_deb(debs, "baselib", "2.0", priority="required", essential="yes"),
        make_deb(debs, "other-base", "2.0", priority="required"),
        make_deb(debs, "app-pkg", "1.0", depends="baselib (= 2.0), other-base"),
    ], key, arches="amd64")
    server = StaticServer(archive)
    try:
        app, config = aptfile_app(tmp_path, "app-pkg\nunversioned-user\n", server.url, key.export(tmp_path / "ring.gpg"),
                                  architectures=["amd64"])
        summary = json.loads(run_mirror("sync", str(app), "--config", config, "--installers", "", "--json").stdout)
        assert summary["ok"], summary
        snap = json.loads((tmp_path / "store" / "store-v1" / "snapshots" / f"{summary['snapshot']}.json").read_text())
        packages = {n: v for n, v, _ in snap["apps"]["a"]["apt"]["fixture-amd64"]["packages"]}
        # baselib: an exact dependency on a base package, carried; other-base: any version will do, not
        assert packages == {"app-pkg": "1.0", "baselib": "2.0", "unversioned-user": "1.0"}
        run_mirror("publish", "--config", config)
        served = Served(tmp_path / "store")
        try:
            apt = _old_root(tmp_path, served)
            apt.run("install", "--download-only", "app-pkg", "unversioned-user")
            got = {p.name for p in (apt.root / "var/cache/apt/archives").glob("*.deb")}
            assert got == {"app-pkg_1.0_amd64.deb", "baselib_2.0_amd64.deb", "unversioned-user_1.0_amd64.deb"}
        finally:
            served.stop()
    finally:
        server.stop()
        key.stop()


def test_apt_get_upgrade_inside_takes_the_bases_security_updates_from_the_mirror(tmp_path: Path):
    """A root built from the suite as released (its dpkg status has the release's versions) gets
    every update the -security suite has for its base from our repository alone, though no app asks
    for those packages (`[apt] patch-base`, on by default)."""
    key = GpgKey.create(tmp_path / "gnupg")
    debs = tmp_path / "debs"
    archive = tmp_path / "archive"
    write_archive(archive, "fixture", [make_deb(debs, "baselib", "1.0", priority="required", essential="yes"),
                                       make_deb(debs, "other-base", "1.0", priority="required"),
                                       make_deb(debs, "tool", "1.0")], key, arches="amd64")
    write_archive(archive, "fixture-updates", [], key, arches="amd64")
    write_archive(archive, "fixture-security", [make_deb(debs, "other-base", "1.0+deb1", priority="required",
                                                         depends="baselib (>= 1.0)")], key, arches="amd64")
    server = StaticServer(archive)
    try:
        app = tmp_path / "apps" / "a"
        app.mkdir(parents=True)
        (app / "Aptfile").write_text("tool\n")
        ring = key.export(tmp_path / "ring.gpg")
        config = tmp_path / "mirror.toml"
        config.write_text('[store]\npath = "store"\n' + apt_config(server.url, ring, architectures=["amd64"]).replace(
            'suites = ["{distro}", "{distro}-updates"]', 'suites = ["{distro}", "{distro}-updates", "{distro}-security"]'))
        summary = json.loads(run_mirror("sync", str(app), "--config", str(config), "--installers", "", "--json").stdout)
        assert summary["ok"], summary
        snap = json.loads((tmp_path / "store" / "store-v1" / "snapshots" / f"{summary['snapshot']}.json").read_text())
        updates = snap["apt"]["targets"]["fixture-amd64"]["base_updates"]["packages"]
        assert updates == [["baselib", "1.0", "amd64"], ["other-base", "1.0+deb1", "amd64"]]
        assert {n for n, _, _ in snap["apps"]["a"]["apt"]["fixture-amd64"]["packages"]} == {"tool"}
        run_mirror("publish", "--config", str(config))
        served = Served(tmp_path / "store")
        try:
            apt = _old_root(tmp_path, served)  # the release's versions
            apt.run("upgrade", "--download-only")
            got = {p.name for p in (apt.root / "var/cache/apt/archives").glob("*.deb")}
            assert got == {"other-base_1.0+deb1_amd64.deb"}
        finally:
            served.stop()
        # --no-apt-patch-base: no updates carried
        plain = json.loads(run_mirror("sync", str(app), "--config", str(config), "--installers", "", "--json",
                                      "--no-apt-patch-base").stdout)
        snap = json.loads((tmp_path / "store" / "store-v1" / "snapshots" / f"{plain['snapshot']}.json").read_text())
        assert "base_updates" not in snap["apt"]["targets"]["fixture-amd64"]
    finally:
        server.stop()
        key.stop()
