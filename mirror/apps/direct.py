"""Packages an app names by where they are: git repositories, files and folders in the app, URLs.

Each becomes ordinary distribution files (an sdist, and a wheel when one builds) with a project
name and version, kept in a build cache and then taken into the store like any download, so
the inside index serves them under their project name and the app's lock pins them as
`name==version --hash=...`.

Cache keys make the nightly run cheap: a git commit is built once (a commit pin never touches
the network again; a branch or tag costs one `git ls-remote`), an app's file by its content,
a folder by the content of its files, a URL once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from airgap_mirror.apps import git
from airgap_mirror.apps.appfiles import MAX_ARCHIVE, AppFileError, confine, open_regular
from airgap_mirror.apps.reqfile import DirectRef
from airgap_mirror.credentials import expand, secret_values
from airgap_mirror.errors import InputError, IntegrityError, MirrorError, TransportError
from airgap_mirror.resolve import IndexConfig, PinnedFile, pick_files, uv_binary, uv_env
from airgap_mirror.resolve.targets import PythonTarget
from airgap_mirror.store.distinfo import read_pkg_info
from airgap_mirror.urls import redact_text, strip_credentials

__all__ = ["DirectDist", "materialise", "DirectError"]

_SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "node_modules", "build", "dist", ".tox",
              ".mypy_cache", ".pytest_cache", ".ruff_cache"}
_FORMAT = 1


class DirectError(InputError):
    """A direct reference that cannot be turned into distribution files (names the line)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DirectDist:
    """The distribution files one direct reference became."""

    name: str
    version: str
    files: tuple[PinnedFile, ...]
    origin: str  # credentials removed: git+URL@COMMIT, the app-relative path, or the URL
    commit: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return str(canonicalize_name(self.name))

    def feed(self, target: PythonTarget) -> PinnedFile | None:
        """The file uv should read this project's metadata from for `target`."""
        files = pick_files(self.files, target)
        return files[0] if files else None

    def to_json(self) -> dict[str, object]:
        return {"format": _FORMAT, "name": self.name, "version": self.version, "origin": self.origin,
                "commit": self.commit, "warnings": list(self.warnings),
                "files": [{"filename": f.filename, "sha256": f.sha256, "kind": f.kind, "size": f.size} for f in self.files]}

    @classmethod
    def from_cache(cls, folder: Path) -> DirectDist | None:
        try:
            data = json.loads((folder / "dist.json").read_text(encoding="utf-8"))
            if data.get("format") != _FORMAT:
                return None
            files = tuple(
                PinnedFile(filename=f["filename"], url=(folder / f["filename"]).as_uri(), sha256=f["sha256"],
                           kind=f["kind"], size=f["size"], origin=data["origin"])
                for f in data["files"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not all((folder / f.filename).is_file() for f in files):
            return None
        return cls(name=data["name"], version=data["version"], files=files, origin=data["origin"],
                   commit=data.get("commit"), warnings=tuple(data.get("warnings", ())))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _tree_digest(folder: Path) -> str:
    """The content of a source folder (paths, modes, bytes), build outputs and VCS data left out."""
    h = hashlib.sha256()
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(names):
            p = Path(root) / name
            if p.is_symlink() or not p.is_file():
                continue
            h.update(str(p.relative_to(folder)).encode() + b"\0" + _sha256(p).encode() + b"\n")
    return h.hexdigest()


def _wheel_name_version(path: Path) -> tuple[str, str]:
    name, version, _, _ = parse_wheel_filename(path.name)
    return str(name), str(version)


def _sdist_name_version(path: Path) -> tuple[str, str] | None:
    info = read_pkg_info(path)
    if info is None:
        return None
    import email.parser  # (8 ms to import: only for a local sdist)

    msg = email.parser.BytesParser().parsebytes(info, headersonly=True)
    name, version = msg.get("Name"), msg.get("Version")
    return (str(name).strip(), str(version).strip()) if name and version else None


def _sdist_filename(name: str, version: str, original: str) -> str:
    """PEP 625 name for an sdist (what an index serves); the original when it already parses the same."""
    try:
        n, v = parse_sdist_filename(original)
        if canonicalize_name(n) == canonicalize_name(name) and str(v) == version:
            return original
    except InvalidSdistFilename:
        pass
    ext = ".zip" if original.lower().endswith(".zip") else ".tar.gz"
    return f"{canonicalize_name(name).replace('-', '_')}-{version}{ext}"


class _Builder:
    """Runs `uv build` with the app's indexes (build requirements come from them)."""

    def __init__(self, index: IndexConfig, cache_dir: Path) -> None:
        self.index = index
        self.cache_dir = cache_dir

    def build(self, src: Path, out: Path, *, what: str, sdist: bool, wheel: bool, epoch: int | None = None) -> list[str]:
        """Build into `out`; returns the warning when only part of what was asked was built."""
        env = uv_env(self.index, self.cache_dir)
        if epoch is not None:
            env["SOURCE_DATE_EPOCH"] = str(epoch)
        base = [uv_binary(), "build", str(src), "--out-dir", str(out), "--no-config", "--quiet",
                "--python", sys.executable, "--no-create-gitignore"]
        flags = (["--sdist"] if sdist else []) + (["--wheel"] if wheel else [])
        proc = subprocess.run(base + flags, env=env, capture_output=True, text=True, cwd=out)
        if proc.returncode == 0:
            return []
        secrets = secret_values((self.index.index_url, *self.index.extra_index_urls, *self.index.find_links))
        detail = redact_text(" ".join(proc.stderr.split())[-800:], secrets)
        partial = f"{what}: no wheel could be built here, only the sdist is mirrored ({detail[-300:]})"
        if sdist and wheel:
            # A wheel that does not build here (a compiler, a system library) still leaves the sdist.
            retry = subprocess.run(base + ["--sdist"], env=env, capture_output=True, text=True, cwd=out)
            if retry.returncode == 0:
                return [partial]
        elif wheel:
            return [partial]  # the caller already has the sdist
        raise DirectError(f"{what}: building it failed: {detail}")


def _collect(folder: Path, origin: str, commit: str | None, warnings: list[str], expect: str | None,
             what: str) -> DirectDist:
    """Read what a build folder holds into a DirectDist, checking names agree; writes dist.json."""
    files: list[PinnedFile] = []
    names: set[tuple[str, str]] = set()
    for p in sorted(folder.iterdir()):
        if p.name == "dist.json":
            continue
        if p.name.endswith(".whl"):
            name, version = _wheel_name_version(p)
            kind = "wheel"
        elif not p.name.endswith((".tar.gz", ".zip", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
            continue
        else:
            nv = _sdist_name_version(p)
            if nv is None:
                raise DirectError(f"{what}: {p.name} has no PKG-INFO, so it is not an sdist pip can install")
            name, version = nv
            fixed = _sdist_filename(name, version, p.name)
            if fixed != p.name:
                p = p.rename(p.with_name(fixed))
            kind = "sdist"
        names.add((str(canonicalize_name(name)), str(version)))
        files.append(PinnedFile(filename=p.name, url=p.as_uri(), sha256=_sha256(p), kind=kind,
                                size=p.stat().st_size, origin=origin))
    if not files:
        raise DirectError(f"{what}: the build produced no files")
    if len(names) != 1:
        raise DirectError(f"{what}: the files disagree on name and version: {sorted(names)}")
    name, version = next(iter(names))
    if expect and canonicalize_name(expect) != name:
        raise DirectError(f"{what}: the requirement says {expect!r} but the package is {name!r}: fix the name")
    dist = DirectDist(name=name, version=version, files=tuple(files), origin=origin, commit=commit,
                      warnings=tuple(warnings))
    (folder / "dist.json").write_text(json.dumps(dist.to_json(), indent=1, sort_keys=True), encoding="utf-8")
    return dist


@contextlib.contextmanager
def _workdir(cache: Path, prefix: str) -> Iterator[tuple[Path, Path]]:
    """A scratch folder under cache/built/.tmp and its empty `out` folder for the files."""
    d = cache / "built" / ".tmp"
    d.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=prefix, dir=d) as tmp:
        (Path(tmp) / "out").mkdir()
        yield Path(tmp), Path(tmp) / "out"


def _keep(out: Path, final: Path, *, origin: str, commit: str | None, warnings: list[str], ref: DirectRef,
          what: str) -> DirectDist:
    """Read `out` into a DirectDist and move it under its final name (a crash leaves only a .tmp folder)."""
    dist = _collect(out, origin, commit, warnings, ref.name, what)
    if final.exists():
        shutil.rmtree(final)
    out.rename(final)
    return DirectDist.from_cache(final) or dist


def _cached(final: Path, refresh: bool = False) -> DirectDist | None:
    return None if refresh else DirectDist.from_cache(final)


def _git(ref: DirectRef, where: str, cache: Path, builder: _Builder, refresh: bool) -> DirectDist:
    url = expand(ref.url, where=where)
    what = f"{where}: {ref.display}"
    try:
        commit, _ = git.resolve_ref(url, ref.ref)
    except TransportError as exc:
        raise DirectError(f"{where}: {exc}") from exc
    origin_base = strip_credentials(url)
    if commit is not None:
        final = cache / "built" / _key("git", origin_base, commit, ref.subdirectory or "")
        if (cached := _cached(final, refresh)) is not None:
            return cached
    with _workdir(cache, "git-") as (tmp, out):
        work = tmp / "src"
        try:
            commit = git.checkout(url, ref.ref, commit, cache / "git", work)
        except TransportError as exc:
            raise DirectError(f"{where}: {exc}") from exc
        final = cache / "built" / _key("git", origin_base, commit, ref.subdirectory or "")
        if (cached := _cached(final, refresh)) is not None:
            return cached
        src = work / ref.subdirectory if ref.subdirectory else work
        if not src.is_dir():
            raise DirectError(f"{what}: subdirectory {ref.subdirectory!r} is not in commit {commit[:12]}")
        warnings = builder.build(src, out, what=what, sdist=True, wheel=True, epoch=git.commit_time(work))
        return _keep(out, final, origin=git.display_url(url, commit, ref.subdirectory), commit=commit,
                     warnings=warnings, ref=ref, what=what)


def _key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _app_relative(path: Path, app_dir: Path) -> str:
    try:
        return "file:" + (str(path.resolve().relative_to(app_dir.resolve())) or ".")
    except ValueError:
        return path.resolve().as_uri()


def _take_file(path: Path, out: Path, what: str, builder: _Builder) -> list[str]:
    """Put a wheel, or an sdist and the wheel built from it, into `out`; returns warnings."""
    if path.name.endswith(".whl"):
        try:
            parse_wheel_filename(path.name)
        except InvalidWheelFilename as exc:
            raise DirectError(f"{what}: {exc}: a wheel's file name must be NAME-VERSION-TAGS.whl (pip refuses it too)") from exc
        if not zipfile.is_zipfile(path):
            raise DirectError(f"{what}: not a wheel (not a zip archive)")
        shutil.copyfile(path, out / path.name)
        return []
    nv = _sdist_name_version(path)
    if nv is None:
        raise DirectError(f"{what}: no PKG-INFO inside, so it is not an sdist pip can install "
                          "(build one with `uv build --sdist` or `python -m build --sdist`)")
    shutil.copyfile(path, out / _sdist_filename(*nv, path.name))
    return builder.build(path, out, what=what, sdist=False, wheel=True)


def _local_file(path: Path, ref: DirectRef, where: str, cache: Path, builder: _Builder, app_dir: Path) -> DirectDist:
    what = f"{where}: {ref.display}"
    final = cache / "built" / _key("file", _sha256(path), path.name)
    if (cached := _cached(final)) is not None:
        return cached
    with _workdir(cache, "file-") as (_, out):
        warnings = _take_file(path, out, what, builder)
        return _keep(out, final, origin=_app_relative(path, app_dir), commit=None, warnings=warnings, ref=ref, what=what)


def _local_folder(path: Path, ref: DirectRef, where: str, cache: Path, builder: _Builder, app_dir: Path) -> DirectDist:
    what = f"{where}: {ref.display}"
    if not any((path / n).is_file() for n in ("pyproject.toml", "setup.py", "setup.cfg")):
        raise DirectError(f"{what}: the folder has no pyproject.toml or setup.py, so it is not a Python project")
    final = cache / "built" / _key("dir", _tree_digest(path))
    if (cached := _cached(final)) is not None:
        return cached
    with _workdir(cache, "dir-") as (_, out):
        warnings = builder.build(path, out, what=what, sdist=True, wheel=True)
        return _keep(out, final, origin=_app_relative(path, app_dir), commit=None, warnings=warnings, ref=ref, what=what)


def _url(ref: DirectRef, where: str, cache: Path, builder: _Builder, refresh: bool) -> DirectDist:
    from airgap_mirror.fetch import get_to_file

    url = expand(ref.url, where=where)
    origin = strip_credentials(url)
    what = f"{where}: {ref.display}"
    final = cache / "built" / _key("url", origin)
    if (cached := _cached(final, refresh)) is not None:
        return cached
    with _workdir(cache, "url-") as (tmp, out):
        got = tmp / urlsplit(url).path.rsplit("/", 1)[-1]
        try:
            get_to_file(url, got)
        except (TransportError, IntegrityError) as exc:
            raise DirectError(f"{where}: {exc}") from exc
        warnings = _take_file(got, out, what, builder)
        return _keep(out, final, origin=origin, commit=None, warnings=warnings, ref=ref, what=what)


def materialise(ref: DirectRef, *, where: str, app_dir: Path, cache: Path, index: IndexConfig, refresh: bool = False,
                allow_outside: bool = False) -> DirectDist:
    """Turn one DirectRef into distribution files in `cache/built`. Raises DirectError naming `where`.
    A local path must lie inside `app_dir` (unless `allow_outside`) and be a folder or a regular file."""
    builder = _Builder(index, cache / "uv")
    try:
        if ref.kind == "git":
            dist = _git(ref, where, cache, builder, refresh)
        elif ref.kind == "url":
            dist = _url(ref, where, cache, builder, refresh)
        else:
            raw = expand(ref.url, where=where)
            path = Path(os.path.expanduser(raw))
            if not path.is_absolute():
                path = app_dir / path
            if ref.subdirectory:
                path = path / ref.subdirectory
            root = None if allow_outside else app_dir
            confine(path, root)
            if not path.exists():
                raise DirectError(f"{where}: {ref.display} does not exist (paths are read from the app folder {app_dir})")
            if path.is_dir():
                dist = _local_folder(path, ref, where, cache, builder, app_dir)
            else:
                with open_regular(path, limit=MAX_ARCHIVE, root=root):
                    pass  # a regular file of sane size: not a FIFO, a device or /proc
                dist = _local_file(path, ref, where, cache, builder, app_dir)
    except DirectError:
        raise
    except AppFileError as exc:
        raise DirectError(f"{where}: {exc}") from exc
    except MirrorError as exc:
        raise DirectError(f"{where}: {exc}") from exc
    except OSError as exc:
        raise DirectError(f"{where}: {ref.display}: {exc.strerror or exc}") from exc
    return dist
