"""Debian trixie as a real target: a `debootstrap --variant=minbase trixie` root (apt 3, which checks
signatures with sqv) trusts our repository through a deb822 .sources entry with Signed-By, with no
warning about our key or signature, and installs from it (dpkg runs for real)."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.builders import realtarget
from tests.builders.cli import Served, run_mirror
from tests.builders.debs import GpgKey, make_deb, write_archive
from tests.builders.upstreams import StaticServer, aptfile_app

pytestmark = pytest.mark.skipif(not realtarget.TRIXIE_TAR.is_file(),
                                reason="no cached trixie root (scripts/test set-up builds it)")


def test_a_trixie_root_installs_from_our_repository_with_no_warning(tmp_path: Path):
    key = GpgKey.create(tmp_path / "gnupg")
    debs = tmp_path / "debs"
    archive = tmp_path / "archive"
    write_archive(archive, "fixture", [make_deb(debs, "hello-lib", "1.0"),
                                       make_deb(debs, "hello-tool", "1.0", depends="hello-lib (>= 1.0)")], key,
                  arches="amd64")
    write_archive(archive, "fixture-updates", [], key, arches="amd64")
    server = StaticServer(archive)
    try:
        app, config = aptfile_app(tmp_path, "hello-tool\n", server.url, key.export(tmp_path / "ring.gpg"),
                                  architectures=["amd64"])
        assert json.loads(run_mirror("sync", str(app), "--config", config, "--installers", "", "--json").stdout)["ok"]
        run_mirror("publish", "--config", config)
    finally:
        server.stop()
        key.stop()
    served = Served(tmp_path / "store")
    try:
        root = realtarget.Chroot(tmp_path / "root", realtarget.TRIXIE_TAR)
        assert root.run("apt-get", "--version").stdout.startswith("apt 3.")
        assert (root.root / "usr/bin/sqv").is_file()  # apt 3 verifies with sqv, not gpgv
        asc = tmp_path / "airgap-mirror.asc"
        with urllib.request.urlopen(served.base + "/debian/airgap-mirror.asc") as resp:
            asc.write_bytes(resp.read())
        root.add_source(served.base + "/debian", "fixture", asc)  # deb822, Signed-By our key
        update = root.run("apt-get", "update")
        out = update.stdout + update.stderr
        assert "Err:" not in out and "W:" not in out and "E:" not in out, out
        install = root.run("apt-get", "install", "-y", "hello-tool")
        assert "W:" not in install.stdout + install.stderr
        assert {"hello-tool", "hello-lib"} <= root.installed()
        assert (root.root / "usr/share/doc/hello-tool/README").read_text() == "hello-tool 1.0\n"
        # sqv really checks: the same tree with one byte of InRelease altered (switched in as a publish
        # would: the server keeps what a tree's pages are once read) is refused.
        import os
        import shutil

        published = tmp_path / "store" / "published"
        altered = published / "trees" / "altered"
        shutil.copytree(published / os.readlink(published / "current"), altered, copy_function=os.link)
        inrelease = altered / "debian" / "dists" / "fixture" / "InRelease"
        data = inrelease.read_bytes()
        inrelease.unlink()
        inrelease.write_bytes(data.replace(b"Suite: fixture", b"Suite: fixturf"))
        os.symlink("trees/altered", published / ".altered")
        os.replace(published / ".altered", published / "current")
        refused = root.run("apt-get", "update", check=False)
        said = refused.stdout + refused.stderr
        assert "Sub-process /usr/bin/sqv returned an error code" in said and "Message has been manipulated" in said, said
    finally:
        served.stop()
