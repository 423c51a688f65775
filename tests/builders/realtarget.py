"""A real Debian target: a `debootstrap --variant=minbase` root of bookworm, and a slice of bookworm
(Debian's own signed InRelease, its amd64 Packages, and the .debs a few real apps need) to serve
offline. Both are made once by scripts/test set-up (`python -m tests.builders.realtarget build`) and cached
under .cache/targets/; tests unpack a fresh copy of the root and run apt-get in it by chroot."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


CACHE = REPO / ".cache" / "targets"


SUITE = "bookworm"


ARCH = "amd64"


DEBIAN = "http://deb.debian.org/debian"


DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")


ROOT_TAR = CACHE / f"{SUITE}-{ARCH}-minbase.tar"
# Debian 13, stable since August 2025 (python:3.x-slim images are trixie): apt 3 checks signatures with sqv.
TRIXIE_TAR = CACHE / f"trixie-{ARCH}-minbase.tar"
# arm64, run here under qemu-user-static (binfmt_misc): a minbase bookworm root, and what an app
# needs of the slice to get a real aarch64 CPython with venv.
ARM64_TAR = CACHE / f"{SUITE}-arm64-minbase.tar"
ARM64_PACKAGES = ("python3-venv",)


SLICE = CACHE / f"{SUITE}-slice"
# Made anew when what the closure takes changes (v2: the base packages a versioned dependency names).
SLICE_DONE = SLICE / "complete-v2"
ARM64_DONE = SLICE / "complete-arm64-v1"
# What the real-target tests install: dependencies on perl:any and python3:any (neither is in a
# minimal system), and a .deb named by URL.


SLICE_PACKAGES = ("cowsay", "python3-six")


URL_DEB = "hello"


def skip_reason() -> str | None:
    """Why the real-target tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "chroot needs root"
    if not ROOT_TAR.is_file() or not SLICE_DONE.is_file():
        return f"no cached {SUITE} root/slice under {CACHE} (scripts/test set-up builds them)"
    return None


class Chroot:
    """A fresh copy of the cached minbase root; apt-get and dpkg-query run inside it."""

    def __init__(self, dest: Path, tar_path: Path = ROOT_TAR) -> None:
        self.root = dest
        dest.mkdir(parents=True)
        with tarfile.open(tar_path) as tar:
            tar.extractall(dest, filter="fully_trusted")
        # Downloads are run as root inside (no _apt sandbox user switching in a plain chroot).
        (dest / "etc/apt/apt.conf.d/99airgap-test").write_text('APT::Sandbox::User "root";\n')
        for f in (dest / "etc/apt/sources.list.d").glob("*"):
            f.unlink()
        (dest / "etc/apt/sources.list").write_text("")

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
        proc = subprocess.run(["chroot", str(self.root), *cmd], capture_output=True, text=True, env=env, timeout=600)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def add_source(self, url: str, suite: str, key: Path, components: str = "main") -> None:
        keyfile = self.root / "etc/apt/keyrings" / key.name
        keyfile.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(key, keyfile)
        (self.root / "etc/apt/sources.list.d/mirror.sources").write_text(
            f"Types: deb\nURIs: {url}\nSuites: {suite}\nComponents: {components}\n"
            f"Signed-By: /etc/apt/keyrings/{key.name}\n")

    def installed(self) -> set[str]:
        out = self.run("dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\\n").stdout
        return {line.split()[0] for line in out.splitlines() if line.split()[1:2] == ["ii"]}


def _download(url: str, dest: Path, sha256: str | None = None) -> None:
    import httpx

    dest.parent.mkdir(parents=True, exist_ok=True)
    data = httpx.get(url, timeout=120, follow_redirects=True).raise_for_status().content
    if sha256 and hashlib.sha256(data).hexdigest() != sha256:
        raise SystemExit(f"{url}: sha256 mismatch")
    tmp = dest.with_suffix(dest.suffix + ".part")
    tmp.write_bytes(data)
    tmp.replace(dest)


def arm64_reason() -> str | None:
    """Why arm64 cannot run here (no qemu-user-static registered with binfmt_misc), or None."""
    if not Path("/proc/sys/fs/binfmt_misc/qemu-aarch64").is_file():
        return "qemu-aarch64 is not registered with binfmt_misc (scripts/test set-up does it)"
    return None


def build_root(suite: str = SUITE, tar_path: Path = ROOT_TAR, arch: str = ARCH) -> None:
    """A `debootstrap --variant=minbase` root of `suite`, kept as a tar (27 s for trixie here; arm64
    under qemu: 86 s)."""
    if tar_path.is_file():
        return
    work = CACHE / f"{suite}-{arch}-root.build"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["debootstrap", "--variant=minbase", f"--arch={arch}", suite, str(work), DEBIAN],
                   check=True, stdout=subprocess.DEVNULL)
    tmp = tar_path.with_suffix(".tar.part")
    subprocess.run(["tar", "-C", str(work), "--numeric-owner", "-cf", str(tmp), "."], check=True)
    tmp.replace(tar_path)
    shutil.rmtree(work)


def build_slice(arch: str = ARCH, packages: tuple[str, ...] = (*SLICE_PACKAGES, URL_DEB), done: Path = SLICE_DONE) -> None:
    """Debian's InRelease and the arch's Packages byte for byte, and the .debs of `packages`' closure
    over our default base, at their Filename paths: a tiny Debian mirror to serve (amd64 and arm64
    share it, as they share Debian's archive)."""
    from airgap_apt.archive import Source, load_suite
    from airgap_apt.closure import Request, Universe, minimal_system, resolve_closure

    if done.is_file():
        return
    src = Source(url=DEBIAN, suite=SUITE, keyrings=(DEBIAN_KEYRING,))
    index = load_suite(src, [arch], CACHE / "apt-cache")
    dists = SLICE / "dists" / SUITE
    _download(f"{DEBIAN}/dists/{SUITE}/InRelease", dists / "InRelease")
    entry = index.release.packages_index("main", arch)
    raw = (CACHE / "apt-cache" / "raw" / entry.sha256).read_bytes()
    for rel in (entry.path, f"{os.path.dirname(entry.path)}/by-hash/SHA256/{entry.sha256}"):
        (dists / rel).parent.mkdir(parents=True, exist_ok=True)
        (dists / rel).write_bytes(raw)
    universe = Universe(index.indexes, arch, searched=[SUITE])
    closure = resolve_closure(universe, [Request(name=n, origin="slice") for n in packages], minimal_system(universe))
    for stanza in closure.packages.values():
        dest = SLICE / stanza.get("Filename")
        if not dest.is_file():
            _download(f"{DEBIAN}/{stanza.get('Filename')}", dest, stanza.get("SHA256"))
    done.write_text(entry.sha256 + "\n")


def url_deb_path() -> str:
    """The slice path of URL_DEB's .deb (for an Aptfile URL line)."""
    return next(str(p.relative_to(SLICE)) for p in (SLICE / "pool").rglob(f"{URL_DEB}_*.deb"))


if __name__ == "__main__":
    if sys.argv[1:] != ["build"]:
        raise SystemExit("usage: python -m tests.builders.realtarget build")
    CACHE.mkdir(parents=True, exist_ok=True)
    build_root()
    build_root("trixie", TRIXIE_TAR)
    build_slice()
    if arm64_reason() is None:
        build_root(SUITE, ARM64_TAR, "arm64")
        build_slice("arm64", ARM64_PACKAGES, ARM64_DONE)
