"""Conda targets (subdir and virtual packages of a Python target), channel URLs and folders, and the
SBOM description of a conda package."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airgap_mirror.interfaces import SbomHook
    from airgap_mirror.store.model import SectionFile


DEFAULT_ALIAS = "https://conda.anaconda.org"


DEFAULTS = ("https://repo.anaconda.com/pkgs/main", "https://repo.anaconda.com/pkgs/r")


_LINUX_KERNEL = "4.18"  # a kernel old enough for any site's machine; packages rarely ask for more


@dataclass(frozen=True, slots=True)
class CondaTarget:
    subdir: str
    virtual: tuple[tuple[str, str], ...]  # (name, version)

    @property
    def id(self) -> str:
        glibc = dict(self.virtual).get("__glibc")
        cuda = dict(self.virtual).get("__cuda")
        return self.subdir + (f"-glibc{glibc}" if glibc else "") + (f"-cuda{cuda}" if cuda else "")


def conda_target(python_target: object, cuda: str | None = None) -> CondaTarget:
    """The conda subdir and virtual packages of a Python target (airgap_mirror.resolve.targets.PythonTarget)."""
    family, arch, version = python_target._parsed_platform  # type: ignore[attr-defined]
    if family == "manylinux":
        subdir = {"x86_64": "linux-64", "aarch64": "linux-aarch64", "ppc64le": "linux-ppc64le",
                  "s390x": "linux-s390x", "i686": "linux-32", "armv7l": "linux-armv7l"}.get(arch, f"linux-{arch}")
        virtual = [("__glibc", f"{version[0]}.{version[1]}"), ("__linux", _LINUX_KERNEL), ("__unix", "0")]
    elif family == "musllinux":
        raise ValueError("conda has no musl subdir")
    elif family == "macos":
        subdir = "osx-arm64" if arch == "arm64" else "osx-64"
        virtual = [("__osx", f"{version[0]}.{version[1]}"), ("__unix", "0")]
    else:
        subdir = "win-64" if "amd64" in arch else "win-arm64" if "arm64" in arch else "win-32"
        virtual = [("__win", "0")]
    if cuda:
        virtual.append(("__cuda", cuda))
    return CondaTarget(subdir, tuple(virtual))


def channel_url(name: str, alias: str = DEFAULT_ALIAS) -> list[str]:
    """The URLs a channel as written in environment.yml stands for: a URL as is, `defaults` as
    Anaconda's main and r, a name under the channel alias (conda.anaconda.org)."""
    name = name.strip().rstrip("/")
    if re.match(r"(https?|file)://", name):
        return [name]
    if name == "defaults":
        return list(DEFAULTS)
    return [f"{alias.rstrip('/')}/{name}"]


def channel_folder(url: str) -> str:
    """The folder a channel is published under (/conda/NAME/): its last path segment, made safe."""
    last = url.rstrip("/").rsplit("/", 1)[-1] or "channel"
    return re.sub(r"[^A-Za-z0-9._-]", "_", last)


def _describe(meta: SectionFile) -> tuple[str, str, str]:
    """A conda package as an SBOM component: (name, version, purl `pkg:conda/NAME@VERSION?build=...`),
    the purl spec's conda type with its build, channel and subdir qualifiers."""
    from urllib.parse import quote

    name, version = str(meta.get("name", "")), str(meta.get("version", ""))
    qualifiers = "&".join(f"{k}={quote(str(meta.get(src)), safe='')}" for k, src in
                          (("build", "build"), ("channel", "channel"), ("subdir", "subdir")) if meta.get(src))
    return name, version, f"pkg:conda/{quote(name)}@{quote(version, safe='')}" + (f"?{qualifiers}" if qualifiers else "")


def _sbom_hook() -> SbomHook:
    from airgap_mirror.interfaces import SbomHook

    return SbomHook(section="conda", describe=_describe)


SBOM = _sbom_hook()
