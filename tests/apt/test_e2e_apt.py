"""End to end, offline: Aptfile → sync → publish → serve → real apt-get verifies our InRelease and
downloads every package from our repository alone."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.builders.cli import Served, run_mirror
from tests.builders.debs import BASE_STATUS, AptRoot
from tests.builders.upstreams import apt_config, aptfile_app, clean_env


@pytest.fixture(scope="module")
def apt_mirror(debian_upstream, tmp_path_factory):
    work = tmp_path_factory.mktemp("aptmirror")
    app = work / "apps" / "sysapp"
    app.mkdir(parents=True)
    # UTF-16 with a BOM and CRLF, as Windows editors save it.
    (app / "Aptfile").write_bytes((
        "\ufeff# system packages\r\napp-tool libbar\r\n"
        f"{debian_upstream.url}/extra/urltool_3.0_amd64.deb\r\n"
        f":repo:deb [trusted=yes] {debian_upstream.url}/vendor stable main\r\n"
        "vendor-tool\r\n").encode("utf-16-le"))
    (work / "mirror.toml").write_text(
        '[store]\npath = "store"\n[apps]\npaths = ["apps/*"]\n'
        + apt_config(debian_upstream.url, debian_upstream.keyring, architectures=["amd64", "arm64"]))
    config = str(work / "mirror.toml")
    first = json.loads(run_mirror("sync", "--config", config, "--installers", "", "--json").stdout)
    again = json.loads(run_mirror("sync", "--config", config, "--installers", "", "--json").stdout)
    run_mirror("publish", "--config", config)
    served = Served(work / "store")
    yield {"work": work, "config": config, "first": first, "again": again, "served": served,
           "store": work / "store"}
    served.stop()


def _apt(tmp_path: Path, served: Served, arch: str = "amd64", components: str = "main app-sysapp") -> AptRoot:
    """An apt root of sysapp's machines: main and the app's own component, as `client-config --app` says."""
    apt = AptRoot(tmp_path / f"root-{arch}", arch=arch)
    key = tmp_path / "airgap-mirror.asc"
    with urllib.request.urlopen(served.base + "/debian/airgap-mirror.asc") as resp:  # served beside the repo
        key.write_bytes(resp.read())
    apt.add_source(served.base + "/debian", "fixture", key, components=components)
    apt.set_status(BASE_STATUS.format(arch=arch))
    return apt


def test_sync_summary_and_noop_resync(apt_mirror):
    first, again = apt_mirror["first"], apt_mirror["again"]
    assert first["ok"], first
    assert "fixture-amd64" in first["targets"] and "fixture-arm64" in first["targets"]
    assert first["files"]["fetched"] > 0
    assert again["snapshot"] == first["snapshot"] and not again["changed"]
    assert again["files"]["fetched"] == 0 and again["bytes_fetched"] == 0


def test_snapshot_records_closure_per_target(apt_mirror):
    snap = json.loads((apt_mirror["store"] / "store-v1" / "snapshots" / f"{apt_mirror['first']['snapshot']}.json").read_text())
    per = snap["apps"]["sysapp"]["apt"]
    amd = {n for n, _, _ in per["fixture-amd64"]["packages"]}
    assert {"app-tool", "libbar", "urltool", "vendor-tool", "libfoo", "postfix-fix", "pyish", "data-all"} <= amd
    assert not amd & {"base-req", "fallback-mta", "docs-extra"}
    assert "libc-fix" in amd  # libbar pre-depends on libc-fix (>= 1.0): an older image may have an older one
    arm = {n for n, _, a in per["fixture-arm64"]["packages"]}
    assert {"app-tool", "vendor-tool"} <= arm and "urltool" not in arm  # the URL names an amd64 .deb
    assert snap["apt"]["targets"]["fixture-amd64"]["base"] == "the suite's required packages"
    assert all(m["url"].startswith("http://127.0.0.1") for m in snap["apt"]["files"].values())


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_apt_get_installs_from_our_repository_alone(apt_mirror, tmp_path, arch):
    apt = _apt(tmp_path, apt_mirror["served"], arch)
    apt.run("update")  # verifies our InRelease against the key we serve
    wanted = ["app-tool", "libbar", "vendor-tool"] + (["urltool"] if arch == "amd64" else [])
    apt.run("install", "--download-only", *wanted)
    got = {p.name.split("_")[0] for p in (apt.root / "var/cache/apt/archives").glob("*.deb")}
    assert set(wanted) <= got and "libfoo" in got
    assert {p.name for p in (apt.root / "var/cache/apt/archives").glob("libfoo_*")} == {f"libfoo_1.2_{arch}.deb"}


def test_client_config_prints_a_deb822_entry(apt_mirror):
    out = run_mirror("client-config", "--url", "http://mirror.internal:8080", "--config", apt_mirror["config"]).stdout
    assert "URIs: http://mirror.internal:8080/debian\nSuites: fixture\nComponents: main\n" in out
    assert "Signed-By: /etc/apt/keyrings/airgap-mirror.asc" in out
    app = run_mirror("client-config", "--url", "http://mirror.internal:8080", "--config", apt_mirror["config"],
                     "--app", str(apt_mirror["work"] / "apps" / "sysapp")).stdout
    assert "Components: main app-sysapp\n" in app


def test_an_apps_own_repository_is_never_another_apps_candidate(apt_mirror, tmp_path):
    """sysapp's :repo: (vendor-tool) and .deb URL (urltool) are in its own component: a machine of
    another app, listing main alone, cannot install them or take them for Debian's packages; the
    Debian packages they need are in main for everyone."""
    other = _apt(tmp_path, apt_mirror["served"], components="main")
    other.run("update")
    assert other.run("install", "--download-only", "vendor-tool", check=False).returncode != 0
    assert other.run("install", "--download-only", "urltool", check=False).returncode != 0
    other.run("install", "--download-only", "app-tool", "libbar")
    release = (apt_mirror["store"] / "published" / "current" / "debian" / "dists" / "fixture" / "Release").read_text()
    assert "Components: main app-sysapp\n" in release
    main = (apt_mirror["store"] / "published" / "current" / "debian" / "dists" / "fixture" / "main" / "binary-amd64" / "Packages").read_text()
    assert "Package: vendor-tool" not in main and "Package: urltool" not in main and "Package: libfoo" in main


def test_apt_refuses_an_altered_inrelease(apt_mirror, tmp_path):
    """A served tree whose InRelease was altered (switched in as a publish would: the server keeps
    what a tree's pages are once read, trees never changing in place) is refused by apt-get."""
    import os
    import shutil

    published = apt_mirror["store"] / "published"
    link = published / "current"
    original = os.readlink(link)
    altered = published / "trees" / "altered"
    shutil.copytree(published / original, altered, copy_function=os.link)
    inrelease = altered / "debian" / "dists" / "fixture" / "InRelease"
    data = inrelease.read_bytes()
    inrelease.unlink()  # a file of its own, not the hard link shared with the real tree
    inrelease.write_bytes(data.replace(b"Suite: fixture", b"Suite: fixturf"))
    try:
        os.symlink("trees/altered", published / ".altered")
        os.replace(published / ".altered", link)
        apt = _apt(tmp_path, apt_mirror["served"])
        proc = apt.run("update", check=False)
        assert "BADSIG" in proc.stdout + proc.stderr or "not signed" in proc.stdout + proc.stderr
        assert apt.run("install", "--download-only", "app-tool", check=False).returncode != 0
    finally:
        os.symlink(original, published / ".restored")
        os.replace(published / ".restored", link)
        shutil.rmtree(altered)


def test_sync_refuses_an_upstream_with_a_wrong_key(debian_upstream, tmp_path):
    from tests.builders.debs import stranger_keyring

    ring = stranger_keyring(tmp_path)
    app = tmp_path / "apps" / "a"
    app.mkdir(parents=True)
    (app / "Aptfile").write_text("app-tool\n")
    (tmp_path / "mirror.toml").write_text('[store]\npath = "store"\n' + apt_config(debian_upstream.url, ring))
    proc = run_mirror("sync", str(app), "--config", str(tmp_path / "mirror.toml"), "--installers", "", "--json", check=False)
    assert proc.returncode == 1
    summary = json.loads(proc.stdout)
    assert "signature does not verify" in summary["apps"][0]["error"]
    assert not list((tmp_path / "store" / "store-v1" / "blobs").rglob("*.deb"))


def test_unknown_package_error_names_line_and_suggestion(debian_upstream, tmp_path):
    app = tmp_path / "apps" / "a"
    app.mkdir(parents=True)
    (app / "Aptfile").write_text("libbar\napp-tol\n")
    (tmp_path / "mirror.toml").write_text('[store]\npath = "store"\n' + apt_config(debian_upstream.url, debian_upstream.keyring))
    proc = run_mirror("sync", str(app), "--config", str(tmp_path / "mirror.toml"), "--installers", "", "--json", check=False)
    err = json.loads(proc.stdout)["apps"][0]["error"]
    assert "a (Aptfile:2) → app-tol: no package named 'app-tol'; did you mean app-tool" in err


def test_republish_keeps_previous_by_hash_files(apt_mirror):
    """A client that read the old InRelease still finds the indexes it names after a republish."""
    store, cfg = apt_mirror["store"], apt_mirror["config"]
    aptfile = apt_mirror["work"] / "apps" / "sysapp" / "Aptfile"
    original = aptfile.read_bytes()
    dist = lambda: store / "published" / "current" / "debian" / "dists" / "fixture"  # noqa: E731
    old_release = (dist() / "Release").read_text()
    old_hashes = {line.split()[0] for line in old_release.split("SHA256:")[1].splitlines() if "main/binary-amd64/Packages" in line}
    try:
        aptfile.write_text("app-tool\n")  # a smaller closure: different Packages files
        run_mirror("sync", "--config", cfg, "--installers", "")
        run_mirror("publish", "--config", cfg)
        new_release = (dist() / "Release").read_text()
        assert new_release != old_release
        after = {p.name for p in dist().glob("main/binary-amd64/by-hash/SHA256/*")}
        assert old_hashes <= after
        new_hashes = {line.split()[0] for line in new_release.split("SHA256:")[1].splitlines() if "main/binary-amd64/Packages" in line}
        assert new_hashes <= after and new_hashes != old_hashes
    finally:
        aptfile.write_bytes(original)
        run_mirror("sync", "--config", cfg, "--installers", "")
        run_mirror("publish", "--config", cfg)


def test_an_unsatisfiable_closure_is_remembered_until_the_archive_changes(tmp_path):
    """A nightly resync does not recompute a known failure (suggestions scan every name), yet a new
    Release that adds the package is picked up at once."""
    from tests.builders.debs import GpgKey, make_deb, write_archive
    from tests.builders.upstreams import StaticServer

    key = GpgKey.create(tmp_path / "gnupg")
    debs = tmp_path / "debs"
    base = [make_deb(debs, "base-req", "1.0", priority="required", essential="yes"), make_deb(debs, "app-tool", "1.0")]
    archive = tmp_path / "archive"
    write_archive(archive, "fixture", base, key, arches="amd64")
    write_archive(archive, "fixture-updates", [], key, arches="amd64")
    server = StaticServer(archive)
    try:
        app, config = aptfile_app(tmp_path, "late-tool\n", server.url, key.export(tmp_path / "k.gpg"))
        sync = ["sync", str(app), "--config", config, "--installers", "", "--json"]
        first = json.loads(run_mirror(*sync, check=False).stdout)["apps"][0]
        again = json.loads(run_mirror(*sync, check=False).stdout)["apps"][0]
        assert "no package named 'late-tool'" in first["error"] and again["error"] == first["error"]
        assert [json.loads(p.read_text()).get("error") for p in (tmp_path / "store" / "cache").rglob("closures/*.json")] == [first["error"]]
        write_archive(archive, "fixture", [*base, make_deb(debs, "late-tool", "1.0")], key, arches="amd64")
        fixed = json.loads(run_mirror(*sync).stdout)["apps"][0]
        assert fixed["ok"] and not fixed["error"]
    finally:
        server.stop()
        key.stop()


def test_a_repo_line_whose_release_does_not_verify_names_the_line_and_the_fix(debian_upstream, tmp_path):
    app = tmp_path / "apps" / "a"
    app.mkdir(parents=True)
    (app / "Aptfile").write_text(f"libbar\n:repo:deb {debian_upstream.url}/vendor stable main\nvendor-tool\n")
    (tmp_path / "mirror.toml").write_text('[store]\npath = "store"\n' + apt_config(debian_upstream.url, debian_upstream.keyring))
    proc = run_mirror("sync", str(app), "--config", str(tmp_path / "mirror.toml"), "--installers", "", "--json", check=False)
    err = json.loads(proc.stdout)["apps"][0]["error"]
    assert proc.returncode == 1
    assert "a (Aptfile:2) → :repo: " in err and "signed-by=" in err and "trusted=yes" in err


def test_an_index_that_does_not_match_its_release_fails_only_that_target(debian_upstream, upstream, tmp_path):
    """A suite's Packages that does not match its signed Release (seen with a security suite): the
    Python targets and the other architecture sync, the failing APT target keeps its previous closure,
    the summary names suite and file, and the sync still writes its snapshot (so the nightly bundles)."""
    import hashlib
    import shutil

    from tests.builders.debs import GpgKey
    from tests.builders.upstreams import X86, StaticServer

    archive = tmp_path / "archive"
    shutil.copytree(debian_upstream.root, archive)
    server = StaticServer(archive)
    try:
        app = tmp_path / "apps" / "both"
        app.mkdir(parents=True)
        (app / "requirements.txt").write_text("beta==1.0\n")
        (app / "Aptfile").write_text("libbar\n")
        (tmp_path / "mirror.toml").write_text(
            f'[store]\npath = "store"\n[apps]\npaths = ["apps/*"]\n[python]\nindex-url = "{upstream.url}/simple"\n'
            f'versions = ["3.11"]\nplatforms = ["{X86}"]\ninstallers = []\n'
            + apt_config(server.url, debian_upstream.keyring, architectures=["amd64", "arm64"]))
        config = str(tmp_path / "mirror.toml")
        first = json.loads(run_mirror("sync", "--config", config, "--json").stdout)
        assert first["ok"], first
        # The suite is re-signed with a Release whose arm64 index hashes do not match the files
        # served (an archive caught mid-update); the app asks for more.
        dist = archive / "dists" / "fixture"
        release = (dist / "Release").read_text()
        for f in (dist / "main" / "binary-arm64").glob("Packages*"):
            sha = hashlib.sha256(f.read_bytes()).hexdigest()
            release = release.replace(sha, hashlib.sha256(sha.encode()).hexdigest())
        (dist / "Release").write_text(release)
        key = GpgKey(Path(debian_upstream.root).parent / "gnupg")
        key.fingerprint = next(line.split(":")[9] for line in key.gpg("--with-colons", "--list-secret-keys").splitlines()
                               if line.startswith("fpr:"))
        key.gpg("--local-user", key.fingerprint, "--clearsign", "--output", str(dist / "InRelease"), str(dist / "Release"))
        key.stop()
        (app / "requirements.txt").write_text("beta==2.0\n")
        (app / "Aptfile").write_text("libbar\nneeds-api\n")
        proc = run_mirror("sync", "--config", config, "--json", "--refresh", "--detailed-exit-code", check=False)
        assert proc.returncode == 2, proc.stderr  # changed, and not failed: the nightly bundles it
        second = json.loads(proc.stdout)
        store = tmp_path / "store" / "store-v1" / "snapshots"
        old = json.loads((store / f"{first['snapshot']}.json").read_text())["apps"]["both"]
        new = json.loads((store / f"{second['snapshot']}.json").read_text())["apps"]["both"]
        assert new["targets"][f"cp311-{X86}"]["packages"] == [["beta", "2.0"]]    # Python went on
        assert "needs-api" in {n for n, _, _ in new["apt"]["fixture-amd64"]["packages"]}  # so did amd64
        assert new["apt"]["fixture-arm64"] == old["apt"]["fixture-arm64"]         # arm64: previous closure
        app_result = second["apps"][0]
        assert app_result["ok"]
        warning = next(w for w in app_result["warnings"] if "fixture-arm64" in w)
        assert "fixture" in warning and "binary-arm64/Packages" in warning and "previous closure" in warning
        assert any("binary-arm64/Packages" in w for w in second["warnings"])
    finally:
        server.stop()


def test_apt_get_over_tls_with_credentials_and_refuses_without(apt_mirror, tmp_path):
    """apt-get trusts the site's CA through Acquire::https::CaInfo and passes credentials from
    auth.conf.d, as `mirror client-config` says; an untrusted server or wrong credentials fail."""
    import ssl

    import bcrypt
    import httpx

    from tests.builders.tls import Server, ca_and_cert

    ca, cert, key = ca_and_cert(tmp_path / "tls")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"apt-user:{bcrypt.hashpw(b'apt-secret-42', bcrypt.gensalt(rounds=8)).decode()}\n")
    srv = Server(apt_mirror["store"], "--tls-cert", str(cert), "--tls-key", str(key), "--htpasswd", str(htpasswd))
    try:
        apt = AptRoot(tmp_path / "root")
        ring = tmp_path / "airgap-mirror.asc"
        netrc = apt.root / "etc/apt/auth.conf.d/airgap-mirror.conf"
        netrc.parent.mkdir(parents=True, exist_ok=True)
        # What `mirror client-config --user` prints, done as printed: apt's credentials file (the line it
        # gives, the password filled in), then the key fetched with curl reading that very file.
        said = run_mirror("client-config", "--url", srv.base, "--user", "apt-user", "--store", str(apt_mirror["store"])).stdout
        auth_line = next(line for line in said.splitlines() if line.startswith("# apt: /etc/apt/auth.conf.d/"))
        machine = auth_line.split("(mode 600):", 1)[1].strip().replace("PASSWORD", "apt-secret-42")
        netrc.write_text(machine + "\n")
        curl = next(line for line in said.splitlines() if line.lstrip("# ").startswith("curl "))
        curl = curl.lstrip("# ").replace("/etc/apt/auth.conf.d/airgap-mirror.conf", str(netrc)) \
            .replace("/etc/apt/keyrings/airgap-mirror.asc", str(ring))
        got = subprocess.run(curl, shell=True, env={**clean_env(), "CURL_CA_BUNDLE": str(ca)}, capture_output=True, text=True)
        assert got.returncode == 0 and b"BEGIN PGP PUBLIC KEY" in ring.read_bytes(), got.stderr
        apt.add_source(srv.base + "/debian", "fixture", ring)
        apt.set_status(BASE_STATUS.format(arch="amd64"))
        untrusted = apt.run("update", check=False)
        assert "certificate" in (untrusted.stdout + untrusted.stderr).lower()
        (apt.root / "etc/apt/apt.conf.d/50airgap-mirror-ca").write_text(f'Acquire::https::CaInfo "{ca}";\n')
        netrc.write_text(machine.replace("apt-secret-42", "wrong-one") + "\n")
        denied = apt.run("update", check=False)
        assert "401" in denied.stdout + denied.stderr
        netrc.write_text(machine + "\n")  # as client-config printed it: the host name alone, any port
        apt.run("update")
        apt.run("install", "--download-only", "app-tool", "libbar")
        got = {p.name.split("_")[0] for p in (apt.root / "var/cache/apt/archives").glob("*.deb")}
        assert {"app-tool", "libbar", "libfoo"} <= got
        # The front page gives this very server's deb822 entry, as client-config does.
        front = httpx.get(srv.base + "/", verify=ssl.create_default_context(cafile=str(ca)), auth=("apt-user", "apt-secret-42"))
        assert f"URIs: {srv.base}/debian" in front.text and 'href="/debian/airgap-mirror.asc"' in front.text
    finally:
        srv.stop()
