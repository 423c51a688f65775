"""environment.yml's conda side, offline: tiny real conda packages (.tar.bz2 and .conda) in a local
channel indexed by py-rattler -> sync for two targets of other subdirs than the host's choice ->
bundle -> import into a fresh store -> publish -> serve -> py-rattler's solver and installer build
the environment from our channel alone."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.builders.cli import MIRROR, Served, run_mirror
from tests.builders.conda import index_channel, make_conda
from tests.builders.upstreams import StaticServer, clean_env

X86, ARM = "manylinux_2_28_x86_64", "manylinux_2_28_aarch64"


@pytest.fixture(scope="module")
def forge(tmp_path_factory):
    """A channel `fixture-forge`: libz 1.3 needs glibc 2.34 (newer than a 2_28 target has), tool ships
    as .conda, data is noarch; python and pip as an environment.yml names them."""
    root = tmp_path_factory.mktemp("conda") / "fixture-forge"
    for subdir in ("linux-64", "linux-aarch64"):
        make_conda(root, "libz", "1.2", subdir=subdir)
        make_conda(root, "libz", "1.3", subdir=subdir, depends=("__glibc >=2.34",))
        make_conda(root, "tool", "2.0", subdir=subdir, depends=("libz >=1.2",), fmt="conda")
        make_conda(root, "python", "3.11.7", subdir=subdir, depends=("libz",))
        make_conda(root, "python", "3.10.14", subdir=subdir, depends=("libz",))
        make_conda(root, "python", "3.12.1", subdir=subdir, depends=("libz",))
    make_conda(root, "data", "1.0", depends=("tool",))
    make_conda(root, "pip", "24.0", depends=("python >=3.8",))
    make_conda(root, "unrelated", "9.9", subdir="linux-64")
    index_channel(root)
    server = StaticServer(root.parent)
    yield server, server.url + "/fixture-forge", root
    server.stop()


def _app(tmp_path: Path, channel: str) -> Path:
    app = tmp_path / "apps" / "science"
    app.mkdir(parents=True)
    (app / "environment.yml").write_text(
        f"name: science\nchannels:\n  - {channel}\n  - nodefaults\ndependencies:\n"
        "  - python=3.11\n  - data\n  - tool=2.0\n  - pip\n")
    return app


def _install(channel: str, subdir: str, glibc: str, prefix: Path) -> list[str]:
    """What a conda-format client builds from `channel` alone for a machine of `subdir` and `glibc`."""
    import rattler

    async def run() -> list[str]:
        virtual = [rattler.GenericVirtualPackage(rattler.PackageName(n), rattler.Version(v), rattler.BuildString("0"))
                   for n, v in (("__glibc", glibc), ("__linux", "5.10"), ("__unix", "0"))]
        records = await rattler.solve(sources=[channel], specs=["python=3.11", "data", "tool=2.0", "pip"],
                                      gateway=rattler.Gateway(cache_dir=prefix.parent / "gw"),
                                      platforms=[subdir, "noarch"], virtual_packages=virtual)
        await rattler.install(records, prefix, cache_dir=prefix.parent / "pkgs", show_progress=False,
                              platform=rattler.Subdir(subdir))
        return sorted(f"{r.name.normalized}-{r.version}" for r in records)

    return asyncio.run(run())


def test_conda_environment_mirrored_for_targets_and_installed_from_our_channel(forge, upstream, tmp_path, monkeypatch):
    server, channel, _ = forge
    app = _app(tmp_path, channel)
    # The host's conda settings must not reach the solve: a .condarc and CONDA_* naming a dead channel.
    (tmp_path / "condarc").write_text("channels:\n  - http://127.0.0.1:9/dead\n")
    env = clean_env(CONDARC=str(tmp_path / "condarc"), CONDA_CHANNELS="http://127.0.0.1:9/dead")
    out = tmp_path / "outside"
    proc = subprocess.run([*MIRROR, "sync", str(app), "--store", str(out), "--python", "3.11", "--platform", X86,
                           "--platform", ARM, "--index-url", upstream.url + "/simple", "--installers", "", "--json"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout)
    (result,) = summary["apps"]
    assert result["ok"] and result["conda_not_mirrored"] == [], result
    assert not any("not mirrored" in w for w in result["warnings"])
    snap = json.loads((out / "store-v1" / "snapshots" / f"{summary['snapshot']}.json").read_text())
    per = snap["apps"]["science"]["conda"]
    assert set(per) == {"linux-64-glibc2.28", "linux-aarch64-glibc2.28"}
    names = {tuple(p[:2]) for p in per["linux-64-glibc2.28"]["packages"]}
    assert names == {("libz", "1.2"), ("tool", "2.0"), ("data", "1.0"), ("python", "3.11.7"), ("pip", "24.0")}
    conda_files = snap["conda"]["files"]
    assert {m["subdir"] for m in conda_files.values()} == {"linux-64", "linux-aarch64", "noarch"}
    assert any(m["filename"].endswith(".conda") for m in conda_files.values())
    assert not any(m["name"] == "unrelated" or (m["name"], m["version"]) == ("libz", "1.3") for m in conda_files.values())

    # Across the gap: a bundle, imported into a fresh store, published and served.
    run_mirror("keygen", "--out", str(tmp_path / "k"))
    run_mirror("bundle", "create", "--store", str(out), "--key", str(tmp_path / "k.key"), "-o", str(tmp_path / "b.bundle"))
    inside = tmp_path / "inside"
    run_mirror("bundle", "import", str(tmp_path / "b.bundle"), "--store", str(inside), "--trust", str(tmp_path / "k.pub"))
    upstream_requests = len(server.requests)  # nothing upstream from here on
    tree = (inside / "published" / "current").resolve()
    repodata = json.loads((tree / "conda" / "fixture-forge" / "linux-64" / "repodata.json").read_text())
    assert set(repodata["packages"]) | set(repodata["packages.conda"]) == {
        m["filename"] for m in conda_files.values() if m["subdir"] == "linux-64"}
    assert (tree / "conda" / "fixture-forge" / "noarch" / "repodata.json").is_file()
    assert (tree / "conda" / "fixture-forge" / "linux-64" / "repodata.json.zst").is_file()

    served = Served(inside)
    try:
        ours = served.base + "/conda/fixture-forge"
        for subdir in ("linux-64", "linux-aarch64"):
            prefix = tmp_path / f"env-{subdir}"
            got = _install(ours, subdir, "2.28", prefix)
            assert got == ["data-1.0", "libz-1.2", "pip-24.0", "python-3.11.7", "tool-2.0"]
            assert (prefix / "share" / "libz" / "1.2.txt").read_text() == f"libz 1.2 {subdir}\n"
            assert (prefix / "share" / "data" / "1.0.txt").is_file()
        # The explicit lock: every package of the target, by URL and sha256 of what is served.
        with urllib.request.urlopen(served.base + "/locks/science/linux-64-glibc2.28/conda-explicit.txt") as resp:
            lock = resp.read().decode().splitlines()
        assert lock[1] == "@EXPLICIT" and len(lock) == 2 + 5
        for line in lock[2:]:
            rel, sha = line.rsplit("#", 1)
            rel = rel.split("/conda/", 1)[1]
            with urllib.request.urlopen(f"{served.base}/conda/{rel}") as resp:
                assert hashlib.sha256(resp.read()).hexdigest() == sha
        assert len(server.requests) == upstream_requests, server.requests[upstream_requests:]
    finally:
        served.stop()


def test_a_conda_solve_that_fails_is_that_apps_error_with_the_channel(forge, upstream, tmp_path):
    _, channel, _ = forge
    app = tmp_path / "apps" / "broken"
    app.mkdir(parents=True)
    (app / "environment.yml").write_text(f"channels: [{channel}, nodefaults]\ndependencies:\n  - no-such-package\n")
    proc = run_mirror("sync", str(app), "--store", str(tmp_path / "s"), "--platform", X86, "--installers", "",
                      "--index-url", upstream.url + "/simple", "--json", check=False)
    (result,) = json.loads(proc.stdout)["apps"]
    assert not result["ok"] and "no-such-package" in result["error"] and "fixture-forge" in result["error"]
    assert "Traceback" not in proc.stderr


def test_client_config_says_how_conda_reaches_the_mirror(forge, upstream, tmp_path):
    _, channel, _ = forge
    app = _app(tmp_path, channel)
    store = tmp_path / "store"
    run_mirror("sync", str(app), "--store", str(store), "--platform", X86, "--installers", "",
               "--index-url", upstream.url + "/simple")
    run_mirror("publish", "--store", str(store))
    text = run_mirror("client-config", "--url", "https://mirror.internal", "--store", str(store)).stdout
    assert "channel_alias: https://mirror.internal/conda" in text
    assert "  - https://mirror.internal/conda/fixture-forge" in text and "default_channels: []" in text
    assert "conda create --name science --file https://mirror.internal/locks/science/linux-64-glibc2.28/conda-explicit.txt" in text


def test_the_python_environment_yml_pins_sets_the_pip_lists_target(forge, upstream, tmp_path):
    _, channel, _ = forge
    app = tmp_path / "apps" / "legacy"
    app.mkdir(parents=True)
    (app / "environment.yml").write_text(
        f"channels: [{channel}, nodefaults]\ndependencies:\n  - python=3.10\n  - libz\n  - pip:\n    - alpha\n")
    out = json.loads(run_mirror("sync", str(app), "--store", str(tmp_path / "s"), "--platform", X86,
                                "--installers", "", "--index-url", upstream.url + "/simple", "--json").stdout)
    (result,) = out["apps"]
    assert result["ok"] and "cp310-manylinux_2_28_x86_64" in result["targets"], result
    snap = json.loads((tmp_path / "s" / "store-v1" / "snapshots" / f"{out['snapshot']}.json").read_text())
    sbom = json.loads(run_mirror("sbom", "--store", str(tmp_path / "s")).stdout)
    purls = {c.get("purl", "") for c in sbom["components"]}
    assert any(p.startswith("pkg:conda/libz@1.2?build=") and "subdir=linux-64" in p for p in purls), purls
    assert snap["apps"]["legacy"]["conda"]


@pytest.mark.parametrize(("python_spec", "picked"), [("python>=3.10", "3.12.1"), ("python", "3.12.1"),
                                                     ("python<3.11", "3.10.14")])
def test_the_python_the_conda_solve_picks_sets_the_pip_lists_target(forge, upstream, tmp_path, python_spec, picked):
    """environment.yml leaves Python open: the solve picks one (the channel's newest the spec allows),
    and the pip: list is resolved for that Python, not for the tool's default (3.11) or the host's;
    --python still wins."""
    _, channel, _ = forge
    app = tmp_path / "apps" / "open"
    app.mkdir(parents=True)
    (app / "environment.yml").write_text(
        f"channels: [{channel}, nodefaults]\ndependencies:\n  - {python_spec}\n  - tool\n  - pip:\n    - alpha\n")
    out = json.loads(run_mirror("sync", str(app), "--store", str(tmp_path / "s"), "--platform", X86, "--installers", "",
                                "--index-url", upstream.url + "/simple", "--json").stdout)
    (result,) = out["apps"]
    cp = "cp" + "".join(picked.split(".")[:2])
    assert result["ok"] and [t for t in result["targets"] if t.startswith("cp")] == [f"{cp}-manylinux_2_28_x86_64"], result
    snap = json.loads((tmp_path / "s" / "store-v1" / "snapshots" / f"{out['snapshot']}.json").read_text())
    conda = snap["apps"]["open"]["conda"]
    assert any(p[0] == "python" and p[1] == picked for t in conda.values() for p in t["packages"]), conda
    # The user's --python is an instruction: it is not overridden.
    out = json.loads(run_mirror("sync", str(app), "--store", str(tmp_path / "s2"), "--python", "3.10", "--platform", X86,
                                "--installers", "", "--index-url", upstream.url + "/simple", "--json").stdout)
    assert [t for t in out["apps"][0]["targets"] if t.startswith("cp")] == ["cp310-manylinux_2_28_x86_64"], out["apps"][0]


def test_a_private_channel_with_credentials_from_the_environment(forge, upstream, tmp_path):
    """`${VAR}` in a channel URL, as for a private pip index: read from the environment, used for the
    solve and the downloads, and never written to the store or printed."""
    from tests.builders.upstreams import AuthServer

    _, _, root = forge
    private = AuthServer(root.parent, "conda-bot", "pw-c0nda/#secret")  # the same packages, behind basic auth
    try:
        port = private.url.rsplit(":", 1)[1]
        app = tmp_path / "apps" / "internal"
        app.mkdir(parents=True)
        (app / "environment.yml").write_text(
            f"channels:\n  - http://${{CONDA_USER}}:${{CONDA_PASS}}@127.0.0.1:{port}/{root.name}\n  - nodefaults\n"
            "dependencies:\n  - tool=2.0\n")
        # Named CONDA_*: read for the channel URL, though the host's conda settings are kept from the solve.
        env = clean_env()
        env.update({"CONDA_USER": "conda-bot", "CONDA_PASS": "pw-c0nda/#secret"})
        proc = subprocess.run([*MIRROR, "sync", str(app), "--store", str(tmp_path / "s"), "--platform", X86,
                               "--installers", "", "--index-url", upstream.url + "/simple", "--json"],
                              capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        (result,) = json.loads(proc.stdout)["apps"]
        assert result["ok"], result
        assert True in private.seen_auth  # the solve and the downloads authenticated
        leaked = [p for p in (tmp_path / "s").rglob("*") if p.is_file() and b"pw-c0nda" in p.read_bytes()]
        assert leaked == [] and "pw-c0nda" not in proc.stdout + proc.stderr
        missing = run_mirror("sync", str(app), "--store", str(tmp_path / "s2"), "--platform", X86, "--installers", "",
                             "--index-url", upstream.url + "/simple", "--json", check=False)
        (failed,) = json.loads(missing.stdout)["apps"]
        assert not failed["ok"] and "CONDA_USER" in failed["error"] and "CONDA_PASS" in failed["error"]
    finally:
        private.stop()


def test_an_environment_yml_as_conda_env_export_writes_it(forge, upstream, tmp_path):
    """`conda env export` pins `name=version=build` (builds like `0` or `h7f98852_0`): read as conda
    reads it; a spec nothing can read fails the app naming environment.yml and its line."""
    import hashlib

    _, channel, _ = forge
    build = f"h{hashlib.sha1(b'tool2.0linux-64').hexdigest()[:7]}_0"
    app = tmp_path / "apps" / "exported"
    app.mkdir(parents=True)
    (app / "environment.yml").write_text(
        f"name: exported\nchannels:\n  - {channel}\n  - nodefaults\ndependencies:\n"
        f"  - python=3.11.7\n  - tool=2.0={build}\n  - libz=1.2=*_0\n")
    proc = run_mirror("sync", str(app), "--store", str(tmp_path / "s"), "--platform", X86, "--installers", "",
                      "--index-url", upstream.url + "/simple", "--json", check=False)
    (result,) = json.loads(proc.stdout)["apps"]
    assert result["ok"], result
    snap = json.loads(next((tmp_path / "s" / "store-v1" / "snapshots").glob("*.json")).read_text())
    (entry,) = snap["apps"]["exported"]["conda"].values()
    packages = {n: (v, b) for n, v, b in entry["packages"]}
    assert packages["tool"] == ("2.0", build) and packages["libz"][0] == "1.2"
    (app / "environment.yml").write_text(f"channels: [{channel}]\ndependencies:\n  - python=3.11\n  - tool===2\n")
    proc = run_mirror("sync", str(app), "--store", str(tmp_path / "s"), "--platform", X86, "--installers", "",
                      "--index-url", upstream.url + "/simple", "--json", check=False)
    (result,) = json.loads(proc.stdout)["apps"]
    assert not result["ok"] and "environment.yml:4" in result["error"] and "'tool===2'" in result["error"], result


def test_published_channels_carry_cep16_shards_that_rattler_reads(forge, upstream, tmp_path):
    """CEP 16: beside repodata.json, a shard per package name (content-named, immutable) and the
    index of names to shards, from the same records; py-rattler's gateway reads the channel by them."""
    import msgpack
    import zstandard

    _, channel, _ = forge
    app = _app(tmp_path, channel)
    store = tmp_path / "s"
    run_mirror("sync", str(app), "--store", str(store), "--python", "3.11", "--platform", X86,
               "--index-url", upstream.url + "/simple", "--installers", "")
    run_mirror("publish", "--store", str(store))
    subdir = (store / "published" / "current").resolve() / "conda" / "fixture-forge" / "linux-64"
    repodata = json.loads((subdir / "repodata.json").read_text())
    index = msgpack.unpackb(zstandard.decompress((subdir / "repodata_shards.msgpack.zst").read_bytes()))
    assert index["info"]["shards_base_url"] == "./shards/"
    records = {**repodata["packages"], **repodata["packages.conda"]}
    assert set(index["shards"]) == {r["name"] for r in records.values()}
    for name, digest in index["shards"].items():
        body = (subdir / "shards" / f"{digest.hex()}.msgpack.zst").read_bytes()
        assert hashlib.sha256(body).digest() == digest  # content-named
        shard = msgpack.unpackb(zstandard.decompress(body))
        for key in ("packages", "packages.conda"):
            for fn, rec in shard[key].items():
                want = repodata[key][fn]
                assert rec["sha256"] == bytes.fromhex(want["sha256"]) and rec["depends"] == want["depends"]
                assert rec["name"] == name

    log = tmp_path / "access.log"
    served = Served(store, "--access-log", str(log))
    try:
        got = _install(served.base + "/conda/fixture-forge", "linux-64", "2.28", tmp_path / "env")
        assert got == ["data-1.0", "libz-1.2", "pip-24.0", "python-3.11.7", "tool-2.0"]
        shard_head = served.base + "/conda/fixture-forge/linux-64/shards/" + next(iter(index["shards"].values())).hex()
        with urllib.request.urlopen(shard_head + ".msgpack.zst") as resp:
            assert "immutable" in resp.headers["Cache-Control"]
    finally:
        served.stop()
    asked = log.read_text()
    assert "/linux-64/repodata_shards.msgpack.zst" in asked and "/linux-64/shards/" in asked, asked
    assert "/linux-64/repodata.json" not in asked  # read by its shards alone
