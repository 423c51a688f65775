"""End to end across the gap, offline: an outside store synced from fixture upstreams (Python and
APT) → signed bundles (full, then delta) → upstreams stopped → a fresh inside store imports them →
served → real pip and real apt-get install the apps from the inside server alone."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.builders.cli import Served, check_installed, make_venv, run_mirror
from tests.builders.debs import BASE_STATUS, AptRoot
from tests.builders.upstreams import DATA, X86, StaticServer, apt_config, clean_env


@pytest.fixture(scope="module")
def gap(upstream, debian_upstream, tmp_path_factory):
    work = tmp_path_factory.mktemp("gap")
    apps = work / "apps"
    shutil.copytree(DATA / "apps" / "shop", apps / "shop")
    (apps / "shop" / "Aptfile").write_text("app-tool\nlibbar\n")
    # Upstreams of our own, so they can be stopped before anything happens inside.
    py_up, deb_up = StaticServer(upstream.root), StaticServer(debian_upstream.root)
    (work / "mirror.toml").write_text(
        '[store]\npath = "outside"\n[apps]\npaths = ["apps/*"]\n'
        f'[python]\nindex-url = "{py_up.url}/simple"\nplatforms = ["{X86}"]\ninstallers = ["pip", "setuptools"]\n'
        + apt_config(deb_up.url, debian_upstream.keyring))
    cfg = str(work / "mirror.toml")
    first = json.loads(run_mirror("sync", "--config", cfg, "--json").stdout)
    assert first["ok"], first
    run_mirror("keygen", "--out", str(work / "keys" / "site"))
    full = json.loads(run_mirror("bundle", "create", "--store", str(work / "outside"), "--key", str(work / "keys" / "site.key"),
                                 "-o", str(work / "media" / "full.bundle"), "--split", "1M", "--json").stdout)
    # Upstream moves on: a new beta release; the nightly sync picks it up and a delta carries it.
    from tests.builders import make_wheel, write_simple_index

    make_wheel(upstream.root / "files", "beta", "3.0")
    write_simple_index(upstream.root / "files", upstream.root / "simple")
    second = json.loads(run_mirror("sync", "--config", cfg, "--json", "--refresh").stdout)
    diff = json.loads(run_mirror("diff", first["snapshot"][:12], "current", "--config", cfg, "--json").stdout)
    delta = json.loads(run_mirror("bundle", "create", "--store", str(work / "outside"), "--key", str(work / "keys" / "site.key"),
                                  "-o", str(work / "media" / "delta.bundle"), "--since", "last-exported", "--json").stdout)
    py_up.stop()
    deb_up.stop()
    yield {"work": work, "first": first, "second": second, "full": full, "delta": delta, "diff": diff}
    for f in (upstream.root / "files").glob("beta-3.0*"):
        f.unlink()
    write_simple_index(upstream.root / "files", upstream.root / "simple")


def test_bundles_are_what_was_synced(gap):
    assert gap["full"]["snapshot"] == gap["first"]["snapshot"] and gap["full"]["base"] is None
    assert len(gap["full"]["files"]) >= 2  # split into 1 MiB parts
    assert gap["delta"]["base"] == gap["first"]["snapshot"] and gap["delta"]["snapshot"] == gap["second"]["snapshot"]
    assert 1 <= gap["delta"]["blobs"] < gap["full"]["blobs"]
    # What an admin reviews before carrying the delta: exactly the upstream change, nothing else.
    changes = gap["diff"]["apps"]
    assert changes == {"shop": {t: {"changed": [["beta", "2.0", "3.0"]]} for t in changes["shop"]}} and changes["shop"]
    assert gap["diff"]["files_to_carry"] == gap["delta"]["dist_files"] == 1  # one count: the distribution files (beta 3.0)


@pytest.fixture(scope="module")
def inside(gap):
    work = gap["work"]
    store = work / "inside"
    pub = work / "keys" / "site.pub"
    # The transfer station checks the media with the stock minisign, parts and whole.
    for f in gap["full"]["files"]:
        subprocess.run(["minisign", "-Vm", f, "-p", str(pub)], check=True, capture_output=True)
    run_mirror("trust", "add", str(pub), "--store", str(store))
    verified = run_mirror("bundle", "verify", str(work / "media" / "full.bundle"), "--store", str(store)).stdout
    assert verified.startswith("VERIFIED")
    delta_first = run_mirror("bundle", "import", str(work / "media" / "delta.bundle"), "--store", str(store), check=False)
    assert delta_first.returncode == 2 and "import the full bundle" in delta_first.stderr
    full = json.loads(run_mirror("bundle", "import", str(work / "media" / "full.bundle"), "--store", str(store), "--json").stdout)
    served = Served(store)
    yield {"store": store, "served": served, "full": full}
    served.stop()


def test_full_bundle_serves_python_and_apt(gap, inside, tmp_path):
    assert inside["full"]["current"] and inside["full"]["snapshot"] == gap["first"]["snapshot"]
    venv = make_venv(tmp_path)
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "--isolated", "--no-cache-dir",
                           "--index-url", inside["served"].simple, "-r", str(gap["work"] / "apps" / "shop" / "requirements.txt")],
                          capture_output=True, text=True, env=clean_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert check_installed(venv)["beta"] == "2.0"
    apt = AptRoot(tmp_path / "root")
    key = inside["store"] / "published" / "current" / "debian" / "airgap-mirror.asc"
    apt.add_source(inside["served"].base + "/debian", "fixture", key)
    apt.set_status(BASE_STATUS.format(arch="amd64"))
    apt.run("update")
    apt.run("install", "--download-only", "app-tool", "libbar")
    assert {p.name.split("_")[0] for p in (apt.root / "var/cache/apt/archives").glob("*.deb")} >= {"app-tool", "libfoo", "libbar"}


def test_delta_then_replay(gap, inside, tmp_path):
    store = inside["store"]
    delta = json.loads(run_mirror("bundle", "import", str(gap["work"] / "media" / "delta.bundle"), "--store", str(store), "--json").stdout)
    assert delta["current"] and delta["snapshot"] == gap["second"]["snapshot"]
    venv = make_venv(tmp_path)
    proc = subprocess.run([str(venv / "bin" / "pip"), "install", "--isolated", "--no-cache-dir",
                           "--index-url", inside["served"].simple, "beta"], capture_output=True, text=True, env=clean_env())
    assert proc.returncode == 0 and "beta-3.0" in proc.stdout, proc.stdout + proc.stderr
    # Re-importing an already imported bundle changes nothing; an older sequence from the same key is a replay.
    again = json.loads(run_mirror("bundle", "import", str(gap["work"] / "media" / "full.bundle"), "--store", str(store), "--json").stdout)
    assert again["already_imported"] and not again["current"]
    assert (store / "store-v1" / "refs" / "current").read_text().strip() == gap["second"]["snapshot"]
    work = gap["work"]
    old = work / "media" / "old.bundle"
    run_mirror("bundle", "create", "--store", str(work / "outside"), "--key", str(work / "keys" / "site.key"),
               "-o", str(old), "--sequence", "1", "--snapshot", gap["first"]["snapshot"], "--since", gap["first"]["snapshot"],
               "--force", "--allow-empty")  # (refused without them: see below)
    replay = run_mirror("bundle", "import", str(old), "--store", str(store), check=False)
    assert replay.returncode == 5 and "refused as a replay" in replay.stderr
    assert (store / "store-v1" / "refs" / "current").read_text().strip() == gap["second"]["snapshot"]


def test_nightly_job(upstream, tmp_path):
    """scripts/nightly: a first run bundles everything, an unchanged rerun bundles nothing."""
    import os
    import sys

    app = tmp_path / "apps" / "shop"
    shutil.copytree(DATA / "apps" / "shop", app)
    (tmp_path / "mirror.toml").write_text(
        f'[apps]\npaths = ["apps/*"]\n[python]\nindex-url = "{upstream.url}/simple"\nplatforms = ["{X86}"]\ninstallers = []\n')
    run_mirror("keygen", "--out", str(tmp_path / "site"))
    env = clean_env(MIRROR_STORE=str(tmp_path / "store"), MIRROR_KEY=str(tmp_path / "site.key"), MIRROR_OUT=str(tmp_path / "out"),
                    MIRROR_CONFIG=str(tmp_path / "mirror.toml"), MIRROR_BIN=f"{sys.executable} -m airgap_mirror.cli")
    script = str(Path(__file__).parents[2] / "scripts" / "nightly")
    first = subprocess.run([script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "changed" in first.stdout and "full bundle" in first.stdout
    second = subprocess.run([script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert second.returncode == 0 and "unchanged" in second.stdout, second.stdout + second.stderr
    assert len(list((tmp_path / "out").glob("*.bundle"))) == 1
    assert os.path.exists(tmp_path / "out" / (next((tmp_path / "out").glob("*.bundle")).name + ".minisig"))


def test_bundle_and_apt_commands_use_the_store_named_in_mirror_toml(tmp_path: Path):
    """Run from the folder of a mirror.toml, every command works on its [store], as `mirror sync` does."""
    (tmp_path / "mirror.toml").write_text('[store]\npath = "the-store"\n')
    run_mirror("keygen", "--out", str(tmp_path / "site"), cwd=tmp_path)
    added = run_mirror("trust", "add", str(tmp_path / "site.pub"), cwd=tmp_path).stderr.split()[-1]
    assert [k["key"] for k in json.loads(run_mirror("trust", "list", "--json", cwd=tmp_path).stdout)] == [added]
    assert (tmp_path / "the-store" / "store-v1").is_dir() and not (tmp_path / "mirror-store").exists()
    assert run_mirror("apt-key", "generate", cwd=tmp_path).returncode == 0
    assert (tmp_path / "the-store" / "keys").is_dir() and not (tmp_path / "mirror-store").exists()


def test_bundle_create_takes_every_snapshot_name_and_refuses_a_bad_one_in_one_line(tmp_path):
    """`--snapshot previous` used to end in a traceback (`not a sha256 hex digest`); every command that
    takes a snapshot takes the same names: an id or unique prefix, current, previous, last-exported."""
    import time

    from airgap_mirror.store import Store
    from tests.builders.bundles import snapshot_of

    store = Store(tmp_path / "s").create()
    first = snapshot_of(store, [b"one" * 50])
    time.sleep(1.1)
    snapshot_of(store, [b"two" * 50])
    run_mirror("keygen", "--out", str(tmp_path / "k"))
    for name in ("previous", first[:10]):
        out = tmp_path / f"{name}.bundle"
        run_mirror("bundle", "create", "--store", str(store.root), "--key", str(tmp_path / "k.key"), "-o", str(out),
                   "--snapshot", name)
        show = run_mirror("bundle", "show", str(out), "--json")
        assert json.loads(show.stdout)["snapshot"] == first
    bad = run_mirror("bundle", "create", "--store", str(store.root), "--key", str(tmp_path / "k.key"), "-o",
                     str(tmp_path / "x.bundle"), "--snapshot", "yesterday", check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "yesterday" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) <= 2


def test_nightly_bundles_the_apps_that_synced_when_one_is_broken(upstream, tmp_path):
    """One broken app never blocks the others' transfer: the bundle is written with the apps that
    synced, the summary line names the broken one, the log it points to holds its error (never an
    empty log), and the exit code (3) is one a scheduler alerts on."""
    import sys

    shutil.copytree(DATA / "apps" / "shop", tmp_path / "apps" / "shop")
    broken = tmp_path / "apps" / "broken"
    broken.mkdir()
    (broken / "requirements.txt").write_text("alpha==1.0\nbeta = 2\n")
    (tmp_path / "mirror.toml").write_text(
        f'[apps]\npaths = ["apps/*"]\n[python]\nindex-url = "{upstream.url}/simple"\nplatforms = ["{X86}"]\ninstallers = []\n')
    run_mirror("keygen", "--out", str(tmp_path / "site"))
    out = tmp_path / "out"
    env = clean_env(MIRROR_STORE=str(tmp_path / "store"), MIRROR_KEY=str(tmp_path / "site.key"), MIRROR_OUT=str(out),
                    MIRROR_CONFIG=str(tmp_path / "mirror.toml"), MIRROR_BIN=f"{sys.executable} -m airgap_mirror.cli")
    script = str(Path(__file__).parents[2] / "scripts" / "nightly")
    first = subprocess.run([script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert first.returncode == 3, first.stdout + first.stderr
    assert "full bundle" in first.stdout and "FAILED apps: broken" in first.stdout
    bundle = next(out.glob("*.bundle"))
    shown = json.loads(run_mirror("bundle", "show", str(bundle), "--json").stdout)
    snap = json.loads((tmp_path / "store" / "store-v1" / "snapshots" / f"{shown['snapshot']}.json").read_text())
    assert set(snap["apps"]) == {"shop"}
    log = next(out.glob("nightly-*.log")).read_text()
    assert "FAILED app broken" in log and "requirements.txt:2" in log
    again = subprocess.run([script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 3 and "unchanged" in again.stdout and "FAILED apps: broken" in again.stdout
    assert len(list(out.glob("*.bundle"))) == 1
    # Bad input (a config that does not load) is a failure with its reason, not "unchanged".
    (tmp_path / "mirror.toml").write_text("[python\n")
    bad = subprocess.run([script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 1 and "FAILED" in bad.stdout and "mirror.toml" in bad.stdout


def test_bundle_create_refuses_a_reused_sequence_and_an_empty_delta(tmp_path):
    """A sequence this key already exported is a replay inside, and a delta on the very snapshot it
    brings carries nothing: both are refused outside, naming the flag that asks for them anyway."""
    from airgap_mirror.store import Store
    from tests.builders.bundles import snapshot_of

    store = Store(tmp_path / "s").create()
    sid = snapshot_of(store, [b"one" * 50])
    run_mirror("keygen", "--out", str(tmp_path / "k"))
    base = ["bundle", "create", "--store", str(store.root), "--key", str(tmp_path / "k.key")]
    first = json.loads(run_mirror(*base, "-o", str(tmp_path / "1.bundle"), "--json").stdout)
    assert first["sequence"] == 1 and first["dist_files"] == 1 and first["blobs"] == 1
    reused = run_mirror(*base, "-o", str(tmp_path / "2.bundle"), "--sequence", "1", check=False)
    assert reused.returncode == 2 and "already exported" in reused.stderr and "the next is 2" in reused.stderr
    assert not (tmp_path / "2.bundle").exists()
    empty = run_mirror(*base, "-o", str(tmp_path / "3.bundle"), "--since", sid, check=False)
    assert empty.returncode == 2 and "nothing to carry" in empty.stderr and not (tmp_path / "3.bundle").exists()
    assert json.loads(run_mirror(*base, "-o", str(tmp_path / "4.bundle"), "--since", sid, "--allow-empty",
                                 "--json").stdout)["sequence"] == 2


def test_diff_names_apps_and_targets_added_and_removed(tmp_path):
    from airgap_mirror.store import Store

    store = Store(tmp_path / "s").create()
    doc = {"format_version": 1, "targets": {"cp311-x": {}}, "python": {"files": {}, "installers": {}, "build": {}},
           "apps": {"a": {"targets": {"cp311-x": {"packages": [], "files": []}}}, "gone": {"targets": {}}}}
    old = store.put_snapshot(doc, origin="sync")
    doc = {**doc, "targets": {"cp312-x": {}}, "apps": {"a": {"targets": {"cp312-x": {"packages": [], "files": []}}},
                                                        "new": {"targets": {}}}}
    new = store.put_snapshot(doc, origin="sync")
    out = run_mirror("diff", old, new, "--store", str(store.root)).stdout
    assert "apps added: new" in out and "apps removed: gone" in out
    assert "targets added: cp312-x" in out and "targets removed: cp311-x" in out and "no changes" not in out
