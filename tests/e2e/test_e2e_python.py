"""End to end, offline: two apps, two targets → sync → publish → serve → real pip and uv install from us alone."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.builders.cli import Served, check_installed, make_venv, run_mirror
from tests.builders.upstreams import ARM, X86, clean_env

T311 = f"cp311-{X86}"
T39 = f"cp39-{ARM}"


@pytest.fixture(scope="module")
def mirror(upstream, tmp_path_factory):
    from tests.builders.upstreams import DATA

    store = tmp_path_factory.mktemp("store")
    apps = DATA / "apps"
    proc = run_mirror("sync", str(apps / "shop"), str(apps / "reports"), "--no-conda", "--store", str(store),
                      "--python", "3.11", "--python", "3.9", "--platform", X86, "--platform", ARM,
                      "--index-url", upstream.url + "/simple", "--installers", "pip,setuptools", "--json")
    summary = json.loads(proc.stdout)
    run_mirror("publish", "--store", str(store))
    served = Served(store)
    yield {"store": store, "summary": summary, "served": served, "apps": apps, "upstream": upstream}
    served.stop()


def snapshot(store: Path, sid: str) -> dict:
    return json.loads((store / "store-v1" / "snapshots" / f"{sid}.json").read_bytes())


def target_files(snap: dict, app: str, target: str) -> set[str]:
    files = snap["python"]["files"]
    return {files[s]["filename"] for s in snap["apps"][app]["targets"][target]["files"]}


def test_sync_summary(mirror):
    s = mirror["summary"]
    assert s["ok"] and s["changed"]
    assert {a["name"] for a in s["apps"]} == {"shop", "reports"}
    assert s["targets"] == sorted(f"cp{v}-{p}" for v in ("311", "39") for p in (X86, ARM))
    # A cold store: every file of the snapshot was fetched once, none was there before.
    assert s["files"]["fetched"] == s["files"]["total"] > 0
    assert s["files"]["present"] == 0
    reports = next(a for a in s["apps"] if a["name"] == "reports")
    assert reports["conda_not_mirrored"] == ["numpy"]


def test_markers_and_tags_are_the_targets(mirror):
    snap = snapshot(mirror["store"], mirror["summary"]["snapshot"])
    x86 = target_files(snap, "shop", T311)
    arm = target_files(snap, "shop", T39)
    # darwin-only line never mirrored for Linux targets, even though every machine here is Linux too.
    assert not any(f.startswith("darwinonly") for f in x86 | arm)
    # aarch64-only line mirrored for the aarch64 target though this host is x86_64.
    assert "armonly-1.0-py3-none-any.whl" in arm
    assert not any(f.startswith("armonly") for f in x86)
    # A 2_28 target accepts the manylinux2014 wheel, refuses 2_34 and macOS wheels, and skips the sdist.
    assert "gamma-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl" in x86
    assert not any("manylinux_2_34" in f or "macosx" in f for f in x86 | arm)
    assert "gamma-1.0.tar.gz" not in x86
    assert "gamma-1.0-cp39-cp39-manylinux2014_aarch64.whl" in arm
    # cp311 on aarch64 has no gamma wheel: the sdist is mirrored instead.
    assert "gamma-1.0.tar.gz" in target_files(snap, "shop", f"cp311-{ARM}")
    # delta is an sdist whose build-system.requires names buildhelper (itself only an sdist).
    build = {snap["python"]["files"][s]["filename"] for s in snap["python"]["build"][T311]}
    assert "buildhelper-1.0.tar.gz" in build
    installers = {snap["python"]["files"][s]["filename"] for s in snap["python"]["installers"][T311]}
    assert {f.split("-")[0] for f in installers} == {"pip", "setuptools"}


def test_store_is_content_addressed(mirror):
    store = mirror["store"]
    snap = snapshot(store, mirror["summary"]["snapshot"])
    for sha, meta in snap["python"]["files"].items():
        blob = store / "store-v1" / "blobs" / "sha256" / sha[:2] / sha
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == sha
        assert blob.stat().st_size == meta["size"]


def test_resync_fetches_nothing_and_keeps_snapshot_id(mirror):
    up = mirror["upstream"]
    apps = mirror["apps"]
    proc = run_mirror("sync", str(apps / "shop"), str(apps / "reports"), "--no-conda", "--store", str(mirror["store"]),
                      "--python", "3.11", "--python", "3.9", "--platform", X86, "--platform", ARM,
                      "--index-url", up.url + "/simple", "--installers", "pip,setuptools", "--json")
    again = json.loads(proc.stdout)
    assert again["files"]["fetched"] == 0
    assert again["snapshot"] == mirror["summary"]["snapshot"]
    assert again["changed"] is False


def test_pip_installs_from_mirror_alone(mirror, tmp_path):
    venv = make_venv(tmp_path)
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--isolated", "--no-cache-dir", "--index-url", mirror["served"].simple,
         "-r", str(mirror["apps"] / "shop" / "requirements.txt")],
        capture_output=True, text=True, env=clean_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = check_installed(venv)
    assert got["gamma"].endswith("manylinux2014_x86_64")
    assert got["delta"] == "sdist"  # built inside, with buildhelper from our index only
    assert got["beta"] == "2.0"


def test_uv_installs_from_mirror_alone(mirror, tmp_path):
    from airgap_mirror.resolve import uv_binary

    venv = make_venv(tmp_path)
    proc = subprocess.run(
        [uv_binary(), "pip", "install", "--no-config", "--python", str(venv / "bin" / "python"),
         "--index-url", mirror["served"].simple, "--cache-dir", str(tmp_path / "uv-cache"),
         "-r", str(mirror["apps"] / "shop" / "requirements.txt")],
        capture_output=True, text=True, env=clean_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert check_installed(venv)["delta"] == "sdist"


def test_scripts_nginx_conf_serves_the_published_tree_to_pip_and_uv(mirror, tmp_path):
    """The same tree behind nginx with scripts/nginx.conf: PEP 691 negotiation, and real pip and uv
    install the app from it alone."""
    from airgap_mirror.resolve import uv_binary
    from tests.builders.nginx import Nginx

    ngx = Nginx(mirror["store"] / "published", tmp_path / "nginx")
    try:
        page = urllib.request.urlopen(urllib.request.Request(
            ngx.simple + "alpha/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}))
        assert page.headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
        assert json.loads(page.read())["name"] == "alpha"
        html = urllib.request.urlopen(ngx.simple + "alpha/")
        assert html.headers["Content-Type"].startswith("text/html") and b"alpha-1.0" in html.read()
        reqs = str(mirror["apps"] / "shop" / "requirements.txt")
        pip_venv, uv_venv = make_venv(tmp_path / "pip"), make_venv(tmp_path / "uv")
        pip = subprocess.run([str(pip_venv / "bin" / "pip"), "install", "--isolated", "--no-cache-dir",
                              "--index-url", ngx.simple, "-r", reqs], capture_output=True, text=True, env=clean_env())
        assert pip.returncode == 0, pip.stdout + pip.stderr
        uv = subprocess.run([uv_binary(), "pip", "install", "--no-config", "--python", str(uv_venv / "bin" / "python"),
                             "--index-url", ngx.simple, "--cache-dir", str(tmp_path / "uv-cache"), "-r", reqs],
                            capture_output=True, text=True, env=clean_env())
        assert uv.returncode == 0, uv.stdout + uv.stderr
        assert check_installed(pip_venv) == check_installed(uv_venv)
        assert check_installed(uv_venv)["delta"] == "sdist"
    finally:
        ngx.stop()


def test_hashed_lock_installs_with_require_hashes(mirror, tmp_path):
    url = f"{mirror['served'].base}/locks/shop/{T311}/requirements.lock"
    lock = tmp_path / "requirements.lock"
    lock.write_bytes(urllib.request.urlopen(url).read())
    text = lock.read_text()
    assert "alpha==1.0" in text and "--hash=sha256:" in text and "darwinonly" not in text
    venv = make_venv(tmp_path)
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--isolated", "--no-cache-dir", "--require-hashes",
         "--index-url", mirror["served"].simple, "-r", str(lock)],
        capture_output=True, text=True, env=clean_env(),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pip_compile_agrees_for_host_equal_target(mirror, tmp_path):
    """pip-tools, resolving for this host (CPython 3.11, x86_64 Linux), must pick the same pins."""
    out = tmp_path / "compiled.txt"
    proc = subprocess.run(
        [sys.executable, "-m", "piptools", "compile", "--quiet", "--no-header", "--no-annotate",
         "--index-url", mirror["upstream"].url + "/simple", "--cache-dir", str(tmp_path / "pc-cache"),
         "--output-file", str(out), str(mirror["apps"] / "shop" / "requirements.txt")],
        capture_output=True, text=True, env=clean_env(), cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    theirs = {line.split(";")[0].strip() for line in out.read_text().splitlines()
              if "==" in line and not line.startswith(("#", "-"))}
    snap = snapshot(mirror["store"], mirror["summary"]["snapshot"])
    ours = {f"{n}=={v}" for n, v in snap["apps"]["shop"]["targets"][T311]["packages"]}
    assert ours == theirs
