"""The installed wheel's import names are our own: a system-wide install (an image's
/usr/local/lib/python3.X/dist-packages, `pip install --break-system-packages`) never shadows Debian's
python3-apt, whose `import apt` unattended-upgrades and apt-listchanges run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_PYTHON = Path("/usr/bin/python3")
DEBIAN_APT = Path("/usr/lib/python3/dist-packages/apt/__init__.py")  # python3-apt (scripts/test installs it)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "PYTHON"))} | {
        "PIP_CONFIG_FILE": os.devnull}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--isolated", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(ROOT)], check=True, env=_env(), capture_output=True)
    return next(out.glob("airgap_mirror-*.whl"))


def test_the_wheel_holds_only_names_of_our_own(wheel: Path):
    with zipfile.ZipFile(wheel) as zf:
        tops = {n.split("/")[0] for n in zf.namelist() if not n.split("/")[0].endswith(".dist-info")}
        sources = {n for n in zf.namelist() if n.endswith(".py")}
    assert tops == {"airgap_mirror", "airgap_apt", "airgap_bundles"}
    # every module of the folders is in it, under its import name
    names = {"mirror": "airgap_mirror", "apt": "airgap_apt", "bundles": "airgap_bundles"}
    expected = {str(Path(names[p.parts[0]], *p.parts[1:])) for folder in names
                for p in (q.relative_to(ROOT) for q in (ROOT / folder).rglob("*.py"))}
    assert expected == sources


@pytest.mark.skipif(not DEBIAN_APT.is_file(), reason="python3-apt is not installed (scripts/test installs it)")
def test_installed_beside_python3_apt_both_import(wheel: Path, tmp_path: Path):
    """Debian's Python with python3-apt, our wheel installed into it (a venv that sees the system's
    packages, as an image's system-wide install does): `import apt` is Debian's, ours are ours."""
    venv = tmp_path / "venv"
    subprocess.run([str(DEBIAN_PYTHON), "-m", "venv", "--system-site-packages", str(venv)], check=True, env=_env())
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--isolated", "--no-index", "--no-deps", "-q",
                    str(wheel)], check=True, env=_env(), capture_output=True)
    code = ("import json, apt, apt_pkg, airgap_apt, airgap_bundles, airgap_mirror, airgap_mirror.errors\n"
            "apt_pkg.init()\n"
            "print(json.dumps({'apt': apt.__file__, 'cache': hasattr(apt, 'Cache'), 'ours': airgap_apt.__file__,"
            " 'version': airgap_mirror.__version__}))\n")
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, env=_env(),
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["apt"] == str(DEBIAN_APT) and got["cache"]
    assert got["ours"].startswith(str(venv)) and got["version"]
