"""Shared fixtures: a local upstream index of tiny real distributions, servers on loopback, clean envs."""

from __future__ import annotations

import ensurepip
import functools
import http.server
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import make_sdist, make_wheel, write_simple_index

DATA = Path(__file__).parent / "data"
X86 = "manylinux_2_28_x86_64"
ARM = "manylinux_2_28_aarch64"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a client under test: no pip/uv settings from this machine."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV", "PYTHONPATH", "CONDA"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_NO_CONFIG"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.update(extra)
    return env


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        # Like an index that wants revalidation (PyPI says max-age=600): pages are never stale-cached.
        self.send_header("Cache-Control", "max-age=0, must-revalidate")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


class StaticServer:
    """A plain static file server on 127.0.0.1 (an upstream stand-in); stopped by the test."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def build_upstream_files(files: Path) -> None:
    """The fixture universe of distributions."""
    make_wheel(files, "alpha", "1.0", requires=["beta>=1.0"])
    make_wheel(files, "beta", "1.0")
    make_wheel(files, "beta", "2.0")
    make_wheel(files, "gamma", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    make_wheel(files, "gamma", "1.0", tag="cp39-cp39-manylinux2014_aarch64")
    make_wheel(files, "gamma", "1.0", tag="cp311-cp311-macosx_11_0_arm64")
    make_wheel(files, "gamma", "1.0", tag="cp311-cp311-manylinux_2_34_x86_64")  # too new for a 2_28 target
    make_sdist(files, "gamma", "1.0")
    make_sdist(files, "delta", "1.0", build_requires=["buildhelper>=1.0"])
    make_sdist(files, "buildhelper", "1.0")
    make_wheel(files, "darwinonly", "1.0")
    make_wheel(files, "armonly", "1.0")
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    for whl in bundled.glob("*.whl"):  # real pip and setuptools wheels, offline
        shutil.copy(whl, files / whl.name)


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    root = tmp_path_factory.mktemp("upstream")
    build_upstream_files(root / "files")
    write_simple_index(root / "files", root / "simple")
    server = StaticServer(root)
    server.root = root  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    """A writable copy of the fixture app folders."""
    dest = tmp_path / "apps"
    shutil.copytree(DATA / "apps", dest)
    return dest


@pytest.fixture(scope="session")
def python_exe() -> str:
    return sys.executable


# -- A Debian upstream: tiny real .debs in two suites, signed with a throwaway key -------------------

def build_debian_upstream(root: Path) -> dict[str, object]:
    from tests.debs import GpgKey, make_deb, write_archive

    key = GpgKey.create(root / "gnupg")
    debs = root / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    main: list[Path] = []
    for arch in ("amd64", "arm64"):
        main += [
            make_deb(debs, "base-req", "1.0", arch, priority="required", essential="yes", depends="libc-fix"),
            make_deb(debs, "libc-fix", "1.0", arch),
            make_deb(debs, "libfoo", "1.0", arch),
            make_deb(debs, "tool-foreign", "1.0", arch, multi_arch="foreign"),
            make_deb(debs, "pyish", "1.0", arch, multi_arch="allowed"),
            make_deb(debs, "libbar", "1.0", arch, depends="pyish:any, tool-foreign, data-all",
                     pre_depends="libc-fix (>= 1.0)"),
            make_deb(debs, "app-tool", "1.0", arch, depends="libfoo (>= 1.1), mail-transport | fallback-mta, libc-fix",
                     pre_depends="pre-thing", recommends="docs-extra"),
            make_deb(debs, "postfix-fix", "1.0", arch, provides="mail-transport"),
            make_deb(debs, "fallback-mta", "1.0", arch),
            make_deb(debs, "libapi-impl", "2.1", arch, provides="libapi (= 2.1)"),
            make_deb(debs, "needs-api", "1.0", arch, depends="libapi (>= 2)"),
            make_deb(debs, "broken-dep", "1.0", arch, depends="does-not-exist (>= 3)"),
        ]
    main += [make_deb(debs, "pre-thing", "1.0", "all"), make_deb(debs, "data-all", "1.0", "all"),
             make_deb(debs, "docs-extra", "1.0", "all")]
    updates = [make_deb(debs, "libfoo", "1.2", arch) for arch in ("amd64", "arm64")]
    archive = root / "archive"
    write_archive(archive, "fixture", main, key)
    write_archive(archive, "fixture-updates", updates, key)
    keyring = key.export(root / "fixture-archive.gpg")
    key.stop()
    # A URL-only .deb (an Aptfile line naming it), and one for a :repo: line.
    (archive / "extra").mkdir()
    make_deb(archive / "extra", "urltool", "3.0", "amd64", depends="libfoo")
    vendor = [make_deb(debs, "vendor-tool", "0.9", "all", depends="libfoo (>= 1.0)")]
    write_archive(archive / "vendor", "stable", vendor, None)  # unsigned: [trusted=yes] only
    return {"archive": archive, "keyring": keyring, "debs": debs}


@pytest.fixture(scope="session")
def debian_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    if not shutil.which("dpkg-deb") or not shutil.which("apt-ftparchive"):
        pytest.fail("dpkg-deb and apt-ftparchive are needed: scripts/test installs them (dpkg-dev, apt-utils)")
    root = tmp_path_factory.mktemp("debian")
    info = build_debian_upstream(root)
    server = StaticServer(info["archive"])  # type: ignore[arg-type]
    server.root = info["archive"]  # type: ignore[attr-defined]
    server.keyring = info["keyring"]  # type: ignore[attr-defined]
    yield server
    server.stop()


def apt_config(upstream_url: str, keyring: Path, **extra: object) -> str:
    """The [apt] section of a mirror.toml that points at a fixture archive."""
    lines = ["[apt]", 'distros = ["fixture"]']
    for k, v in extra.items():
        lines.append(f"{k.replace('_', '-')} = {v!r}".replace("'", '"').replace("True", "true").replace("False", "false"))
    lines += ["[[apt.sources]]", f'url = "{upstream_url}"', 'suites = ["{distro}", "{distro}-updates"]',
              'components = ["main"]', f'keyrings = ["{keyring}"]']
    return "\n".join(lines) + "\n"
