"""arm64 as a real target, run here under qemu-user-static: a `debootstrap --variant=minbase
--arch=arm64 bookworm` root installs an app's Aptfile (python3-venv: a real aarch64 CPython) from
our APT repository, and the app's requirements into a venv of that CPython from our index."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from tests.builders import realtarget
from tests.builders.cli import Served, run_mirror
from tests.builders.upstreams import StaticServer

pytestmark = pytest.mark.skipif(
    realtarget.arm64_reason() is not None or not realtarget.ARM64_TAR.is_file() or not realtarget.ARM64_DONE.is_file(),
    reason=str(realtarget.arm64_reason() or "no cached arm64 root or slice (scripts/test set-up builds them)"))


def test_an_arm64_root_installs_the_aptfile_and_the_apps_wheels_under_qemu(upstream, tmp_path: Path):
    app = tmp_path / "apps" / "armapp"
    app.mkdir(parents=True)
    (app / "Aptfile").write_text("python3-venv\n")
    (app / "requirements.txt").write_text("alpha==1.0\n")
    slice_server = StaticServer(realtarget.SLICE)
    try:
        (tmp_path / "mirror.toml").write_text(
            f'[store]\npath = "store"\n[apps]\npaths = ["apps/*"]\n[python]\nindex-url = "{upstream.url}/simple"\n'
            'installers = []\n[[targets]]\npython = "3.11"\nplatform = "manylinux2014_aarch64"\n'
            f'[apt]\ndistros = ["{realtarget.SUITE}"]\narchitectures = ["arm64"]\n'
            f'[[apt.sources]]\nurl = "{slice_server.url}"\nsuites = ["{{distro}}"]\ncomponents = ["main"]\n'
            f'keyrings = ["{realtarget.DEBIAN_KEYRING}"]\n')
        config = str(tmp_path / "mirror.toml")
        summary = json.loads(run_mirror("sync", "--config", config, "--json").stdout)
        assert summary["ok"], summary
        assert summary["apps"][0]["targets"] == ["cp311-manylinux2014_aarch64", f"{realtarget.SUITE}-arm64"]
        run_mirror("publish", "--config", config)
    finally:
        slice_server.stop()
    served = Served(tmp_path / "store")
    try:
        root = realtarget.Chroot(tmp_path / "root", realtarget.ARM64_TAR)
        assert root.run("uname", "-m").stdout.strip() == "aarch64"
        key = tmp_path / "airgap-mirror.asc"
        with urllib.request.urlopen(served.base + "/debian/airgap-mirror.asc") as resp:
            key.write_bytes(resp.read())
        root.add_source(served.base + "/debian", realtarget.SUITE, key)
        root.run("apt-get", "update")
        install = root.run("apt-get", "install", "-y", "--no-install-recommends", "python3-venv")
        assert "deb.debian.org" not in install.stdout
        root.run("python3", "-m", "venv", "/app-venv")
        root.run("/app-venv/bin/pip", "install", "--disable-pip-version-check", "--index-url", served.simple, "alpha==1.0")
        out = root.run("/app-venv/bin/python", "-c",
                       "import platform, alpha, beta; print(platform.machine(), platform.python_version())").stdout.split()
        assert out[0] == "aarch64" and out[1].startswith("3.11.")
    finally:
        served.stop()
