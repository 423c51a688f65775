"""Network: real targets against Debian and PyPI themselves.

- Our default base is a lower bound of what debootstrap installs for a minbase of bookworm, for
  amd64 and arm64 (debootstrap's own resolver, `--print-debs`, where no arm64 root can be built).
- Six corpus apps with an Aptfile install for real (apt-get, maintainer scripts) inside the cached
  bookworm minbase root from our repository alone.
- Six corpus apps install with the pip their runtime.txt Python bundles, from our index alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.builders import realtarget
from tests.builders.cli import Served, run_mirror

pytestmark = pytest.mark.network
ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "apps"
APT_APPS = ("apt-equationreader", "apt-orbital-congestion-dash", "apt-healthscan", "apt-pdf-manipulator",
            "apt-leech-bot", "apt-gesture-detection")
# One per runtime.txt Python, 3.7 to 3.12: each installs with the pip its CPython bundles.
RUNTIME_APPS = ("dsa-avs-explorer", "dsa-airfoil-design", "apt-wasteclassification", "dsa-svm-2022",
                "apt-pdf-tools-business", "req-bakerydemo-heroku")


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_default_base_is_within_debootstraps_minbase(arch, tmp_path):
    from airgap_apt.archive import Source, load_suite
    from airgap_apt.closure import Universe, minimal_system

    proc = subprocess.run(["debootstrap", "--print-debs", "--variant=minbase", f"--arch={arch}", realtarget.SUITE,
                           str(tmp_path / "root"), realtarget.DEBIAN], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    debootstrap = set(proc.stdout.split())
    src = Source(url=realtarget.DEBIAN, suite=realtarget.SUITE, keyrings=(realtarget.DEBIAN_KEYRING,))
    universe = Universe(load_suite(src, [arch], tmp_path / "cache").indexes, arch, searched=[realtarget.SUITE])
    base = set(minimal_system(universe).versions)
    assert base <= debootstrap, sorted(base - debootstrap)
    assert len(base) >= 0.9 * len(debootstrap) and "perl" not in base


def _aptfile_names(app: Path) -> list[str]:
    from airgap_apt.aptfile import read_aptfile

    return [p.name for p in read_aptfile(app / "Aptfile").packages]


@pytest.mark.skipif(realtarget.skip_reason() is not None, reason=str(realtarget.skip_reason()))
def test_corpus_aptfiles_install_inside_a_real_minbase(tmp_path):
    apps = [CORPUS / a for a in APT_APPS]
    store = tmp_path / "store"
    (tmp_path / "apps").mkdir()
    for a in apps:  # only the Aptfile: this test is about the APT side
        (tmp_path / "apps" / a.name).mkdir()
        (tmp_path / "apps" / a.name / "Aptfile").write_bytes((a / "Aptfile").read_bytes())
    summary = json.loads(run_mirror("sync", *(str(tmp_path / "apps" / a.name) for a in apps), "--store", str(store),
                                    "--installers", "", "--json", check=False, timeout=1800).stdout)
    assert summary["ok"], summary
    run_mirror("publish", "--store", str(store))
    served = Served(store)
    try:
        key = tmp_path / "airgap-mirror.asc"
        with urllib.request.urlopen(served.base + "/debian/airgap-mirror.asc") as resp:
            key.write_bytes(resp.read())
        for a in apps:
            names = _aptfile_names(a)
            root = realtarget.Chroot(tmp_path / f"root-{a.name}")
            root.add_source(served.base + "/debian", realtarget.SUITE, key)
            root.run("apt-get", "update")
            install = root.run("apt-get", "install", "-y", "--no-install-recommends", *names)
            assert "deb.debian.org" not in install.stdout
            assert set(names) <= root.installed(), a.name
    finally:
        served.stop()


def test_corpus_apps_install_with_their_runtimes_bundled_pip(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "corpus_run.py"), "--work", str(tmp_path), "--python", "runtime",
         "--client", "pip", "--only", f"^({'|'.join(RUNTIME_APPS)})$", "--jobs", "2", "--timeout", "900"],
        capture_output=True, text=True, cwd=ROOT, timeout=5400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.split() and line.split()[0] in RUNTIME_APPS]
    assert len(rows) == len(RUNTIME_APPS), proc.stdout
    classes = {r[0]: r[1] for r in rows}
    assert "mirror" not in classes.values() and "sync" not in classes.values(), proc.stdout
    assert list(classes.values()).count("ok") >= 3, proc.stdout
