"""Repair reaches what is served: a blob restored by `verify --repair` is put back in the published
tree too (which hard-links the damaged inode), so `mirror serve` sends whole files without a
republish, and `verify` checks the published copies, not only the blobs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx

from tests.builders.cli import Served, run_mirror
from tests.builders.upstreams import X86


def _mirror(tmp_path: Path, upstream, debian_upstream) -> tuple[str, Path]:
    from tests.builders.upstreams import apt_config

    app = tmp_path / "apps" / "a"
    app.mkdir(parents=True)
    (app / "requirements.txt").write_text("alpha==1.0\n")
    (app / "Aptfile").write_text("libbar\n")
    (tmp_path / "mirror.toml").write_text(
        f'[store]\npath = "store"\n[apps]\npaths = ["apps/*"]\n[python]\nindex-url = "{upstream.url}/simple"\n'
        f'versions = ["3.11"]\nplatforms = ["{X86}"]\ninstallers = []\n' + apt_config(debian_upstream.url, debian_upstream.keyring))
    config = str(tmp_path / "mirror.toml")
    run_mirror("sync", "--config", config)
    run_mirror("publish", "--config", config)
    return config, tmp_path / "store"


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(path, "r+b") as fh:  # in place: the inode the published tree shares
        fh.write(data)


def test_a_repaired_blob_is_served_whole_without_a_republish(tmp_path, upstream, debian_upstream):
    config, store = _mirror(tmp_path, upstream, debian_upstream)
    snap = json.loads(next(p for p in (store / "store-v1" / "snapshots").glob("*.json")).read_text())
    wheel = next(sha for sha, m in snap["python"]["files"].items() if m["filename"].startswith("alpha"))
    deb = next(sha for sha, m in snap["apt"]["files"].items() if m["filename"].startswith("libbar"))
    for sha in (wheel, deb):
        _flip(store / "store-v1" / "blobs" / "sha256" / sha[:2] / sha)
    served = Served(store)
    try:
        url = f"{served.base}/packages/{wheel[:2]}/{wheel}/alpha-1.0-py3-none-any.whl"
        # the damage is served (and kept in memory by each worker: a small file is)
        assert all(hashlib.sha256(httpx.get(url).content).hexdigest() != wheel for _ in range(8))
        proc = run_mirror("verify", "--config", config, "--repair", "--json", check=False)
        out = json.loads(proc.stdout)
        assert proc.returncode == 0 and out["ok"], out
        assert len(out["repair"]["relinked"]) >= 2
        # whole, no publish run, from every worker
        assert all(hashlib.sha256(httpx.get(url).content).hexdigest() == wheel for _ in range(8))
        pool = next(p for p in (store / "published" / "current" / "debian").rglob("libbar_*.deb"))
        assert hashlib.sha256(pool.read_bytes()).hexdigest() == deb
    finally:
        served.stop()


def test_verify_finds_a_damaged_published_copy_and_repair_mends_it(tmp_path, upstream, debian_upstream):
    config, store = _mirror(tmp_path, upstream, debian_upstream)
    pool = next(p for p in (store / "published" / "current" / "debian").rglob("libbar_*.deb"))
    good = pool.read_bytes()
    pool.unlink()
    pool.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # a copy of its own, not the blob's inode
    proc = run_mirror("verify", "--config", config, "--json", check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 5 and report["blobs_checked"] and not report["corrupt"]
    assert any(pool.name in p for p in report["problems"]), report["problems"]
    fixed = json.loads(run_mirror("verify", "--config", config, "--repair", "--json").stdout)
    assert fixed["ok"] and any(pool.name in p for p in fixed["repair"]["relinked"])
    assert pool.read_bytes() == good
