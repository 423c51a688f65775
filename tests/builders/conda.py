"""Tiny real conda packages and a local channel, for the conda tests (issue 18).

A package is what conda-build writes, reduced to what installers read: `info/index.json`,
`info/paths.json`, `info/files` and one payload file, as `.tar.bz2` (v1) or `.conda` (v2: a zip of
`metadata.json`, `info-*.tar.zst` and `pkg-*.tar.zst`). The channel's repodata is written by
py-rattler's indexer, as a real channel's would be.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

_ARCH = {"linux-64": ("linux", "x86_64"), "linux-aarch64": ("linux", "aarch64"), "osx-arm64": ("osx", "arm64"),
         "win-64": ("win", "x86_64")}


def _tar(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_conda(channel: Path, name: str, version: str, *, build_number: int = 0, depends: tuple[str, ...] = (),
               subdir: str = "noarch", fmt: str = "tar.bz2", text: str | None = None) -> Path:
    """A package in `channel/subdir/`; its one file is `share/NAME/VERSION.txt` (what a test checks
    after installing)."""
    build = f"h{hashlib.sha1(f'{name}{version}{subdir}'.encode()).hexdigest()[:7]}_{build_number}"
    payload_path = f"share/{name}/{version}.txt"
    payload = (text or f"{name} {version} {subdir}\n").encode()
    index = {"name": name, "version": version, "build": build, "build_number": build_number,
             "depends": list(depends), "license": "MIT", "subdir": subdir, "timestamp": 1700000000000}
    if subdir == "noarch":
        index["noarch"] = "generic"
    else:
        index["platform"], index["arch"] = _ARCH[subdir]
    paths = {"paths": [{"_path": payload_path, "path_type": "hardlink",
                        "sha256": hashlib.sha256(payload).hexdigest(), "size_in_bytes": len(payload)}],
             "paths_version": 1}
    info = {"info/index.json": json.dumps(index, indent=2).encode(), "info/paths.json": json.dumps(paths).encode(),
            "info/files": (payload_path + "\n").encode()}
    dest = channel / subdir
    dest.mkdir(parents=True, exist_ok=True)
    stem = f"{name}-{version}-{build}"
    if fmt == "tar.bz2":
        out = dest / f"{stem}.tar.bz2"
        out.write_bytes(_tar({**info, payload_path: payload}, "w:bz2"))
    else:
        import zstandard

        out = dest / f"{stem}.conda"
        zc = zstandard.ZstdCompressor()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr("metadata.json", json.dumps({"conda_pkg_format_version": 2}))
            zf.writestr(f"info-{stem}.tar.zst", zc.compress(_tar(info)))
            zf.writestr(f"pkg-{stem}.tar.zst", zc.compress(_tar({payload_path: payload})))
    return out


def index_channel(channel: Path) -> None:
    """repodata.json (and .zst) for every subdir, by py-rattler's indexer; noarch always present."""
    import asyncio

    from rattler.index import index_fs

    (channel / "noarch").mkdir(parents=True, exist_ok=True)
    asyncio.run(index_fs(channel, write_zst=True, write_shards=False, force=True))
