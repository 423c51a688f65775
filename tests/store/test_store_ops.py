"""Store operations: snapshots and diff, verify (fsck), gc, and the writer lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airgap_mirror.maintenance.health import collect_garbage, verify_store
from airgap_mirror.maintenance.history import diff_snapshots, list_snapshots, resolve_snapshot
from airgap_mirror.store import Store
from tests.builders.bundles import snapshot_of
from tests.builders.cli import run_mirror
from tests.builders.upstreams import clean_env


def _pins(store: Store, sid: str, pins: dict[str, str]) -> str:
    snap = store.load_snapshot(sid)
    snap["apps"]["app"]["targets"] = {"cp311-x": {"packages": [[n, v] for n, v in sorted(pins.items())], "files": []}}
    return store.put_snapshot(snap, origin="sync")


def test_snapshots_and_diff(tmp_path: Path) -> None:
    store = Store(tmp_path / "s").create()
    a = _pins(store, snapshot_of(store, [b"one", b"two"]), {"beta": "2.0", "gone": "1.0", "same": "1"})
    b = _pins(store, snapshot_of(store, [b"one", b"three" * 1000]), {"beta": "3.0", "new": "0.1", "same": "1"})
    rows = list_snapshots(store)
    ids = [r["id"] for r in rows]
    assert ids.index(a) < ids.index(b) == len(ids) - 1 and rows[-1]["current"] and rows[-1]["origin"] == "sync"
    assert resolve_snapshot(store, "previous") == ids[-2] and resolve_snapshot(store, a[:10]) == a
    d = diff_snapshots(store, a, b)
    assert d.changes == {"app": {"cp311-x": {"added": [["new", "0.1"]], "removed": [["gone", "1.0"]],
                                             "changed": [["beta", "2.0", "3.0"]]}}}
    assert d.files_to_carry == 1 and d.bytes_to_carry == 5000
    out = run_mirror("diff", a[:12], "current", "--store", str(store.root)).stdout
    assert "~ beta 2.0 → 3.0" in out and "+ new 0.1" in out and "- gone 1.0" in out


def test_verify_names_corrupt_and_missing_blobs(tmp_path: Path) -> None:
    store = Store(tmp_path / "s").create()
    snapshot_of(store, [b"alpha" * 100, b"beta" * 100, b"gamma" * 100])
    assert verify_store(store).ok
    blobs = sorted(p for p in store.blobs.glob("??/*"))
    os.chmod(blobs[0], 0o644)
    data = bytearray(blobs[0].read_bytes())
    data[10] ^= 1
    blobs[0].write_bytes(bytes(data))
    blobs[1].unlink()
    report = verify_store(store)
    assert not report.ok
    assert report.corrupt == [blobs[0].name]
    assert list(report.missing) == [blobs[1].name]
    proc = run_mirror("verify", "--store", str(store.root), check=False)
    assert proc.returncode == 5
    assert f"corrupt blob {blobs[0].name}" in proc.stderr and f"missing blob {blobs[1].name}" in proc.stderr


def test_gc_keeps_what_kept_snapshots_need(tmp_path: Path) -> None:
    store = Store(tmp_path / "s").create()
    old = snapshot_of(store, [b"shared", b"only-old"])
    time.sleep(1.1)  # snapshots are ordered by their creation time (seconds)
    new = snapshot_of(store, [b"shared", b"only-new"])
    (store.tmp / "in-leftover").write_bytes(b"x")
    dry = collect_garbage(store, keep=1, dry_run=True)
    assert dry.removed_snapshots == [old] and dry.removed_blobs == 1 and dry.removed_temp == 1
    assert (store.snapshots / f"{old}.json").exists() and (store.tmp / "in-leftover").exists()
    rep = collect_garbage(store, keep=1)
    assert rep.kept_snapshots == [new]
    import hashlib
    assert not store.has_blob(hashlib.sha256(b"only-old").hexdigest())
    assert store.has_blob(hashlib.sha256(b"shared").hexdigest()) and store.has_blob(hashlib.sha256(b"only-new").hexdigest())
    assert verify_store(store).ok
    assert not (store.snapshots / f"{old}.json").exists()


def test_writer_lock_refuses_a_second_writer(tmp_path: Path) -> None:
    store = Store(tmp_path / "s").create()
    snapshot_of(store, [b"x"])
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from airgap_mirror.store import Store; s = Store(sys.argv[1]);\n"
        "with s.lock('sync'):\n print('locked', flush=True); time.sleep(30)"), str(store.root)],
        stdout=subprocess.PIPE, text=True, env=clean_env(), cwd=Path(__file__).parents[2])
    try:
        assert holder.stdout.readline().strip() == "locked"
        proc = run_mirror("gc", "--store", str(store.root), check=False)
        assert proc.returncode == 6
        assert "is busy: `mirror sync` (pid" in proc.stderr
        # A writer that waits for the lock says so at once, naming the holder (publish waits 60 s).
        waiter = subprocess.Popen([sys.executable, "-c", (
            "import sys; from airgap_mirror.store import Store; s = Store(sys.argv[1]);\n"
            "with s.lock('publish', wait=1.5): pass"), str(store.root)],
            stderr=subprocess.PIPE, text=True, env=clean_env(), cwd=Path(__file__).parents[2])
        said = waiter.stderr.readline()
        assert "waiting up to 2 s for the store's lock: `mirror sync` (pid" in said, said
        waiter.wait(timeout=30)
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the lock with the killed holder.
    assert json.loads(run_mirror("gc", "--store", str(store.root), "--json").stdout)["removed_blobs"] == 0


def _synced_shop(upstream, tmp_path: Path) -> Path:
    """A store synced from the fixture index for one app that needs alpha (and so beta)."""
    store_dir = tmp_path / "s"
    app = tmp_path / "apps" / "shop"
    app.mkdir(parents=True)
    (app / "requirements.txt").write_text("alpha\n")
    run_mirror("sync", str(app), "--store", str(store_dir), "--python", "3.11", "--installers", "",
               "--index-url", upstream.url + "/simple")
    return store_dir


def test_verify_repair_refetches_from_upstream(upstream, tmp_path: Path) -> None:
    store_dir = _synced_shop(upstream, tmp_path)
    store = Store(store_dir)
    snap = store.load_snapshot(store.ref("current"))
    wheels = sorted(snap["python"]["files"])
    first, second = (store.blob_path(s) for s in wheels[:2])
    os.chmod(first, 0o644)
    first.write_bytes(b"not the wheel")
    second.unlink()
    proc = run_mirror("verify", "--repair", "--store", str(store_dir), "--json", check=False)
    result = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert result["ok"] and sorted(result["repair"]["refetched"]) == sorted(
        snap["python"]["files"][s]["filename"] for s in wheels[:2])
    assert verify_store(store).ok


def test_verify_repair_inside_names_the_bundle_to_reimport(tmp_path: Path) -> None:
    from airgap_mirror.store.snapshots import Snapshot
    from tests.builders.bundles import signed_bundle

    sid, bundle, pub = signed_bundle(tmp_path, blobs=3, blob_size=1000)
    inside = Store(tmp_path / "inside").create()
    run_mirror("trust", "add", str(pub), "--store", str(inside.root))
    run_mirror("bundle", "import", str(bundle), "--store", str(inside.root), "--no-publish")
    victim = sorted(Snapshot.from_dict(inside.load_snapshot(sid)).blobs())[0]
    inside.blob_path(victim).unlink()
    proc = run_mirror("verify", "--repair", "--store", str(inside.root), "--json", check=False)
    assert proc.returncode == 5
    advice = json.loads(proc.stdout)["repair"]["advice"]
    assert len(advice) == 1 and "re-import bundle" in advice[0] and victim[:16] in advice[0]


def test_verify_checks_the_published_tree(upstream, tmp_path: Path) -> None:
    """A served file that went missing from the published tree is named, and `mirror publish --force`
    mends it (a plain publish of the same snapshot builds nothing: it says so)."""
    store_dir = _synced_shop(upstream, tmp_path)
    run_mirror("publish", "--store", str(store_dir))
    store = Store(store_dir)
    assert verify_store(store).ok
    served = next((store.published / "current" / "packages").rglob("alpha-*.whl"))
    served.unlink()
    report = verify_store(store)
    assert not report.ok and any(served.name in p and "mirror verify --repair" in p for p in report.problems)
    assert run_mirror("verify", "--store", str(store_dir), check=False).returncode != 0
    again = run_mirror("publish", "--store", str(store_dir))
    assert "--force builds it again" in again.stdout + again.stderr
    run_mirror("publish", "--store", str(store_dir), "--force")
    assert verify_store(store).ok


def test_gc_killed_at_any_point_leaves_a_store_the_rerun_finishes(tmp_path: Path) -> None:
    """gc SIGKILLed at random moments; then gc and verify pass, and the kept snapshot is whole. The
    state an older gc left (catalog rows naming blobs it had deleted) is healed by gc too."""
    import random
    import signal

    store = Store(tmp_path / "s").create()
    snapshot_of(store, [os.urandom(64) for _ in range(1500)], tag="old")
    time.sleep(1.1)
    new = snapshot_of(store, [b"keep-me"], tag="new")
    # What a gc killed between unlinking a blob and forgetting it used to leave behind.
    with store.db() as db:
        db.execute("INSERT INTO blobs (sha256, size, added) VALUES (?, ?, ?)", ("e" * 64, 1, "2026-01-01T00:00:00Z"))
    rng = random.Random(7)
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-m", "airgap_mirror.cli", "gc", "--keep", "1", "--store", str(store.root)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_env())
        time.sleep(rng.uniform(0.2, 1.2))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run_mirror("gc", "--keep", "1", "--store", str(store.root))
    report = json.loads(run_mirror("verify", "--store", str(store.root), "--json").stdout)
    assert report["ok"], report
    assert [s["id"] for s in list_snapshots(store)] == [new]
    with store.db() as db:
        assert db.execute("SELECT COUNT(*) FROM blobs WHERE sha256 = ?", ("e" * 64,)).fetchone()[0] == 0


def test_catalogued_answers_as_pyfile_does_for_many_files_at_once(tmp_path: Path) -> None:
    """One lookup for a sync's files (airgap_mirror.sync asks which are new to the catalog): the same answer
    as asking `pyfile` for each: a file is known with its name and its blob, under any count."""
    from airgap_mirror.store import CatalogFile

    store = Store(tmp_path / "s").create()
    files = []
    for i in range(1200):  # more than one batch of SQLite parameters
        data = f"file {i}".encode()
        sha = store.put_bytes(data)
        files.append((sha, f"p{i}-1.0-py3-none-any.whl"))
        if i % 3:
            store.record_pyfile(CatalogFile(sha256=sha, filename=files[-1][1], project=f"p{i}", version="1.0",
                                            kind="wheel", size=len(data)))
    asked = [*files, (files[1][0], "another-name.whl"), ("0" * 64, "missing.whl")]
    expect = {(sha, name) for sha, name in asked if store.pyfile(sha, name) is not None}
    assert store.catalogued(asked) == expect
    assert len(expect) == 800 and (files[1][0], "another-name.whl") not in expect
    assert store.catalogued([]) == set()


def test_publish_onto_a_full_disk_is_exit_7_in_one_line(tmp_path: Path) -> None:
    """The published folder on a 64 KiB tmpfs of its own (a mount namespace: nothing of this machine's
    mounts changes): publish meets ENOSPC copying files across devices; one line, exit 7, the tree
    being built left behind nowhere in sight of clients."""
    import shutil

    if not shutil.which("unshare"):
        pytest.skip("needs unshare (util-linux)")
    store = Store(tmp_path / "s").create()
    snapshot_of(store, [os.urandom(40_000), os.urandom(40_000)])
    (store.root / "published").mkdir(exist_ok=True)
    script = (f"mount -t tmpfs -o size=64k tmpfs {store.root / 'published'} && "
              f"exec {sys.executable} -m airgap_mirror.cli publish --store {store.root}")
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, env=clean_env(),
                          cwd=Path(__file__).parents[2])
    assert proc.returncode == 7, proc.stderr[-800:]
    assert "Traceback" not in proc.stderr and "no space left on the device" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
