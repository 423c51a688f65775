"""uv's version in every resolution memo key: the uv package's own when we run the binary it
installed (read from its metadata), what `uv --version` says for a uv found on PATH. Both checked
against the real uv binary of this install."""

from __future__ import annotations

import os
import subprocess
from importlib.metadata import version

import pytest

import airgap_mirror.resolve.uv as resolve


@pytest.fixture(autouse=True)
def _fresh():
    resolve.uv_version.cache_clear()
    yield
    resolve.uv_version.cache_clear()


def _real(binary: str) -> str:
    return subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def test_the_packaged_uv_is_named_by_its_package_and_that_is_the_binarys_version():
    binary = resolve.uv_binary()
    assert binary != "uv"  # this install has the uv package
    assert resolve.uv_version() == f"uv {version('uv')} (the uv package)"
    assert _real(binary).split()[1] == version("uv")  # what the binary itself says


def test_a_uv_on_path_is_asked(monkeypatch, tmp_path):
    real = resolve.uv_binary()
    (tmp_path / "uv").symlink_to(real)  # the real binary, found on PATH rather than by the package
    monkeypatch.setattr(resolve, "_find_uv", lambda: "uv")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert resolve.uv_version() == _real(real)
    assert resolve.uv_version().startswith(f"uv {version('uv')} (")
