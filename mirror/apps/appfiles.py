"""Reading what an app folder names: regular files only, bounded in size, inside the app folder.

Every file the sync reads on an app's behalf (requirements files and their includes, Aptfiles,
environment.yml, runtime.txt, local wheels and sdists) is opened here, so a careless or hostile
folder (`-r /proc/self/environ`, a symlink to /etc/shadow, a requirement line `/dev/zero`, a FIFO
named like a wheel, a 3 GB "requirements.txt") costs that app one error naming the file, and never
hangs the sync or puts another file's content into a message. Paths outside the app folder are
refused unless the admin allows them (`sync --allow-outside-app`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from airgap_mirror.errors import InputError

__all__ = ["AppFileError", "MAX_TEXT", "MAX_ARCHIVE", "confine", "open_regular", "read_app_file"]

MAX_TEXT = 4 << 20  # a requirements file, an Aptfile, environment.yml, runtime.txt
MAX_ARCHIVE = 4 << 30  # a local wheel or sdist
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


class AppFileError(InputError):
    """A file an app names that cannot be read safely (outside its folder, not a regular file, too big)."""


def _show(path: Path | str) -> str:
    return repr(str(path)) if any(c in str(path) for c in "\0\n\r\t") else str(path)


def confine(path: Path, root: Path | None) -> Path:
    """`path` with symlinks resolved; it must lie inside `root` (None: anywhere)."""
    try:
        resolved = Path(path).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a symlink loop
        raise AppFileError(f"{_show(path)}: not a usable path ({type(exc).__name__}: {str(exc)[:80]})") from exc
    if root is not None:
        top = Path(root).resolve()
        if resolved != top and top not in resolved.parents:
            raise AppFileError(
                f"{_show(path)} is outside the app folder {top}; an app may name only files inside its "
                "folder (copy the file in, or allow it with `mirror sync --allow-outside-app`)")
    return resolved


@contextlib.contextmanager
def open_regular(path: Path, *, limit: int, root: Path | None = None) -> Iterator[tuple[BinaryIO, int]]:
    """The open file and its size: a regular file of at most `limit` bytes inside `root`."""
    resolved = confine(path, root)
    try:
        fd = os.open(resolved, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError) as exc:
        raise AppFileError(f"{_show(path)}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise AppFileError(f"{_show(path)} is {kind}, not a file: name a regular file")
        if st.st_size > limit:
            raise AppFileError(f"{_show(path)} is {st.st_size:,} bytes, over the {limit:,}-byte limit for such a file")
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, st.st_size


def read_app_file(path: Path, *, root: Path | None = None, limit: int = MAX_TEXT) -> bytes:
    """The bytes of a regular file of at most `limit` bytes inside `root` (None: anywhere)."""
    with open_regular(path, limit=limit, root=root) as (fh, _):
        data = fh.read(limit + 1)
    if len(data) > limit:  # grew while we read it
        raise AppFileError(f"{_show(path)} is over the {limit:,}-byte limit for such a file")
    return data
