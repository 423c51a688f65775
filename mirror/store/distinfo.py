"""Reading what a distribution file says of itself: wheel METADATA, sdist PKG-INFO and build-system."""

from __future__ import annotations

import io
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["WheelInfo", "SdistInfo", "read_wheel", "read_sdist", "read_pkg_info", "LEGACY_BUILD_REQUIRES"]

# pip's fallback for an sdist without pyproject.toml [build-system].
LEGACY_BUILD_REQUIRES = ("setuptools>=40.8.0", "wheel")
_MAX_MEMBER = 16 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class WheelInfo:
    metadata: bytes
    requires_python: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SdistInfo:
    requires_python: str | None
    build_requires: tuple[str, ...]


def _requires_python(metadata: bytes) -> str | None:
    import email.parser  # (8 ms to import: not for a sync that reads no wheel)

    msg = email.parser.BytesParser().parsebytes(metadata, headersonly=True)
    value = msg.get("Requires-Python")
    return str(value).strip() if value else None


def read_wheel(path: Path) -> WheelInfo | None:
    """The wheel's .dist-info/METADATA (for PEP 658), or None if the wheel has none."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                return None
            info = zf.getinfo(names[0])
            if info.file_size > _MAX_MEMBER:
                return None
            data = zf.read(info)
    except (zipfile.BadZipFile, OSError):
        return None
    return WheelInfo(metadata=data, requires_python=_requires_python(data))


def _sdist_members(path: Path, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """Top-level files of an sdist (inside its one root folder) by base name."""
    found: dict[str, bytes] = {}
    name = path.name.lower()
    try:
        if name.endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    parts = info.filename.strip("/").split("/")
                    if len(parts) == 2 and parts[1] in wanted and info.file_size <= _MAX_MEMBER:
                        found.setdefault(parts[1], zf.read(info))
        else:
            with tarfile.open(path) as tf:
                for member in tf:
                    parts = member.name.strip("/").split("/")
                    if len(parts) == 2 and parts[1] in wanted and member.isfile() and member.size <= _MAX_MEMBER:
                        fh = tf.extractfile(member)
                        if fh is not None:
                            found.setdefault(parts[1], fh.read())
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError):
        pass
    return found


def read_pkg_info(path: Path) -> bytes | None:
    """An sdist's PKG-INFO (the metadata that names it), or None when it has none."""
    return _sdist_members(path, ("PKG-INFO",)).get("PKG-INFO")


def read_sdist(path: Path) -> SdistInfo:
    """Requires-Python and the PEP 517/518 build requirements of an sdist."""
    members = _sdist_members(path, ("PKG-INFO", "pyproject.toml"))
    requires_python = _requires_python(members["PKG-INFO"]) if "PKG-INFO" in members else None
    build_requires: tuple[str, ...] = LEGACY_BUILD_REQUIRES
    if "pyproject.toml" in members:
        try:  # (loaded here: a sync of wheels alone reads no TOML)
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            data = tomllib.load(io.BytesIO(members["pyproject.toml"]))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            data = {}
        system = data.get("build-system")
        if isinstance(system, dict) and isinstance(system.get("requires"), list):
            build_requires = tuple(str(r) for r in system["requires"])
    return SdistInfo(requires_python=requires_python, build_requires=build_requires)
