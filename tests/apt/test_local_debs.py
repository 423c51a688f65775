"""`file://` in an Aptfile: a .deb (or a repository) on the local disk that the admin names, within the
app-folder rules: inside the app's folder it is mirrored like a .deb named by URL; outside it is
refused, naming the file, the line and the fix, unless files outside are allowed."""

from __future__ import annotations

import json

from tests.builders.cli import run_mirror
from tests.builders.debs import make_deb
from tests.builders.upstreams import aptfile_app


def test_a_deb_in_the_app_folder_is_mirrored_and_one_outside_is_refused(debian_upstream, tmp_path):
    app, config = aptfile_app(tmp_path, "", debian_upstream.url, debian_upstream.keyring)
    local = make_deb(app / "vendor", "localtool", "1.0", "amd64", depends="libfoo")
    (app / "Aptfile").write_text(f"file://{local}\n")
    result = json.loads(run_mirror("sync", str(app), "--config", config, "--json").stdout)
    (a,) = result["apps"]
    assert a["ok"], a
    snap = json.loads((tmp_path / "store" / "store-v1" / "snapshots" / f"{result['snapshot']}.json").read_text())
    (part,) = snap["apps"]["a"]["apt"].values()
    names = {p[0] for p in part["packages"]}
    assert {"localtool", "libfoo"} <= names  # the local .deb and what it needs from the archive

    outside = make_deb(tmp_path / "elsewhere", "strayer", "1.0", "amd64")
    (app / "Aptfile").write_text(f"file://{outside}\n")
    proc = run_mirror("sync", str(app), "--config", config, "--json", check=False)
    (b,) = json.loads(proc.stdout)["apps"]
    assert not b["ok"] and f"{app / 'Aptfile'}:1" in b["error"] and "outside the app folder" in b["error"]
    assert "allow-outside" in b["error"]


def test_a_local_repository_is_read_from_the_disk_when_files_outside_are_allowed(debian_upstream, tmp_path):
    """A site's repository on a local disk (:repo: file:///...), outside the app folder: allowed by
    --allow-outside-app, its signed Release verified and its packages mirrored as a :repo:'s are."""
    archive = debian_upstream.root
    aptfile = f":repo:deb [signed-by={debian_upstream.keyring}] file://{archive} fixture main\napp-tool\n"
    app, config = aptfile_app(tmp_path, aptfile, debian_upstream.url, debian_upstream.keyring)
    refused = json.loads(run_mirror("sync", str(app), "--config", config, "--json", check=False).stdout)["apps"][0]
    assert not refused["ok"] and "outside the app folder" in refused["error"]
    result = json.loads(run_mirror("sync", str(app), "--config", config, "--json", "--allow-outside-app").stdout)
    (a,) = result["apps"]
    assert a["ok"], a
    snap = json.loads((tmp_path / "store" / "store-v1" / "snapshots" / f"{result['snapshot']}.json").read_text())
    (part,) = snap["apps"]["a"]["apt"].values()
    assert "app-tool" in {p[0] for p in part["packages"]}
