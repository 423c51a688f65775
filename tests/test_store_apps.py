"""Apps belong to the store: a sync of some apps updates those and keeps every other app as it was
(Python and APT parts, their files and targets); removal is explicit (`--prune`, `mirror apps remove`)."""

from __future__ import annotations

import json
from pathlib import Path

from airgap_mirror.store import open_store
from tests.builders.cli import run_mirror
from tests.builders.upstreams import X86, apt_config


def _setup(tmp_path: Path, upstream, debian_upstream) -> tuple[Path, Path, str]:
    apps = tmp_path / "apps"
    for name, reqs, aptfile in [("a", "alpha==1.0\n", None), ("b", "beta==1.0\n", "libbar\n"), ("c", None, "app-tool\n")]:
        (apps / name).mkdir(parents=True)
        if reqs:
            (apps / name / "requirements.txt").write_text(reqs)
        if aptfile:
            (apps / name / "Aptfile").write_text(aptfile)
    config = tmp_path / "mirror.toml"
    config.write_text(f'[store]\npath = "store"\n[python]\nindex-url = "{upstream.url}/simple"\nversions = ["3.11"]\n'
                      f'platforms = ["{X86}"]\ninstallers = ["alpha"]\n'
                      + apt_config(debian_upstream.url, debian_upstream.keyring))
    return apps, tmp_path / "store", str(config)


def _sync(config: str, *args: str) -> dict:
    return json.loads(run_mirror("sync", "--config", config, "--json", *args).stdout)


def _snap(store: Path, sid: str) -> dict:
    return json.loads((store / "store-v1" / "snapshots" / f"{sid}.json").read_text())


def test_a_sync_of_one_app_keeps_the_others_as_they_were(tmp_path, upstream, debian_upstream):
    apps, store, config = _setup(tmp_path, upstream, debian_upstream)
    full = _sync(config, str(apps / "a"), str(apps / "b"), str(apps / "c"))
    assert full["ok"] and full["kept_apps"] == [], full
    before = _snap(store, full["snapshot"])
    # The admin adds nothing new and resyncs a alone: b and c, with their APT closures, stay.
    again = _sync(config, str(apps / "a"))
    assert again["ok"] and again["kept_apps"] == ["b", "c"] and again["removed_apps"] == []
    assert again["snapshot"] == full["snapshot"]   # nothing changed: the very same snapshot
    # a changes: b and c are still there, whole, with every file they use.
    (apps / "a" / "requirements.txt").write_text("alpha==1.0\ngamma==1.0\n")
    changed = _sync(config, str(apps / "a"))
    after = _snap(store, changed["snapshot"])
    assert set(after["apps"]) == {"a", "b", "c"}
    for name in ("b", "c"):
        assert after["apps"][name] == before["apps"][name]
    for sha in before["apps"]["b"]["targets"][f"cp311-{X86}"]["files"]:
        assert after["python"]["files"][sha] == before["python"]["files"][sha]
    for name in ("b", "c"):
        for sha in before["apps"][name]["apt"]["fixture-amd64"]["files"]:
            assert after["apt"]["files"][sha] == before["apt"]["files"][sha]
    assert after["apt"]["targets"] == before["apt"]["targets"]
    # mirror diff names only what changed: a's gamma
    diff = run_mirror("diff", full["snapshot"], changed["snapshot"], "--config", config).stdout
    assert "gamma" in diff and "beta" not in diff and "libbar" not in diff
    # the summary says which apps were kept, on a terminal's text too
    text = run_mirror("sync", "--config", config, str(apps / "a")).stderr
    assert "kept as they were (not named by this sync): b, c" in text


def test_prune_and_apps_remove_are_how_apps_leave(tmp_path, upstream, debian_upstream):
    apps, store, config = _setup(tmp_path, upstream, debian_upstream)
    full = _sync(config, str(apps / "a"), str(apps / "b"), str(apps / "c"))
    listed = json.loads(run_mirror("apps", "--config", config, "--json").stdout)
    assert [r["name"] for r in listed["apps"]] == ["a", "b", "c"]
    assert listed["apps"][1]["folder"] == str((apps / "b").absolute())
    assert "apt:fixture-amd64" in listed["apps"][2]["targets"]

    removed = json.loads(run_mirror("apps", "remove", "c", "--config", config, "--json").stdout)
    snap = _snap(store, removed["snapshot"])
    assert set(snap["apps"]) == {"a", "b"}
    only_c = set(_snap(store, full["snapshot"])["apps"]["c"]["apt"]["fixture-amd64"]["files"]) - set(
        snap["apps"]["b"]["apt"]["fixture-amd64"]["files"])
    assert only_c and not only_c & set(snap["apt"]["files"])       # what only c used is gone
    assert open_store(store).snapshot(removed["snapshot"]).blobs()   # and the rest is whole
    run_mirror("verify", "--config", config)
    unknown = run_mirror("apps", "remove", "zzz", "--config", config, check=False)
    assert unknown.returncode == 2 and "no app named zzz" in unknown.stderr and "a, b" in unknown.stderr

    pruned = _sync(config, str(apps / "a"), "--prune")
    assert pruned["removed_apps"] == ["b"] and pruned["kept_apps"] == []
    assert set(_snap(store, pruned["snapshot"])["apps"]) == {"a"}
    assert "apt" not in _snap(store, pruned["snapshot"])   # no app has an Aptfile now


def test_sync_with_no_folder_named_syncs_the_stores_apps(tmp_path, upstream, debian_upstream):
    apps, store, config = _setup(tmp_path, upstream, debian_upstream)
    _sync(config, str(apps / "a"), str(apps / "b"))
    (apps / "b" / "requirements.txt").write_text("beta==2.0\n")
    again = _sync(config)   # mirror.toml lists no [apps] paths: the folders the store knows
    assert {a["name"] for a in again["apps"]} == {"a", "b"}
    assert _snap(store, again["snapshot"])["apps"]["b"]["targets"][f"cp311-{X86}"]["packages"] == [["beta", "2.0"]]


def test_a_sync_for_one_target_keeps_the_apps_other_targets(tmp_path, upstream, debian_upstream):
    """A run that names its targets (a one-off for another machine) keeps the others as they were,
    Python and APT alike; --prune makes the run's targets the app's only ones."""
    apps, store, config = _setup(tmp_path, upstream, debian_upstream)
    full = _sync(config, str(apps / "b"))
    before = _snap(store, full["snapshot"])["apps"]["b"]
    one = _sync(config, str(apps / "b"), "--python", "3.12", "--distro", "fixture", "--arch", "arm64")
    assert one["kept_targets"] == {"b": ["apt:fixture-amd64", f"cp311-{X86}"]}, one
    after = _snap(store, one["snapshot"])
    entry = after["apps"]["b"]
    assert set(entry["targets"]) == {f"cp311-{X86}", f"cp312-{X86}"}
    assert entry["targets"][f"cp311-{X86}"] == before["targets"][f"cp311-{X86}"]
    assert set(entry["apt"]) == {"fixture-amd64", "fixture-arm64"} and entry["apt"]["fixture-amd64"] == before["apt"]["fixture-amd64"]
    assert {f"cp311-{X86}", f"cp312-{X86}"} <= set(after["targets"]) and set(after["apt"]["targets"]) == {"fixture-amd64", "fixture-arm64"}
    run_mirror("verify", "--config", config)
    pruned = _sync(config, str(apps / "b"), "--python", "3.12", "--distro", "fixture", "--arch", "arm64", "--prune")
    entry = _snap(store, pruned["snapshot"])["apps"]["b"]
    assert set(entry["targets"]) == {f"cp312-{X86}"} and set(entry["apt"]) == {"fixture-arm64"}
