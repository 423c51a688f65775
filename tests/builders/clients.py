"""The real clients sites run, for the client matrix: pip lines from 20.3 to the newest, the pip each
CPython 3.8 to 3.13 bundles (pyenv builds, where the machine has them), and uv (current and one older
minor). Wheels are fetched once by scripts/test set-up (`python -m tests.builders.clients fetch`) into
.cache/clients/, so the suite runs offline."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


CACHE = REPO / ".cache" / "clients"
# 20.3: the first with the new resolver; 22.3 to 23.1 crash on a JSON `dist-info-metadata` dict
# (23.0.1 is Debian bookworm's python3-pip); 26.1: the first that installs from pylock.toml.


PIP_LINES = ("20.3.4", "21.3.1", "22.3.1", "23.0.1", "23.2.1", "24.3.1", "25.3", "26.1.2", "26.3")


UV_LINES = ("0.12.24", "0.13.9")
# What a packaged project's setuptools build asks for besides setuptools (tests/e2e/test_upstream_names.py).
BUILD_WHEELS = ("wheel==0.45.1",)


BUNDLING_PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")


PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"


@dataclass(frozen=True, slots=True, kw_only=True)
class Client:
    """One client to run: `kind` pip or uv, its version, and the Python it installs into."""

    kind: str
    version: str
    python: str | None  # the interpreter of the target venv; None: not on this machine
    python_version: str  # "3.11"
    wheel: Path | None  # the pip wheel run as `python PIP.whl/pip`, or the uv wheel holding the binary
    why_missing: str = ""

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.version}-py{self.python_version}"


def pyenv_python(minor: str) -> str | None:
    """The newest pyenv CPython of a minor version on this machine."""
    if not PYENV.is_dir():
        return None
    found = sorted((p for p in PYENV.glob(f"{minor}.*") if p.name.replace(".", "").isdigit()
                    and p.name.count(".") == 2), key=lambda p: tuple(int(x) for x in p.name.split(".")))
    exe = found[-1] / "bin" / "python3" if found else None
    return str(exe) if exe and exe.exists() else None



HOST = f"{sys.version_info[0]}.{sys.version_info[1]}"


def matrix() -> list[Client]:
    out: list[Client] = []
    for v in PIP_LINES:
        whl = next(CACHE.glob(f"pip-{v}-*.whl"), None)
        out.append(Client(kind="pip", version=v, python=sys.executable, python_version=HOST,
                          wheel=whl, why_missing="" if whl else f"pip {v} not cached in {CACHE} (scripts/test set-up fetches it)"))
    for minor in BUNDLING_PYTHONS:
        exe = pyenv_python(minor)
        whl = next((Path(exe).parents[1] / "lib" / f"python{minor}" / "ensurepip" / "_bundled").glob("pip-*.whl"),
                   None) if exe else None
        version = whl.name.split("-")[1] if whl else "bundled"
        out.append(Client(kind="pip", version=version, python=exe, python_version=minor, wheel=whl,
                          why_missing="" if whl else f"no CPython {minor} on this machine (pyenv) to take its bundled pip from"))
    for v in UV_LINES:
        whl = next(CACHE.glob(f"uv-{v}-*.whl"), None)
        out.append(Client(kind="uv", version=v, python=sys.executable, python_version=HOST,
                          wheel=whl, why_missing="" if whl else f"uv {v} not cached in {CACHE}"))
    return out


def uv_exe(client: Client, dest: Path) -> Path:
    """The uv binary out of its wheel (once per folder)."""
    exe = dest / f"uv-{client.version}"
    if not exe.exists():
        with zipfile.ZipFile(client.wheel) as zf:
            name = next(n for n in zf.namelist() if n.endswith("/scripts/uv"))
            exe.write_bytes(zf.read(name))
        exe.chmod(0o755)
    return exe


def fetch() -> None:
    """Fetch every pinned client wheel not yet cached, from PyPI only (this machine's pip settings shut out)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    want = [f"pip=={v}" for v in PIP_LINES if not any(CACHE.glob(f"pip-{v}-*.whl"))]
    want += [f"uv=={v}" for v in UV_LINES if not any(CACHE.glob(f"uv-{v}-*.whl"))]
    want += [w for w in BUILD_WHEELS if not any(CACHE.glob(w.replace("==", "-") + "-*.whl"))]
    if not want:
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    for req in want:  # one at a time: pip refuses two versions of one name in one call
        subprocess.run([sys.executable, "-m", "pip", "download", "--isolated", "-q", "--disable-pip-version-check",
                        "--no-deps", "--only-binary", ":all:", "--index-url", "https://pypi.org/simple",
                        "--dest", str(CACHE), req], check=True, env=env)


if __name__ == "__main__":
    if sys.argv[1:] != ["fetch"]:
        raise SystemExit("usage: python -m tests.builders.clients fetch")
    fetch()
