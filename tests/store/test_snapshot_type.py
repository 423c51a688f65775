"""The typed Snapshot: a frozen view of the canonical document that round-trips what it does not
know, and the one place files, bytes, targets and a delta's blobs are counted."""

from __future__ import annotations

import json

from airgap_mirror.store.snapshots import Snapshot
from tests.builders.cli import run_mirror
from tests.builders.upstreams import DATA, X86

DOC = {
    "format_version": 1, "kind": "airgap-mirror/snapshot", "targets": {"cp311-x": {"id": "cp311-x"}},
    "apps": {"shop": {"targets": {"cp311-x": {"pylock": "c" * 64, "files": ["a" * 64]}}}},
    "python": {"files": {"a" * 64: {"filename": "a-1.0-py3-none-any.whl", "size": 5, "metadata_sha256": "d" * 64,
                                    "metadata_size": 2}}, "installers": {}, "build": {}},
    "apt": {"targets": {"bookworm-amd64": {}}, "files": {"b" * 64: {"filename": "b_1_amd64.deb", "size": 7}}},
    "from_the_future": {"kept": True},
}


def test_round_trip_keeps_unknown_fields_and_counts_once():
    snap = Snapshot.from_dict(DOC, id="x")
    assert snap.to_dict() == DOC
    assert set(snap.sections) == {"apt"} and snap.extra == {"from_the_future": {"kept": True}}
    assert snap.counts() == (2, 12)                      # distribution files only: not metadata or locks
    assert snap.target_ids() == ["bookworm-amd64", "cp311-x"]
    assert set(snap.blobs()) == {"a" * 64, "b" * 64, "c" * 64, "d" * 64}
    older = Snapshot.from_dict({**DOC, "apt": {"targets": {}, "files": {}}})
    assert set(snap.minus(older)) == {"b" * 64} and set(snap.minus(None)) == set(snap.blobs())


def test_files_and_bytes_agree_outside_and_inside(upstream, tmp_path):
    """`mirror snapshots` says the same of one snapshot in the store that synced it and in the store
    that imported its bundle."""
    out, inside = tmp_path / "out", tmp_path / "in"
    run_mirror("sync", str(DATA / "apps" / "shop"), "--store", str(out), "--python", "3.11", "--platform", X86,
               "--index-url", upstream.url + "/simple", "--installers", "")
    run_mirror("keygen", "--out", str(tmp_path / "k"))
    run_mirror("bundle", "create", "--store", str(out), "--key", str(tmp_path / "k.key"), "-o", str(tmp_path / "b.bundle"))
    run_mirror("bundle", "import", str(tmp_path / "b.bundle"), "--store", str(inside), "--trust", str(tmp_path / "k.pub"),
               "--no-publish")
    rows = [json.loads(run_mirror("snapshots", "--store", str(s), "--json").stdout)[-1] for s in (out, inside)]
    assert rows[0]["id"] == rows[1]["id"]
    assert (rows[0]["files"], rows[0]["bytes"], rows[0]["targets"]) == (rows[1]["files"], rows[1]["bytes"], rows[1]["targets"])
    assert rows[0]["files"] > 0 and rows[0]["bytes"] > 0
