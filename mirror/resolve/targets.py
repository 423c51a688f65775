"""Python targets: the machines inside the gap (version, implementation, platform), never the host.

A target named by its newest platform tag accepts every older compatible one, as pip does on a
real machine of that kind: `manylinux_2_28_x86_64` accepts manylinux_2_17, manylinux2014 and
manylinux1 wheels too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

from packaging import tags as ptags
from packaging.markers import Marker

from airgap_mirror.errors import ConfigError

__all__ = ["PythonTarget", "parse_python_version", "parse_target_pair", "DEFAULT_PYTHON", "DEFAULT_PLATFORM"]

from airgap_mirror.defaults import DEFAULT_PLATFORM, DEFAULT_PYTHON  # noqa: E402  (re-exported)

_MANYLINUX = re.compile(r"manylinux_(\d+)_(\d+)_([a-z0-9_]+)")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_LEGACY_RE = re.compile(r"(manylinux1|manylinux2010|manylinux2014)_([a-z0-9_]+)")
_MUSL = re.compile(r"musllinux_(\d+)_(\d+)_([a-z0-9_]+)")
_MACOS = re.compile(r"macosx_(\d+)_(\d+)_([a-z0-9_]+)")
_WINDOWS = {"win_amd64": ("AMD64", "x86_64-pc-windows-msvc"), "win32": ("x86", "i686-pc-windows-msvc"),
            "win_arm64": ("ARM64", "aarch64-pc-windows-msvc")}  # fmt: skip
# uv's --python-platform knows these manylinux levels (uv pip compile --help).
_UV_MANYLINUX = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
# The oldest glibc each architecture was ever built for on PyPI.
_GLIBC_FLOOR = {"x86_64": 5, "i686": 5}


def parse_python_version(text: str) -> tuple[int, ...]:
    """'3.11' -> (3, 11); '3.11.4' -> (3, 11, 4); anything else is a ConfigError."""
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", text.strip())
    if not m or int(m.group(1)) != 3:
        raise ConfigError(f"not a Python version: {text!r} (write it as 3.11 or 3.11.4)")
    return tuple(int(g) for g in m.groups() if g is not None)


def parse_target_pair(text: str) -> tuple[str, str]:
    """'3.12:manylinux2014_aarch64' -> ('3.12', 'manylinux2014_aarch64'), both checked."""
    python, sep, platform = text.strip().partition(":")
    if not sep or not python or not platform:
        raise ConfigError(f"target {text!r}: write it as PYTHON:PLATFORM, e.g. 3.12:manylinux2014_aarch64")
    target = PythonTarget.parse(python, platform)
    return target.python, target.platform


@dataclass(frozen=True, slots=True, kw_only=True)
class PythonTarget:
    """CPython X.Y[.Z] on one platform, named in pip's tag vocabulary."""

    python: str
    platform: str

    def __post_init__(self) -> None:
        parse_python_version(self.python)
        _parse_platform(self.platform)  # validates

    @classmethod
    def parse(cls, python: str, platform: str) -> PythonTarget:
        return cls(python=python.strip(), platform=platform.strip().replace("-", "_").replace(".", "_"))

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return parse_python_version(self.python)

    @property
    def id(self) -> str:
        major, minor = self.version_tuple[:2]
        return f"cp{major}{minor}-{self.platform}"

    @property
    def _parsed_platform(self) -> tuple[str, str, tuple[int, int]]:
        return _parse_platform(self.platform)

    @property
    def arch(self) -> str:
        family, arch, _ = self._parsed_platform
        return arch

    def platform_tags(self) -> list[str]:
        """Every platform tag this target accepts, most specific first."""
        family, arch, (major, minor) = self._parsed_platform
        if family == "manylinux":
            floor = _GLIBC_FLOOR.get(arch, 17)
            out: list[str] = []
            for glibc_minor in range(minor, floor - 1, -1):
                out.append(f"manylinux_{major}_{glibc_minor}_{arch}")
                for legacy, (lmaj, lmin) in _LEGACY.items():
                    if (lmaj, lmin) == (major, glibc_minor) and (lmin >= 17 or arch in _GLIBC_FLOOR):
                        out.append(f"{legacy}_{arch}")
            return out
        if family == "musllinux":
            return [f"musllinux_{major}_{m}_{arch}" for m in range(minor, -1, -1)]
        if family == "macos":
            return list(ptags.mac_platforms((major, minor), arch))
        return [self.platform]

    def tags(self) -> list[ptags.Tag]:
        """Supported wheel tags in priority order, computed for the target, not the host."""
        pyver = self.version_tuple[:2]
        platforms = self.platform_tags()
        out = list(ptags.cpython_tags(python_version=pyver, platforms=platforms))
        out += list(ptags.compatible_tags(python_version=pyver, interpreter=f"cp{pyver[0]}{pyver[1]}", platforms=platforms))
        return out

    @property
    def tag_set(self) -> frozenset[ptags.Tag]:
        return _tag_set(self)

    def accepts_wheel(self, filename: str) -> bool:
        return not wheel_tags(filename).isdisjoint(self.tag_set)

    def uv_platform(self) -> str:
        """The closest `uv --python-platform` value; our own tag check filters what it lets by."""
        family, arch, (major, minor) = self._parsed_platform
        if family == "manylinux":
            if arch not in ("x86_64", "aarch64"):
                return f"{arch}-unknown-linux-gnu"
            level = max((lvl for lvl in _UV_MANYLINUX if lvl <= minor), default=17)
            return f"{arch}-manylinux_2_{level}"
        if family == "musllinux":
            return f"{arch}-unknown-linux-musl"
        if family == "macos":
            return ("aarch64" if arch == "arm64" else "x86_64") + "-apple-darwin"
        return _WINDOWS[self.platform][1]

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values of the target machine."""
        family, arch, _ = self._parsed_platform
        version = self.version_tuple
        full = ".".join(map(str, version)) if len(version) == 3 else f"{version[0]}.{version[1]}.0"
        if family in ("manylinux", "musllinux"):
            system, sys_platform, os_name, machine = "Linux", "linux", "posix", arch
        elif family == "macos":
            system, sys_platform, os_name, machine = "Darwin", "darwin", "posix", arch
        else:
            system, sys_platform, os_name = "Windows", "win32", "nt"
            machine = _WINDOWS[self.platform][0]
        return {
            "implementation_name": "cpython",
            "implementation_version": full,
            "os_name": os_name,
            "platform_machine": machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": system,
            "platform_version": "",
            "python_full_version": full,
            "python_version": f"{version[0]}.{version[1]}",
            "sys_platform": sys_platform,
        }

    def evaluate(self, marker: Marker | None, extras: frozenset[str] = frozenset()) -> bool:
        if marker is None:
            return True
        env = self.marker_environment()
        if not extras:
            return marker.evaluate({**env, "extra": ""})
        return any(marker.evaluate({**env, "extra": e}) for e in extras)

    def evaluate_in_lock(self, marker: Marker | None, extras: frozenset[str], groups: frozenset[str]) -> bool:
        """A PEP 751 lock's marker: `'x' in extras` and `'g' in dependency_groups` are what the
        install asks for (the app's chosen extras; its default groups and chosen ones)."""
        if marker is None:
            return True
        # (`extra == "x"`, a package's own metadata's form, left false as `evaluate` leaves it: in the
        # lock_file context an absent `extra` raised instead)
        return marker.evaluate({**self.marker_environment(), "extra": "", "extras": extras, "dependency_groups": groups},
                               context="lock_file")

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "python": self.python, "platform": self.platform}


# Architectures wheels are built for, per platform family (PyPI's tags, as pip and uv name them).
_LINUX_ARCHES = ("x86_64", "aarch64", "i686", "armv7l", "ppc64le", "s390x", "riscv64", "ppc64", "armv6l", "loongarch64")
_MACOS_ARCHES = ("x86_64", "arm64", "universal2", "intel", "universal")
_EXAMPLES = ("manylinux_2_28_x86_64", "manylinux_2_28_aarch64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux2014_aarch64", "musllinux_1_2_x86_64", "musllinux_1_2_aarch64", "macosx_11_0_arm64",
             "macosx_10_12_x86_64", "win_amd64", "win32", "win_arm64")


def _unknown_platform(platform: str, why: str) -> ConfigError:
    import difflib

    close = difflib.get_close_matches(platform, _EXAMPLES, n=3, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}?" if close else \
        "use a pip platform tag such as manylinux_2_28_x86_64, manylinux2014_aarch64, musllinux_1_2_x86_64, macosx_11_0_arm64 or win_amd64"
    return ConfigError(f"unknown target platform {platform!r} ({why}): {hint}")


@cache
def _parse_platform(platform: str) -> tuple[str, str, tuple[int, int]]:
    """(family, arch, version) of a pip platform tag; an unknown tag or architecture is a ConfigError
    that names the closest real tags (before any resolver runs)."""
    found: tuple[str, str, tuple[int, int]] | None = None
    if m := _MANYLINUX.fullmatch(platform):
        found = "manylinux", m.group(3), (int(m.group(1)), int(m.group(2)))
    elif m := _LEGACY_RE.fullmatch(platform):
        found = "manylinux", m.group(2), _LEGACY[m.group(1)]
    elif m := _MUSL.fullmatch(platform):
        found = "musllinux", m.group(3), (int(m.group(1)), int(m.group(2)))
    elif m := _MACOS.fullmatch(platform):
        found = "macos", m.group(3), (int(m.group(1)), int(m.group(2)))
    elif platform in _WINDOWS:
        return "windows", platform, (0, 0)
    if found is None:
        raise _unknown_platform(platform, "not a platform tag")
    arches = _MACOS_ARCHES if found[0] == "macos" else _LINUX_ARCHES
    if found[1] not in arches:
        raise _unknown_platform(platform, f"no wheels are built for architecture {found[1]!r}")
    return found


@lru_cache(maxsize=1 << 16)
def wheel_tags(filename: str) -> frozenset[ptags.Tag]:
    """The tags a wheel's file name declares (InvalidWheelFilename when it is not one), parsed once
    a process: a lock names every platform's wheels (744 in a small app's uv.lock), and each app and
    target asks again."""
    from packaging.utils import parse_wheel_filename

    return parse_wheel_filename(filename)[3]


@cache
def _tag_set(target: PythonTarget) -> frozenset[ptags.Tag]:
    return frozenset(target.tags())
