"""A target that would get only the sdist of a package with compiled code is named, and the app can
choose: --prefer-binary (the newest version with a wheel for the target) or --only-binary (fail)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.builders import make_sdist, make_wheel, write_simple_index
from tests.builders.upstreams import StaticServer, clean_env

ARM311 = "3.11:manylinux_2_28_aarch64"
TARGET = "cp311-manylinux_2_28_aarch64"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    root = tmp_path_factory.mktemp("binidx")
    files = root / "files"
    make_sdist(files, "cext", "1.0")
    make_wheel(files, "cext", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    make_wheel(files, "cext", "0.9", tag="cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64")
    make_sdist(files, "cext", "0.9")
    make_sdist(files, "pureold", "1.0")  # sdist only: nothing says it has compiled code
    write_simple_index(files, root / "simple")
    server = StaticServer(root)
    yield server
    server.stop()


def _sync(index, tmp_path, reqs: str, *flags: str) -> tuple[int, dict]:
    app = tmp_path / "apps" / "app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "requirements.txt").write_text(reqs)
    proc = subprocess.run([sys.executable, "-m", "airgap_mirror.cli", "sync", str(app), "--store", str(tmp_path / "s"),
                           "--target", ARM311, "--index-url", index.url + "/simple", "--installers", "", "--json",
                           *flags], capture_output=True, text=True, env=clean_env())
    summary = json.loads(proc.stdout)
    snap = json.loads((tmp_path / "s" / "store-v1" / "snapshots" / f"{summary['snapshot']}.json").read_text()) \
        if summary.get("snapshot") else {}
    files = {snap["python"]["files"][s]["filename"] for s in snap["apps"]["app"]["targets"][TARGET]["files"]} \
        if snap.get("apps", {}).get("app") else set()
    return proc.returncode, {"app": summary["apps"][0], "files": files}


def test_an_sdist_with_compiled_code_is_named(index, tmp_path):
    code, got = _sync(index, tmp_path, "cext\npureold\n")
    assert code == 0 and got["app"]["ok"]
    assert "cext-1.0.tar.gz" in got["files"]
    warned = [w for w in got["app"]["warnings"] if "gets only the sdist" in w]
    assert len(warned) == 1, got["app"]["warnings"]
    assert "cext 1.0" in warned[0] and TARGET in warned[0] and "--prefer-binary" in warned[0]
    assert "--only-binary cext" in warned[0]
    # The same on a resync that fetches nothing (the nightly keeps saying it).
    code, again = _sync(index, tmp_path, "cext\npureold\n")
    assert [w for w in again["app"]["warnings"] if "gets only the sdist" in w] == warned


@pytest.mark.parametrize("how", ["flag", "requirements-line"])
def test_prefer_binary_takes_the_newest_version_with_a_wheel(index, tmp_path, how):
    reqs = "cext\npureold\n" if how == "flag" else "--prefer-binary\ncext\npureold\n"
    code, got = _sync(index, tmp_path, reqs, *(["--prefer-binary"] if how == "flag" else []))
    assert code == 0 and got["app"]["ok"], got
    assert "cext-0.9-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl" in got["files"]
    assert "pureold-1.0.tar.gz" in got["files"]  # no wheel in any version: the sdist stays
    assert not [w for w in got["app"]["warnings"] if "gets only the sdist" in w]


def test_only_binary_fails_instead(index, tmp_path):
    code, got = _sync(index, tmp_path, "cext==1.0\n", "--only-binary", "cext")
    assert code == 1 and not got["app"]["ok"]
    assert "cext" in got["app"]["error"]
