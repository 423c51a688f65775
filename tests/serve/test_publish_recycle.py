"""A publish brings the tree switched out last time up to date (what changed, not the whole store):
the tree it makes holds exactly what a tree built whole for that snapshot holds, byte for byte."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from airgap_mirror.publish import current_tree, publish
from tests.builders import make_wheel


def _contents(tree: Path) -> dict[str, str]:
    """Every path of a tree (folders too) and a digest of each file's bytes; snapshot.json's time of
    publishing left out."""
    out = {}
    for folder, dirs, names in os.walk(tree):
        rel = os.path.relpath(folder, tree)
        for d in dirs:
            out[os.path.normpath(f"{rel}/{d}")] = "folder"
        for n in names:
            data = Path(folder, n).read_bytes()
            if n == "snapshot.json" and rel == ".":
                doc = json.loads(data)
                doc.pop("published")
                data = json.dumps(doc, sort_keys=True).encode()
            out[os.path.normpath(f"{rel}/{n}")] = hashlib.sha256(data).hexdigest()
    return out


def test_a_recycled_tree_is_the_tree_built_whole(store_with_files, tmp_path, monkeypatch):
    from airgap_mirror.publish import recycle

    store, _, files = store_with_files
    # Two builds of one file name from two hosts at the same upstream path (a rebuilt wheel on a
    # private index): a tree holds one of them there; when it goes, the other takes its place.
    twins = {}
    for n, host in enumerate(("a.example", "b.example")):
        whl = make_wheel(tmp_path / f"twin{n}", "twin", "1.0", requires=[f"dep{n}"])
        twins[store.put_file(whl)] = {"filename": whl.name, "project": "twin", "version": "1.0", "kind": "wheel",
                                      "size": whl.stat().st_size, "requires_python": None, "yanked": None,
                                      "upload_time": None, "url": f"https://{host}/packages/tw/{whl.name}"}
    first = store.put_snapshot({"format_version": 1, "apps": {}, "targets": {},
                                "python": {"files": {**files, **twins}, "installers": {}, "build": {}}}, origin="test")
    mended = []
    update = recycle.update_python
    monkeypatch.setattr(recycle, "update_python", lambda *a, **k: mended.append(update(*a, **k)) or mended[-1])
    # A second snapshot: a file gone (Foo_Bar 1.0: its release's JSON API goes), one yanked again
    # (Foo_Bar 2.0), a project added at PyPI's URL layout with provenance, and a project status
    # (PEP 792: qux, whose files are the same).
    new = make_wheel(tmp_path / "dist2", "newproj", "3.0")
    sha_new = store.put_file(new)
    h = hashlib.blake2b(new.read_bytes(), digest_size=32).hexdigest()
    changed = {s: ({**m, "yanked": "bad"} if m["version"] == "2.0" else m) for s, m in files.items()
               if m["version"] != "1.0"}
    changed.update(list(twins.items())[1:])  # the twin that a tree of the first snapshot serves goes
    changed[sha_new] = {"filename": new.name, "project": "newproj", "version": "3.0", "kind": "wheel",
                        "size": new.stat().st_size, "requires_python": None, "yanked": None, "upload_time": None,
                        "url": f"https://files.pythonhosted.org/packages/{h[:2]}/{h[2:4]}/{h[4:]}/{new.name}",
                        "provenance_sha256": store.put_bytes(b'{"version": 1, "attestation_bundles": []}')}
    second = store.put_snapshot({"format_version": 1, "apps": {}, "targets": {},
                                 "python": {"files": changed, "installers": {}, "build": {},
                                            "projects": {"qux": {"status": "deprecated", "reason": "use newproj"}}}},
                                origin="test")
    url = "http://mirror.test"
    built = {}
    for sid in (first, second, first, second, first):
        store.set_ref("current", sid)
        tree = publish(store, url=url)
        assert current_tree(store) == tree.resolve()
        whole = publish(store, url=url, fresh=True)
        built.setdefault(sid, []).append((_contents(tree), _contents(whole)))
    assert len(mended) == 4  # each publish after the first mended the tree before (none fell back)
    # find-links.html (every file, a line each) is mended line by line; one that is not as this code
    # writes it (edited by hand) is written anew, still the whole build's.
    store.set_ref("current", second)
    before = next(p for p in tree.parent.iterdir() if not p.name.startswith(".") and p != current_tree(store))
    (before / "find-links.html").write_text("<html>edited</html>")
    tree = publish(store, url=url)
    built[second].append((_contents(tree), _contents(publish(store, url=url, fresh=True))))
    assert len(mended) == 5
    for runs in built.values():
        for recycled, whole in runs:
            assert recycled == whole
    # The files really moved: the second snapshot's tree has the new project at both its paths, and
    # none of Foo_Bar 1.0, its .metadata or its release's JSON API.
    first_tree, second_tree = built[first][0][1], built[second][0][1]
    gone = next(s for s, m in files.items() if m["version"] == "1.0")
    assert any(p.startswith(f"packages/{gone[:2]}/{gone}") for p in first_tree)
    assert not any(gone in p for p in second_tree) and "pypi/foo-bar/1.0/json" not in second_tree
    assert f"packages/{h[:2]}/{h[2:4]}/{h[4:]}/{new.name}" in second_tree
    assert "integrity/newproj/3.0/" + new.name + "/provenance" in second_tree
    assert "simple/newproj/index.json.gz" in second_tree and "simple/newproj/index.json.gz" not in first_tree


def test_the_tree_switched_out_is_brought_up_to_date_not_rebuilt(store_with_files):
    """The tree before the current one is renamed and mended (its unchanged files keep their inodes),
    under a name never used before; a tree held by a reader, or rendered for another base URL, is
    not taken."""
    from airgap_mirror.publish.tree import hold_tree

    store, first, files = store_with_files
    yanked = {s: ({**m, "yanked": "bad"} if m["project"] == "qux" else m) for s, m in files.items()}
    second = store.put_snapshot({"format_version": 1, "apps": {}, "targets": {},
                                 "python": {"files": yanked, "installers": {}, "build": {}}}, origin="test")
    a = publish(store)
    page = (a / "simple/foo-bar/index.html").stat().st_ino
    store.set_ref("current", second)
    b = publish(store)
    store.set_ref("current", first)
    (a / "debian" / "pool").mkdir(parents=True)  # a plug-in's part (APT's): written again whole, by it
    (a / "debian" / "pool" / "stale.deb").write_bytes(b"old")
    held = open(a / "find-links.html", "rb")  # noqa: SIM115  (a reader mid-download, nginx's open_file_cache)
    before = (a / "find-links.html").read_bytes()
    c = publish(store)  # a's tree, mended
    with held:  # what it holds is not rewritten under it: pages written again are new files
        assert held.read() == before and os.fstat(held.fileno()).st_ino != (c / "find-links.html").stat().st_ino
    assert not a.exists() and c != a and (c / "simple/foo-bar/index.html").stat().st_ino == page
    assert not (c / "debian").exists()  # (this snapshot has no APT part)
    assert json.loads((c / "simple/qux/index.json").read_text())["files"][0]["yanked"] is False
    with hold_tree(b):  # a reader (an upload) holds b: it is not taken, a tree is built whole
        store.set_ref("current", second)
        d = publish(store)
        assert b.exists() and d != b
    e = publish(store, url="http://elsewhere.test")  # another base URL: the JSON API names it
    urls = [u["url"] for u in json.loads((e / "pypi/foo-bar/1.0/json").read_text())["urls"]]
    assert urls and all(u.startswith("http://elsewhere.test/packages/") for u in urls)
    assert len({a.name, b.name, c.name, d.name, e.name}) == 5


def test_publish_says_how_it_made_the_tree(store_with_files):
    """`mirror publish --json` says whether the tree was built whole, mended (and what that
    changed) or kept as it was published."""
    from tests.builders.cli import run_mirror

    store, first, files = store_with_files
    yanked = {s: ({**m, "yanked": "bad"} if m["project"] == "qux" else m) for s, m in files.items()}
    second = store.put_snapshot({"format_version": 1, "apps": {}, "targets": {},
                                 "python": {"files": yanked, "installers": {}, "build": {}}}, origin="test")
    store.set_ref("current", first)

    def publish_json() -> dict:
        return json.loads(run_mirror("publish", "--store", str(store.root), "--json").stdout)

    assert publish_json()["built"] == "whole"
    assert publish_json()["built"] == "kept"
    store.set_ref("current", second)
    assert publish_json()["built"] == "whole"  # (one tree only: nothing to mend)
    # The tree before (first's) mended to a third snapshot: qux yanked, and Foo_Bar 1.0 yanked too.
    third = store.put_snapshot({"format_version": 1, "apps": {}, "targets": {}, "python": {
        "files": {s: ({**m, "yanked": "old"} if m["version"] == "1.0" else m) for s, m in yanked.items()},
        "installers": {}, "build": {}}}, origin="test")
    store.set_ref("current", third)
    out = publish_json()
    assert out["built"] == "mended" and (out["files_in"], out["files_out"], out["projects"]) == (2, 2, 2), out
    done = run_mirror("publish", "--store", str(store.root), "--force")
    human = done.stdout + done.stderr
    assert "built whole" in human
