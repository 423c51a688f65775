"""Exactly the indexes apt reads, and one bad suite never takes the others down: a security suite
shaped like Debian's (its Release lists no `all` architecture, yet names a binary-all index that
does not match it) is read as apt reads it, and a suite whose index is bad is left out with a warning."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

from tests.builders.cli import run_mirror
from tests.builders.debs import GpgKey, make_deb, sign_release, write_archive
from tests.builders.upstreams import StaticServer


@pytest.fixture
def archive(tmp_path: Path):
    key = GpgKey.create(tmp_path / "gnupg")
    debs = tmp_path / "debs"
    root = tmp_path / "archive"
    main = []
    for arch in ("amd64", "arm64"):
        main += [make_deb(debs, "base-req", "1.0", arch, priority="required", essential="yes"),
                 make_deb(debs, "libfoo", "1.0", arch), make_deb(debs, "app-tool", "1.0", arch, depends="libfoo (>= 1.0), data-all")]
    main.append(make_deb(debs, "data-all", "1.0", "all"))
    write_archive(root, "fixture", main, key)
    write_archive(root, "fixture-updates", [make_deb(debs, "libfoo", "1.2", a) for a in ("amd64", "arm64")], key)
    security = write_archive(root, "fixture-security", [make_deb(debs, "libfoo", "1.3", a) for a in ("amd64", "arm64")], key)
    # As Debian's security suite: a binary-all index in the signed list, `all` absent from
    # Architectures, and the file served not the one listed.
    stray = security / "main" / "binary-all"
    stray.mkdir()
    (stray / "Packages").write_bytes(b"")
    (stray / "Packages.xz").write_bytes(lzma.compress(b""))
    sign_release(security, "fixture-security", key, "amd64 arm64")
    (stray / "Packages.xz").write_bytes(lzma.compress(b"Package: stale\n"))
    (stray / "Packages").write_bytes(b"Package: stale\n")
    server = StaticServer(root)
    yield {"root": root, "key": key, "ring": key.export(tmp_path / "ring.gpg"), "url": server.url, "debs": debs}
    server.stop()
    key.stop()


def _config(tmp_path: Path, archive: dict) -> str:
    app = tmp_path / "apps" / "a"
    app.mkdir(parents=True, exist_ok=True)
    (app / "Aptfile").write_text("app-tool\n")
    (tmp_path / "mirror.toml").write_text(
        '[store]\npath = "store"\n[apps]\npaths = ["apps/*"]\n[apt]\ndistros = ["fixture"]\narchitectures = ["amd64", "arm64"]\n'
        f'[[apt.sources]]\nurl = "{archive["url"]}"\nsuites = ["{{distro}}", "{{distro}}-updates", "{{distro}}-security"]\n'
        f'components = ["main"]\nkeyrings = ["{archive["ring"]}"]\n')
    return str(tmp_path / "mirror.toml")


def _packages(tmp_path: Path, summary: dict, target: str) -> dict[str, str]:
    snap = json.loads((tmp_path / "store" / "store-v1" / "snapshots" / f"{summary['snapshot']}.json").read_text())
    return {n: v for n, v, _ in snap["apps"]["a"]["apt"][target]["packages"]}


def test_a_security_suite_shaped_like_debians_syncs(archive, tmp_path):
    config = _config(tmp_path, archive)
    summary = json.loads(run_mirror("sync", "--config", config, "--installers", "", "--json").stdout)
    assert summary["ok"] and not summary["warnings"], summary
    for target in ("fixture-amd64", "fixture-arm64"):
        # the security suite's version: its arch indexes were read, its stray binary-all was not
        assert _packages(tmp_path, summary, target) == {"app-tool": "1.0", "libfoo": "1.3", "data-all": "1.0"}


def test_a_suite_whose_index_is_bad_is_left_out_and_the_rest_syncs(archive, tmp_path):
    packages = archive["root"] / "dists" / "fixture-security" / "main" / "binary-amd64" / "Packages"
    for p in packages.parent.glob("Packages*"):
        p.write_bytes(p.read_bytes()[:-3] + b"xyz")  # not what the signed Release says
    config = _config(tmp_path, archive)
    proc = run_mirror("sync", "--config", config, "--installers", "", "--json", check=False)
    summary = json.loads(proc.stdout)
    assert proc.returncode == 0 and summary["ok"], summary
    assert _packages(tmp_path, summary, "fixture-amd64")["libfoo"] == "1.2"   # from updates: security left out
    assert _packages(tmp_path, summary, "fixture-arm64")["libfoo"] == "1.3"   # the other target read it whole
    warning = next(w for w in summary["warnings"] if "fixture-amd64" in w)
    assert "fixture-security" in warning and "binary-amd64/Packages" in warning and "left out" in warning
    assert not any("fixture-arm64" in w for w in summary["warnings"])


def test_a_suite_left_out_never_replaces_a_closure_already_mirrored(archive, tmp_path):
    config = _config(tmp_path, archive)
    first = json.loads(run_mirror("sync", "--config", config, "--installers", "", "--json").stdout)
    release = archive["root"] / "dists" / "fixture-security" / "InRelease"
    release.write_text(release.read_text().replace("Suite: fixture-security", "Suite: fixture-securitz"))  # BADSIG
    proc = run_mirror("sync", "--config", config, "--installers", "", "--json", "--refresh", check=False)
    second = json.loads(proc.stdout)
    assert proc.returncode == 0 and second["ok"], second
    assert second["snapshot"] == first["snapshot"]          # libfoo 1.3 kept, not 1.2 from the suites left
    assert any("fixture-security" in w and "previous closure" in w for w in second["warnings"])
