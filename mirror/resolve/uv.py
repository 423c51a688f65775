"""Resolution by uv for a target that is not this machine: its binary and version, a clean environment,
`uv pip compile` to a PEP 751 lock with the pages it read and the versions it picked as it goes."""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import canonicalize_name

from airgap_mirror.credentials import secret_values
from airgap_mirror.defaults import PUBLIC_INDEX
from airgap_mirror.errors import ResolutionError
from airgap_mirror.resolve.memo import pages_read
from airgap_mirror.resolve.targets import PythonTarget
from airgap_mirror.urls import redact_text


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexConfig:
    """Where an app's packages come from. URLs here are expanded: they may hold credentials, so
    they go to uv through its environment, never its command line, and are never recorded."""

    index_url: str = PUBLIC_INDEX
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    trusted_hosts: tuple[str, ...] = ()

    @property
    def search_order(self) -> tuple[str, ...]:
        """The indexes in the order uv's first-index strategy asks them: extras first, then the index."""
        return (*self.extra_index_urls, self.index_url)


_UV_LOCK = threading.Lock()


@functools.cache
def _find_uv() -> str:
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):
        return "uv"


def uv_binary() -> str:
    """The uv that ships with our install (the `uv` package), else one on PATH.

    Found once, under a lock: `find_uv_bin` reads sysconfig, whose first use is not thread-safe
    (two resolver threads asking at once got EXE = None)."""
    with _UV_LOCK:
        return _find_uv()


@functools.cache
def uv_version() -> str:
    """The version of the uv we run (part of every resolution memo key): the `uv` package's, when
    the binary is the one it installed (its metadata: 2 ms; running `uv --version` was 12-20 ms on
    every sync's way to its first resolution), else what `uv --version` says."""
    binary = uv_binary()
    if binary != "uv":  # (found by the package's find_uv_bin, not on PATH)
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"uv {version('uv')} (the uv package)"
        except PackageNotFoundError:
            pass
    proc = subprocess.run([binary, "--version"], env=clean_env(), capture_output=True, text=True)
    return proc.stdout.strip() or f"unknown ({proc.returncode})"


def clean_env(cache_dir: Path | None = None) -> dict[str, str]:
    """The environment for resolver subprocesses: the host's package-tool settings removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_", "PYTHON", "VIRTUAL_ENV", "CONDA"))}
    env["UV_NO_CONFIG"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env["PIP_CONFIG_FILE"] = os.devnull
    if cache_dir is not None:
        env["UV_CACHE_DIR"] = str(cache_dir)
    return env


def uv_env(index: IndexConfig, cache_dir: Path | None = None) -> dict[str, str]:
    """clean_env plus the app's indexes, find-links and trusted hosts in uv's variables.

    Through the environment because the URLs may hold credentials: a command line is visible to
    every user of the machine in `ps`, a process's environment only to its owner.
    """
    env = clean_env(cache_dir)
    env["UV_INDEX_URL"] = index.index_url
    if index.extra_index_urls:
        env["UV_EXTRA_INDEX_URL"] = " ".join(index.extra_index_urls)
    if index.find_links:
        env["UV_FIND_LINKS"] = ",".join(index.find_links)
    if index.trusted_hosts:
        env["UV_INSECURE_HOST"] = " ".join(index.trusted_hosts)
    return env


@dataclass(frozen=True, slots=True, kw_only=True)
class UvResolution:
    pylock: bytes
    pages: tuple[str, ...]  # index and find-links pages uv read (no credentials)


_SELECTED = re.compile(r"DEBUG Selecting: ([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \[\w+\] \(([^()\s]+)\)")


# A distribution file (or its PEP 658 .metadata) uv reads: where the file it picks is.
_FILE_READ = re.compile(r"(?:No cache entry for|Found (?:fresh|stale) response for): (https?://\S+?\.(?:whl|tar\.gz|zip)(?:\.metadata)?)$")


def uv_compile(
    requirements: list[str],
    target: PythonTarget,
    *,
    index: IndexConfig,
    constraints: list[str] | None = None,
    cache_dir: Path | None = None,
    prerelease: bool = False,
    no_binary: tuple[str, ...] = (),
    only_binary: tuple[str, ...] = (),
    no_deps: bool = False,
    label: str = "",
    refresh: bool = False,
    on_page: Callable[[str], None] | None = None,
    on_select: Callable[[str, str, str | None, Sequence[str]], None] | None = None,
    on_start: Callable[[], None] | None = None,
    exclude_newer: str | None = None,
) -> UvResolution:
    """Resolve `requirements` for `target`: the pylock.toml bytes uv wrote and the pages it read,
    each also handed to `on_page` as soon as uv starts reading it (the memo reads it meanwhile).
    `on_select(name, version, file_url, pages)` hears each version uv's resolver picks as it picks
    it, with the URL of the file uv read its metadata from (None when uv's log did not name it) and
    the pages read so far (a pick can still be undone by backtracking: the lock is the answer).
    `on_start()` is called once uv is running: work of the caller's that uv does not wait for can
    start then, on the core uv leaves.

    A failure raises ResolutionError carrying `pages` too (the resolution memo keeps both)."""
    with tempfile.TemporaryDirectory(prefix="mirror-resolve-") as tmp:
        tmpdir = Path(tmp)
        req_in = tmpdir / "requirements.in"
        req_in.write_text("\n".join(requirements) + "\n", encoding="utf-8")
        out = tmpdir / "pylock.toml"
        cmd = [
            uv_binary(), "pip", "compile", str(req_in), "-o", str(out),
            "--format", "pylock.toml", "--no-header", "--no-config", "-v",
            "--python", sys.executable,
            "--python-version", target.python,
            "--python-platform", target.uv_platform(),
            "--index-strategy", "first-index",
        ]
        if constraints:
            con = tmpdir / "constraints.txt"
            con.write_text("\n".join(constraints) + "\n", encoding="utf-8")
            cmd += ["--constraint", str(con)]
        cmd += _flags(prerelease=prerelease, refresh=refresh, no_binary=no_binary, only_binary=only_binary,
                      no_deps=no_deps)
        if exclude_newer:  # the cooldown: nothing uploaded after this time (files without an upload time are kept)
            cmd += ["--exclude-newer", exclude_newer]
        env = uv_env(index, cache_dir)
        # -v logs only the URLs uv reads (the memo's pages) and, when asked, the versions it picks.
        env["RUST_LOG"] = "uv_client::cached_client=debug" + (",uv_resolver::resolver=debug" if on_select else "")
        proc = subprocess.Popen(cmd, env=env, cwd=tmpdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                errors="replace")
        if on_start is not None:
            on_start()
        with proc:
            stderr = _follow(proc, on_page, on_select)
        pages = pages_read(stderr)
        if proc.returncode != 0:
            detail = "\n".join(line for line in stderr.strip().splitlines()
                               if line.strip() and not line.startswith(("DEBUG ", "TRACE ")))[-2000:]
            detail = detail.replace(str(req_in), "requirements").replace(tmp, "")
            secrets = secret_values((index.index_url, *index.extra_index_urls, *index.find_links))
            cooldown = (f"\n(the cooldown leaves out every file uploaded after {exclude_newer}: a requirement only a "
                        "newer release meets waits until it is old enough, or name an older version)"
                        if exclude_newer else "")
            exc = ResolutionError(f"{label or 'resolution'} for {target.id}: uv could not resolve:\n{redact_text(detail, secrets)}"
                                  + did_you_mean(detail) + cooldown)
            exc.pages = pages
            raise exc
        return UvResolution(pylock=out.read_bytes(), pages=pages)


def _flags(*, prerelease: bool, refresh: bool, no_binary: tuple[str, ...], only_binary: tuple[str, ...],
           no_deps: bool) -> list[str]:
    """uv's flags for pip's: pre-releases, a refresh of its cache, the binary policy, no dependencies."""
    cmd = ["--prerelease", "allow"] if prerelease else []
    if refresh:
        cmd += ["--refresh"]
    for nb in no_binary:
        cmd += ["--no-binary", nb]
    for ob in only_binary:
        cmd += ["--only-binary", ob]
    if no_deps:  # a lock's pins, each already there: none re-resolved, none added
        cmd += ["--no-deps"]
    return cmd


def _follow(proc: subprocess.Popen[str], on_page: Callable[[str], None] | None,
            on_select: Callable[[str, str, str | None, Sequence[str]], None] | None) -> str:
    """uv's log as it writes it: each page it reads handed to `on_page`, each version its resolver
    picks to `on_select` (with the file's URL once uv names it); the whole log returned."""
    log: list[str] = []
    seen: dict[str, None] = {}
    files: dict[str, str] = {}  # file name → the URL uv read it (or its .metadata) from
    picked: dict[str, tuple[str, str]] = {}  # file name → (name, version) picked before uv read it
    assert proc.stderr is not None
    for line in proc.stderr:
        log.append(line)
        for url in pages_read(line):
            seen.setdefault(url, None)
            if on_page is not None:
                on_page(url)
        if on_select is None:
            continue
        if (m := _SELECTED.match(line)):
            on_select(m.group(1), m.group(2), files.get(m.group(3)), tuple(seen))
            if m.group(3) not in files:
                picked[m.group(3)] = (m.group(1), m.group(2))
        elif (f := _FILE_READ.search(line)):
            url = f.group(1).removesuffix(".metadata")
            name = url.rsplit("/", 1)[-1]
            files.setdefault(name, url)
            if name in picked:  # picked first, its metadata read after: heard again, with the URL
                on_select(*picked.pop(name), url, tuple(seen))
    return "".join(log)


# Import names that are not the project's name: the most common wrong line in an app's requirements.
_IMPORT_NAMES = {
    "yaml": "PyYAML", "cv2": "opencv-python", "pil": "Pillow", "sklearn": "scikit-learn", "skimage": "scikit-image",
    "bs4": "beautifulsoup4", "dateutil": "python-dateutil", "dotenv": "python-dotenv", "jwt": "PyJWT",
    "docx": "python-docx", "pptx": "python-pptx", "magic": "python-magic", "crypto": "pycryptodome",
    "serial": "pyserial", "usb": "pyusb", "attr": "attrs", "fitz": "PyMuPDF", "telegram": "python-telegram-bot",
    "dash_core_components": "dash", "dash_html_components": "dash", "psycopg2": "psycopg2-binary",
    "mysqldb": "mysqlclient", "win32api": "pywin32", "google.cloud": "google-cloud-storage", "zmq": "pyzmq",
    "gi": "PyGObject", "tesserocr": "tesserocr", "jose": "python-jose", "multipart": "python-multipart",
    "slugify": "python-slugify", "levenshtein": "python-Levenshtein", "memcache": "python-memcached",
}


_NOT_FOUND = re.compile(r"Because ([A-Za-z0-9][A-Za-z0-9._-]*) was not found in the package registry")


def not_found(uv_detail: str) -> list[str]:
    """The projects uv's message says the index does not have."""
    return list(dict.fromkeys(_NOT_FOUND.findall(uv_detail)))


def did_you_mean(uv_detail: str) -> str:
    """A hint for a project the index does not have, when the name is a module's name (`yaml`)."""
    hints = []
    for name in not_found(uv_detail):
        project = _IMPORT_NAMES.get(name.lower().replace("-", "_"))
        if project and canonicalize_name(project) != canonicalize_name(name):
            hints.append(f"did you mean {project}? ({name} is the name of the module {project} installs)")
    return "".join(f"\n{h}" for h in hints)
