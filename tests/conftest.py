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
