"""Real lock apps, mirrored from PyPI and installed inside with their own tools and their locks
unchanged (network): Heroku's Python buildpack fixtures (locks the real uv, Poetry and pipenv made,
for Python 3.14), synced for 3.14, served under pypi.org's names in a network namespace of the
test's own, and installed in a Debian sid root with Debian's Python 3.14 (this machine has 3.11
only): `uv sync --locked --no-default-groups`, `poetry sync --only main`, `pipenv install --deploy`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.builders.cli import run_mirror
from tests.builders.realtarget import CACHE, DEBIAN, Chroot, build_root

pytestmark = pytest.mark.network
REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "data" / "heroku-fixtures"
SID_TAR = CACHE / "sid-amd64-minbase.tar"
TOOLS_TAR = CACHE / "sid-py314-tools-v1.tar"  # the sid root with python3.14, uv, Poetry 2.5.1 and pipenv 2026.10.3


def _host_ca() -> Path | None:
    """The CA bundle this machine reaches PyPI with (SSL_CERT_FILE, where a proxy inspects TLS)."""
    found = os.environ.get("SSL_CERT_FILE")
    return Path(found) if found and Path(found).is_file() else None


def _tools_root() -> None:
    """sid minbase + Debian's python3.14 + the tools from PyPI, kept as a tar (made once)."""
    if TOOLS_TAR.is_file():
        return
    from airgap_mirror.resolve import uv_binary

    build_root("sid", SID_TAR)
    work = CACHE / "sid-tools.build"
    shutil.rmtree(work, ignore_errors=True)
    root = Chroot(work, SID_TAR)
    (work / "etc/apt/sources.list").write_text(f"deb {DEBIAN} sid main\n")
    # (the archive this machine reaches is a copy of some weeks ago: its sid Release is past Valid-Until)
    (work / "etc/apt/apt.conf.d/99valid-until").write_text('Acquire::Check-Valid-Until "false";\n')
    shutil.copyfile("/etc/resolv.conf", work / "etc/resolv.conf")
    root.run("apt-get", "update", "-qq")
    root.run("apt-get", "install", "-y", "-qq", "--no-install-recommends", "python3.14", "python3.14-venv", "ca-certificates")
    ca = _host_ca()
    if ca is not None:
        shutil.copyfile(ca, work / "etc/host-ca.pem")
    certs = "/etc/host-ca.pem" if ca is not None else "/etc/ssl/certs/ca-certificates.crt"
    root.run("python3.14", "-m", "venv", "/opt/tools")
    root.run("env", f"SSL_CERT_FILE={certs}", f"PIP_CERT={certs}", "PIP_CONFIG_FILE=/dev/null", "/opt/tools/bin/pip", "install",
             "-q", "--disable-pip-version-check", "--index-url", "https://pypi.org/simple", "poetry==2.5.1", "pipenv==2026.10.3")
    shutil.copyfile(uv_binary(), work / "usr/local/bin/uv")
    os.chmod(work / "usr/local/bin/uv", 0o755)
    (work / "etc/resolv.conf").unlink()
    tmp = TOOLS_TAR.with_suffix(".tar.part")
    subprocess.run(["tar", "-C", str(work), "--numeric-owner", "-cf", str(tmp), "."], check=True)
    tmp.replace(TOOLS_TAR)
    shutil.rmtree(work)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("debootstrap") or not shutil.which("unshare"),
                    reason="needs root, debootstrap and unshare")
def test_real_lock_apps_install_inside_with_their_own_tools(tmp_path):
    _tools_root()
    apps = [tmp_path / "apps" / name for name in ("uv_basic", "poetry_basic", "pipenv_basic")]
    for app in apps:
        shutil.copytree(FIXTURES / app.name, app)
    store = tmp_path / "store"
    sync = json.loads(run_mirror("sync", *map(str, apps), "--store", str(store), "--installers", "", "--json").stdout)
    assert sync["ok"] and {a["python"] for a in sync["apps"]} == {"3.14"}, sync
    run_mirror("publish", "--store", str(store))
    root = tmp_path / "sid"
    root.mkdir()
    with tarfile.open(TOOLS_TAR) as tar:
        tar.extractall(root, filter="fully_trusted")
    shutil.copytree(tmp_path / "apps", root / "apps")
    proc = subprocess.run(["unshare", "--net", "--mount", "--", sys.executable, "-m", "tests.e2e.lock_tools_inside_driver",
                           str(tmp_path), str(store), str(root)],
                          capture_output=True, text=True, cwd=REPO, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["python"].startswith("3.14.") and seen["locks_unchanged"], seen
    from packaging.utils import canonicalize_name

    for tool in ("uv", "poetry", "pipenv"):
        installed = {canonicalize_name(n) for n in seen[tool]}
        assert "typing-extensions" in installed and "pytest" not in installed, (tool, seen[tool])  # main only
