"""Builders of tiny real .deb files and signed Debian archives, with dpkg-deb, apt-ftparchive and gpg;
and an apt-get that runs against a private root (so the host's apt is never touched)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


def make_deb(dest: Path, name: str, version: str, arch: str = "amd64", **fields: str) -> Path:
    """A real .deb with one file under /usr/share/doc/NAME; extra control fields by keyword
    (depends="a (>= 1) | b", multi_arch="foreign", ...)."""
    root = dest / f".build-{name}-{version}-{arch}"
    (root / "DEBIAN").mkdir(parents=True, exist_ok=True)
    doc = root / "usr" / "share" / "doc" / name
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "README").write_text(f"{name} {version}\n")
    control = {"Package": name, "Version": version, "Architecture": arch, "Maintainer": "Test <t@example.invalid>",
               "Priority": "optional", "Section": "misc", "Description": f"fixture package {name}"}
    for key, value in fields.items():
        control["-".join(p.capitalize() for p in key.split("_"))] = value
    (root / "DEBIAN" / "control").write_text("".join(f"{k}: {v}\n" for k, v in control.items()))
    out = dest / f"{name}_{version.split(':')[-1]}_{arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(out)],
                   check=True, capture_output=True, env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"})
    shutil.rmtree(root)
    return out


@dataclass
class GpgKey:
    """A throwaway OpenPGP key in its own GnuPG home."""

    home: Path
    fingerprint: str = ""

    @classmethod
    def create(cls, home: Path, name: str = "Fixture Archive") -> GpgKey:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = cls(home)
        key.gpg("--passphrase", "", "--quick-generate-key", f"{name} <archive@example.invalid>", "ed25519", "sign", "never")
        out = key.gpg("--with-colons", "--list-secret-keys")
        key.fingerprint = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))
        return key

    def gpg(self, *args: str) -> str:
        return subprocess.run(["gpg", "--homedir", str(self.home), "--batch", "--yes", "--pinentry-mode", "loopback", *args],
                              check=True, capture_output=True, text=True).stdout

    def export(self, dest: Path) -> Path:
        self.gpg("--output", str(dest), "--export", self.fingerprint)
        return dest

    def stop(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"], capture_output=True)


def stranger_keyring(tmp: Path) -> Path:
    """The keyring of a key that signed nothing here: what a wrongly configured keyring looks like."""
    other = GpgKey.create(tmp / "other")
    ring = other.export(tmp / "other.gpg")
    other.stop()
    return ring


def write_archive(root: Path, suite: str, debs: list[Path], key: GpgKey | None, arches: str = "amd64 arm64") -> Path:
    """A Debian archive suite at ROOT/dists/SUITE with its debs under ROOT/pool/SUITE/, signed by `key`."""
    pool = root / "pool" / suite
    pool.mkdir(parents=True, exist_ok=True)
    for d in debs:
        shutil.copy(d, pool / d.name)
    dist = root / "dists" / suite
    for arch in arches.split():
        bdir = dist / "main" / f"binary-{arch}"
        bdir.mkdir(parents=True, exist_ok=True)
        packages = subprocess.run(["apt-ftparchive", "--arch", arch, "packages", f"pool/{suite}"], cwd=root,
                                  check=True, capture_output=True).stdout
        (bdir / "Packages").write_bytes(packages)
        subprocess.run(["xz", "-kf", str(bdir / "Packages")], check=True)
        subprocess.run(["gzip", "-kfn", str(bdir / "Packages")], check=True)  # Debian lists both
    return sign_release(dist, suite, key, arches)


def sign_release(dist: Path, suite: str, key: GpgKey | None, arches: str) -> Path:
    """(Re)writes DIST/Release over every index file under DIST, with `Architectures: arches`, and
    signs it with `key` (InRelease and Release.gpg)."""
    for old in ("Release", "InRelease", "Release.gpg"):
        (dist / old).unlink(missing_ok=True)
    release = subprocess.run(
        ["apt-ftparchive", "-o", f"APT::FTPArchive::Release::Suite={suite}", "-o", f"APT::FTPArchive::Release::Codename={suite}",
         "-o", f"APT::FTPArchive::Release::Architectures={arches}", "-o", "APT::FTPArchive::Release::Components=main",
         "release", "."], cwd=dist, check=True, capture_output=True).stdout
    (dist / "Release").write_bytes(release)
    if key is not None:
        key.gpg("--local-user", key.fingerprint, "--clearsign", "--output", str(dist / "InRelease"), str(dist / "Release"))
        key.gpg("--local-user", key.fingerprint, "--armor", "--detach-sign", "--output", str(dist / "Release.gpg"), str(dist / "Release"))
    return dist


@dataclass
class AptRoot:
    """apt-get confined to a folder: its own sources, lists, cache and dpkg status."""

    root: Path
    arch: str = "amd64"
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for d in ("etc/apt/sources.list.d", "etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/trusted.gpg.d",
                  "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg", "var/log/apt"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        status = self.root / "var/lib/dpkg/status"
        if not status.exists():
            status.write_text("")
        conf = self.root / "apt.conf"
        conf.write_text(
            f'Dir "{self.root}/";\nDir::State::status "{status}";\nAPT::Architecture "{self.arch}";\n'
            f'APT::Architectures {{ "{self.arch}"; }};\nAPT::Sandbox::User "root";\nDebug::NoLocking "1";\n'
            'Acquire::Languages "none";\nAcquire::Retries "0";\nAPT::Install-Recommends "false";\n'
            'Dir::Etc::Parts "apt.conf.d";\nDir::Bin::dpkg "/bin/true";\n'
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("APT_")}
        self.env["APT_CONFIG"] = str(conf)
        self.env.pop("http_proxy", None)
        self.env.pop("HTTP_PROXY", None)

    def set_status(self, text: str) -> None:
        (self.root / "var/lib/dpkg/status").write_text(text)

    def add_source(self, url: str, suites: str, keyring: Path | None, name: str = "test", components: str = "main") -> None:
        signed = f"Signed-By: {keyring}\n" if keyring else "Trusted: yes\n"
        (self.root / "etc/apt/sources.list.d" / f"{name}.sources").write_text(
            f"Types: deb\nURIs: {url}\nSuites: {suites}\nComponents: {components}\n{signed}")

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["apt-get", "-q", "-y", *args], env=self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            raise AssertionError(f"apt-get {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def simulate(self, *packages: str) -> set[str]:
        """The packages `apt-get -s install` would install (Inst lines), names only."""
        out = self.run("-s", "install", *packages).stdout
        return {line.split()[1] for line in out.splitlines() if line.startswith("Inst ")}


def status_text(universe, base) -> str:
    """A dpkg status file in which exactly the base's packages are installed (for apt-get -s)."""
    paras = []
    for name, version in sorted(base.versions.items()):
        stanza = universe.version(name, version)
        fields = [line for line in stanza.raw.splitlines() if not line.startswith(("Filename", "Size", "MD5sum", "SHA"))]
        paras.append("\n".join(["Status: install ok installed", *fields]))
    return "\n\n".join(paras) + "\n"


# What a minimal system of the fixture archive has installed (a dpkg status file).


BASE_STATUS = """Package: base-req
Status: install ok installed
Priority: required
Essential: yes
Version: 1.0
Architecture: {arch}
Depends: libc-fix

Package: libc-fix
Status: install ok installed
Version: 1.0
Architecture: {arch}
"""
