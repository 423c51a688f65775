"""uv's version in every resolution memo key: the uv package's own when we run the binary it
installed (no process started for it), what `uv --version` says for a uv found on PATH."""

from __future__ import annotations

import os
import stat
from importlib.metadata import version

import pytest

import mirror.resolve as resolve


@pytest.fixture(autouse=True)
def _fresh():
    resolve.uv_version.cache_clear()
    yield
    resolve.uv_version.cache_clear()


def test_the_packaged_uv_is_named_by_its_package(monkeypatch):
    started = []
    monkeypatch.setattr(resolve.subprocess, "run", lambda *a, **k: started.append(a))
    assert resolve.uv_binary() != "uv"  # this install has the uv package
    assert resolve.uv_version() == f"uv {version('uv')} (the uv package)"
    assert started == []


def test_a_uv_on_path_is_asked(monkeypatch, tmp_path):
    fake = tmp_path / "uv"
    fake.write_text("#!/bin/sh\necho 'uv 0.0.1 (a test)'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(resolve, "_find_uv", lambda: "uv")
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert resolve.uv_version() == "uv 0.0.1 (a test)"
