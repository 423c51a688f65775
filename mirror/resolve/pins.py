"""What a lock pins for one target: each package's version and the files that fit the target (wheels by
tag, else the sdist), read from a PEP 751 lock."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name, parse_sdist_filename

from airgap_mirror.errors import ResolutionError
from airgap_mirror.resolve.targets import PythonTarget

if TYPE_CHECKING:
    from packaging.pylock import Pylock


@dataclass(frozen=True, slots=True, kw_only=True)
class PinnedFile:
    filename: str
    url: str
    sha256: str
    kind: str  # "wheel" | "sdist"
    size: int | None = None
    upload_time: str | None = None
    # Where the file came from when `url` is not it (a git commit, an app's own file), for the catalog.
    origin: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Pin:
    name: str
    version: str
    marker: str | None
    files: tuple[PinnedFile, ...]


def _time(value: object) -> str | None:
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    return iso().replace("+00:00", "Z") if iso else str(value)


@functools.lru_cache(maxsize=64)
def read_pylock(data: bytes) -> Pylock:
    """A pylock.toml read once: an app's own lock serves each of its targets (a TOML parse of a
    large lock is 50 ms)."""
    import tomllib

    from packaging.pylock import Pylock
    return Pylock.from_dict(tomllib.loads(data.decode("utf-8")))


def select_files(pylock_bytes: bytes, target: PythonTarget, *, label: str = "",
                 direct: Mapping[str, Sequence[PinnedFile]] | None = None, evaluate_markers: bool = False,
                 extras: frozenset[str] = frozenset(), groups: frozenset[str] = frozenset()) -> list[Pin]:
    """Every wheel the target accepts for each pin, or the sdist when none fits.

    `direct` gives the files of projects the app names by git URL, path or URL (by canonical
    name): the lock then says only which version, and the files are the ones we built or copied.
    `evaluate_markers`: the lock is for every environment (an app's own uv.lock or pylock.toml, not
    uv's answer for this target): a package whose marker the target does not meet is left out;
    `extras` and `groups` are what the app installs besides the lock's default groups (PEP 751).
    """
    # Loaded here, once uv has run: packaging's pylock module and tomllib are 10-20 ms of a start.
    import tomllib

    from packaging.pylock import PylockValidationError
    try:
        lock = read_pylock(pylock_bytes)
    except (PylockValidationError, tomllib.TOMLDecodeError) as exc:
        raise ResolutionError(f"{label}: uv wrote a pylock.toml we cannot read: {exc}") from exc
    pins: list[Pin] = []
    groups = frozenset((*(lock.default_groups or ()), *groups))
    for pkg in lock.packages:
        if evaluate_markers and pkg.marker is not None and not target.evaluate_in_lock(pkg.marker, extras, groups):
            continue
        if pkg.version is None:
            raise ResolutionError(f"{label}: {pkg.name} has no pinned version in the lock")
        own = (direct or {}).get(canonicalize_name(str(pkg.name)))
        if own is not None:
            files = pick_files(own, target)
            if not files:
                raise ResolutionError(f"{label}: {pkg.name}=={pkg.version} was built only as "
                                      f"{', '.join(f.filename for f in own)}, which {target.id} cannot install")
            pins.append(Pin(name=str(pkg.name), version=str(pkg.version),
                            marker=str(pkg.marker) if pkg.marker else None, files=files))
            continue
        wheels: list[PinnedFile] = []
        for w in pkg.wheels or ():
            if not w.url or "sha256" not in w.hashes:
                continue
            fname = w.name or w.url.rsplit("/", 1)[-1]
            if target.accepts_wheel(fname):  # (InvalidWheelFilename for a name that is not a wheel's)
                wheels.append(PinnedFile(filename=fname, url=w.url, sha256=w.hashes["sha256"], kind="wheel",
                                         size=w.size, upload_time=_time(w.upload_time)))
        files = tuple(wheels)
        if not files and pkg.archive is not None:
            raise ResolutionError(f"{label}: {pkg.name} comes from a direct reference the mirror did not build "
                                  "(a dependency named by URL?): name it in the app's requirements too")
        if not files and pkg.sdist is not None and pkg.sdist.url and "sha256" in pkg.sdist.hashes:
            fname = pkg.sdist.name or pkg.sdist.url.rsplit("/", 1)[-1]
            parse_sdist_filename(fname)
            files = (PinnedFile(filename=fname, url=pkg.sdist.url, sha256=pkg.sdist.hashes["sha256"], kind="sdist",
                                size=pkg.sdist.size, upload_time=_time(pkg.sdist.upload_time)),)
        if not files:
            raise ResolutionError(
                f"{label}: {pkg.name}=={pkg.version} has no wheel for {target.id} and no sdist: "
                "pick another version, or another target platform"
            )
        pins.append(Pin(name=str(pkg.name), version=str(pkg.version),
                        marker=str(pkg.marker) if pkg.marker else None,
                        files=tuple(sorted(files, key=lambda f: f.filename))))
    return sorted(pins, key=lambda p: p.name)


def pick_files(files: Sequence[PinnedFile], target: PythonTarget) -> tuple[PinnedFile, ...]:
    """The files of one version a target installs: every wheel it accepts, else the sdist."""
    wheels = [f for f in files if f.kind == "wheel" and target.accepts_wheel(f.filename)]
    chosen = wheels or [f for f in files if f.kind == "sdist"][:1]
    return tuple(sorted(chosen, key=lambda f: f.filename))
