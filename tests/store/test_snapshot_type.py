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
    assert set(snap.sections) == {"apt"} and snap.unrecognized == {"from_the_future": {"kept": True}}
    assert snap.counts() == (2, 12)                      # distribution files only: not metadata or locks
    assert snap.target_ids() == ["bookworm-amd64", "cp311-x"]
    assert set(snap.blobs()) == {"a" * 64, "b" * 64, "c" * 64, "d" * 64}
    older = Snapshot.from_dict({**DOC, "apt": {"targets": {}, "files": {}}})
    assert set(snap.minus(older)) == {"b" * 64} and set(snap.minus(None)) == set(snap.blobs())


def test_a_lazy_snapshot_is_the_same_snapshot():
    """Read lazily (a publish reads only the files that changed), a snapshot answers as one read
    whole: each file, every file, counts, the document again; a record read once is kept."""
    from airgap_mirror.store.model import LazyRecords

    whole = Snapshot.from_dict(DOC, id="x")
    lazy = Snapshot.from_dict(DOC, id="x", lazy=True)
    files = lazy.python.files
    assert isinstance(files, LazyRecords) and not isinstance(whole.python.files, LazyRecords)
    assert lazy.counts() == whole.counts() == (2, 12)     # (sizes read from the documents)
    assert "a" * 64 in files and "b" * 64 not in files and len(files) == 1
    assert files["a" * 64] == whole.python.files["a" * 64] and files["a" * 64] is files["a" * 64]
    assert files.get("z" * 64) is None
    assert dict(files.items()) == dict(whole.python.files) and files == whole.python.files
    assert lazy.to_dict() == DOC and lazy == whole


# A document as a newer version (or a plug-in) might write it: an unknown field at every level, and a
# document of this version with the optional fields missing at every level.
FULL = {
    "format_version": 1, "kind": "airgap-mirror/snapshot", "new_top": 1,
    "targets": {"cp311-x": {"id": "cp311-x", "python": "3.11", "platform": "x", "new_target": [1]}},
    "apps": {"shop": {
        "targets": {"cp311-x": {"pylock": "c" * 64, "requirements_lock": "e" * 64, "packages": [["a", "1.0"]],
                                "files": ["a" * 64], "new_app_target": {"x": 1}}},
        "conda_not_mirrored": ["cudatoolkit"], "new_app": "kept",
        "direct": [{"line": "requirements.txt:3", "ref": "git+https://h/r", "project": "a", "version": "1.0",
                    "origin": "https://h/r", "commit": "f" * 40, "new_direct": True}],
        "apt": {"bookworm-amd64": {"packages": [["libx", "1", "amd64"]], "files": ["b" * 64], "new_part": 0}}}},
    "python": {"files": {"a" * 64: {"filename": "a-1.0-py3-none-any.whl", "project": "a", "version": "1.0",
                                    "kind": "wheel", "size": 5, "url": "https://f/a.whl", "requires_python": None,
                                    "yanked": None, "upload_time": None, "metadata_sha256": "d" * 64,
                                    "metadata_size": 2, "new_file": "x"}},
               "installers": {"cp311-x": []}, "build": {"cp311-x": []}, "new_python": {}},
    "apt": {"format_version": 2, "new_section": [],
            "targets": {"bookworm-amd64": {"distro": "bookworm", "arch": "amd64",
                                           "base_updates": {"packages": [], "files": ["g" * 64]}}},
            "files": {"b" * 64: {"filename": "b_1_amd64.deb", "size": 7, "package": "libx", "stanza": "Package: libx"},
                      "g" * 64: {"filename": "g_1_amd64.deb", "size": 3}}},
}
SPARSE = {  # what an older version wrote: no kind, no installers, files with only a name, no locks
    "format_version": 1,
    "targets": {"cp311-x": {"id": "cp311-x"}},
    "apps": {"shop": {"targets": {"cp311-x": {"files": ["a" * 64]}}}},
    "python": {"files": {"a" * 64: {"filename": "a-1.0.tar.gz"}}},
    "apt": {"files": {}},
}


def test_every_level_round_trips_unknown_and_missing_fields():
    import hashlib

    from airgap_mirror.store.canonical import canonical_json

    for doc in (FULL, SPARSE, DOC):
        snap = Snapshot.from_dict(doc)
        assert snap.to_dict() == doc
        assert hashlib.sha256(canonical_json(snap.to_dict())).digest() == hashlib.sha256(canonical_json(doc)).digest()
    snap = Snapshot.from_dict(FULL)
    entry = snap.apps["shop"]
    assert entry.unrecognized == {"new_app": "kept"} and entry.direct[0].commit == "f" * 40
    assert entry.targets["cp311-x"].unrecognized == {"new_app_target": {"x": 1}}
    assert entry.parts["apt"]["bookworm-amd64"].packages == (("libx", "1", "amd64"),)
    assert snap.python.files["a" * 64].metadata_size == 2 and snap.python.unrecognized == {"new_python": {}}
    apt = snap.sections["apt"]
    assert apt.files["b" * 64].get("package") == "libx" and apt.targets["bookworm-amd64"].get("arch") == "amd64"
    assert apt.targets["bookworm-amd64"].files() == {"g" * 64}   # a target's own part (APT's base updates)
    assert snap.kind == "airgap-mirror/snapshot" and Snapshot.from_dict(SPARSE).kind == "airgap-mirror/snapshot"
    assert sorted(t for t, _ in entry.all_targets()) == ["apt:bookworm-amd64", "cp311-x"]
    assert entry.files() == {"a" * 64, "b" * 64}


def test_a_snapshot_of_the_wrong_shape_is_refused():
    import pytest

    for bad in ({"apps": {"shop": []}}, {"apps": []}, {"python": {"files": {"a" * 64: "x"}}}, [1]):
        with pytest.raises(ValueError):
            Snapshot.from_dict(bad)  # type: ignore[arg-type]


def test_restricting_and_merging_keep_what_the_apps_use():
    snap = Snapshot.from_dict(FULL)
    none = snap.restricted_to([])
    assert none.apps == {} and none.python.files == {} and none.sections == {} and none.blobs() == {}
    same = snap.restricted_to(["shop"])
    assert same.blobs() == snap.blobs()  # (the base update's file stays with its target)
    only_py = snap.restricted_to(["shop"], {"shop": {"cp311-x"}})
    assert set(only_py.blobs()) == {"a" * 64, "c" * 64, "d" * 64, "e" * 64}
    assert snap.merged_over(none).to_dict() == snap.to_dict()
    assert none.merged_over(snap).apps == snap.apps


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
