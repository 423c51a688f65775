"""Hostile and careless app folders: no secret printed, no app stops the others, no crafted byte hangs
the sync. Every bad app fails with its own file:line error; a good app beside it syncs."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.builders import make_sdist, write_simple_index
from tests.builders.upstreams import X86, AuthServer, build_private_files, clean_env

SPECIAL_USER = "bot"
SPECIAL_PASSWORD = "Sp3c/ial@Pa#ss:wd"
OTHER_TOKEN = "tok-other-app-91b7c4e2"  # another app's secret, in the sync's environment


def _sync(tmp_path: Path, apps: list[Path], upstream, *extra: str, env: dict[str, str] | None = None,
          timeout: float = 120, store: str | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airgap_mirror.cli", "sync", *map(str, apps), "--store", store or str(tmp_path / "store"),
         "--python", "3.11", "--platform", X86, "--index-url", upstream.url + "/simple", "--installers", "", "--json",
         *extra], capture_output=True, text=True, env=clean_env(**(env or {})), timeout=timeout, cwd=cwd)


def _app(root: Path, name: str, files: dict[str, bytes | str]) -> Path:
    app = root / "apps" / name
    app.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_bytes(data.encode() if isinstance(data, str) else data)
    return app


def _results(proc: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return {a["name"]: a for a in json.loads(proc.stdout)["apps"]}


def test_a_password_with_url_special_characters_works_and_is_never_printed(tmp_path, upstream):
    root = tmp_path / "private"
    build_private_files(root / "files")
    write_simple_index(root / "files", root / "simple")
    server = AuthServer(root, SPECIAL_USER, SPECIAL_PASSWORD)
    env = {"U": SPECIAL_USER, "P": SPECIAL_PASSWORD, "OTHER": OTHER_TOKEN}
    try:
        good = _app(tmp_path, "priv", {"requirements.txt": f"--extra-index-url http://${{U}}:${{P}}@127.0.0.1:"
                                                            f"{server.url.rsplit(':', 1)[1]}/simple\nprivpkg==1.0\n"})
        proc = _sync(tmp_path, [good], upstream, env=env)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert _results(proc)["priv"]["ok"] and any(server.seen_auth)
    finally:
        server.stop()
    # The same index down: the error says so without the password, raw or encoded.
    proc = _sync(tmp_path, [good], upstream, "--refresh", env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1 and not _results(proc)["priv"]["ok"]
    for secret in (SPECIAL_PASSWORD, "Sp3c%2Fial", "ial@Pa", OTHER_TOKEN):
        assert secret not in out


@pytest.mark.parametrize("target", ["/proc/self/environ", "/etc/shadow", "../outside.txt", "link.txt"])
def test_an_include_outside_the_app_folder_is_refused_unread(tmp_path, upstream, target):
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "outside.txt").write_text(f"{OTHER_TOKEN}\n")
    bad = _app(tmp_path, "bad", {"requirements.txt": f"alpha==1.0\n-r {target}\n"})
    (bad / "link.txt").symlink_to(tmp_path / "apps" / "outside.txt")
    ok = _app(tmp_path, "ok", {"requirements.txt": "alpha==1.0\n"})
    proc = _sync(tmp_path, [bad, ok], upstream, env={"OTHER": OTHER_TOKEN})
    res = _results(proc)
    assert proc.returncode == 1 and res["ok"]["ok"] and not res["bad"]["ok"]
    assert f"{bad / 'requirements.txt'}:2" in res["bad"]["error"] and "outside the app folder" in res["bad"]["error"]
    assert "--allow-outside-app" in res["bad"]["error"]
    out = proc.stdout + proc.stderr
    assert OTHER_TOKEN not in out and "root:" not in out


def test_allowed_outside_files_are_read_but_never_quoted(tmp_path, upstream):
    (tmp_path / "shared.txt").write_text(f"alpha==1.0\n{OTHER_TOKEN} = 3\n")
    bad = _app(tmp_path, "bad", {"requirements.txt": f"-r {tmp_path / 'shared.txt'}\n"})
    proc = _sync(tmp_path, [bad], upstream, "--allow-outside-app")
    res = _results(proc)
    assert not res["bad"]["ok"] and f"{tmp_path / 'shared.txt'}:2" in res["bad"]["error"]
    assert OTHER_TOKEN not in proc.stdout + proc.stderr
    (tmp_path / "shared.txt").write_text("alpha==1.0\n")
    assert _results(_sync(tmp_path, [bad], upstream, "--allow-outside-app"))["bad"]["ok"]


def _chain(n: int) -> dict[str, str]:
    files = {f"r{i}.txt": f"-r r{i + 1}.txt\n" for i in range(n)}
    files[f"r{n}.txt"] = "alpha==1.0\n"
    files["requirements.txt"] = "-r r0.txt\n"
    return files


def _alias_bomb() -> str:
    """Nine levels of nine aliases each of the level below: 9**10 strings once expanded."""
    lines = ["dependencies:", "  - pip", "  - pip: &l0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"  - l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


CRASHERS = {
    "nul-include": ({"requirements.txt": b"-r \x00\n"}, "requirements.txt:1"),
    "utf16-odd": ({"requirements.txt": b"\xff\xfea\x00\x00\xd8"}, "requirements.txt"),
    "deep-chain": (_chain(1500), ".txt:1"),
    "bad-ipv6-index": ({"requirements.txt": "--index-url http://[::1\nalpha\n"}, "requirements.txt:1"),
    "bad-port": ({"requirements.txt": "--extra-index-url http://h:99999999/simple\nalpha\n"}, "requirements.txt:1"),
    "bad-ipv6-direct": ({"requirements.txt": "alpha @ http://[::1/a-1.0-py3-none-any.whl\n"}, "requirements.txt:1"),
    "apt-repo-ipv6": ({"Aptfile": ":repo: deb http://[::1 s main\n"}, "Aptfile:1"),
    "apt-deb-ipv6": ({"Aptfile": "http://[::1/a.deb\n"}, "Aptfile:1"),
    "apt-utf16-odd": ({"Aptfile": b"\xff\xfea\x00\x00\xd8"}, "Aptfile"),
    "apt-nul": ({"Aptfile": b"curl\x00\n"}, "Aptfile:1"),
    # 465 bytes of nested YAML aliases grew past 3 GB: aliases are refused, naming their line.
    "yaml-alias-bomb": ({"environment.yml": _alias_bomb()}, "environment.yml:4: a YAML alias"),
    # 150,000 names kept the whole sync busy past 100 s: one app names at most 5,000.
    "150000-names": ({"requirements.txt": "".join(f"pkg{i}==1.0\n" for i in range(150_000))},
                     "requirements.txt:5001: 150,000 requirements: over the 5,000"),
}


@pytest.mark.parametrize("name", sorted(CRASHERS))
def test_a_crafted_file_fails_only_its_app(tmp_path, upstream, name):
    files, where = CRASHERS[name]
    bad = _app(tmp_path, "bad", files)
    ok = _app(tmp_path, "ok", {"requirements.txt": "alpha==1.0\n"})
    proc = _sync(tmp_path, [bad, ok], upstream, "--distro", "fixture-none")
    res = _results(proc)
    assert res["ok"]["ok"], res["ok"]
    assert not res["bad"]["ok"] and where in res["bad"]["error"], res["bad"]["error"]
    snap = json.loads(proc.stdout)["snapshot"]
    assert snap is not None


def test_relative_store_and_app_paths(tmp_path, upstream):
    """The default store is relative (./mirror-store) and apps are named relative to where the
    admin stands: a local sdist gets its wheel built and everything lands in the store."""
    make_sdist(tmp_path / "apps" / "local" / "packages", "localpkg", "1.0")
    _app(tmp_path, "local", {"requirements.txt": "./packages/localpkg-1.0.tar.gz\nalpha==1.0\n"})
    proc = _sync(tmp_path, [Path("apps/local")], upstream, store="mirror-store", cwd=tmp_path)
    res = _results(proc)
    assert res["local"]["ok"], res
    snap = json.loads((tmp_path / "mirror-store" / "store-v1" / "snapshots" / f"{json.loads(proc.stdout)['snapshot']}.json").read_text())
    names = {f["filename"] for f in snap["python"]["files"].values()}
    assert "localpkg-1.0-py3-none-any.whl" in names  # built from the app's sdist


def test_files_that_would_hang_the_sync_are_refused_at_once(tmp_path, upstream):
    spaces = _app(tmp_path, "spaces", {"requirements.txt": "alpha" + " " * 1_000_000 + "x\n"})
    spaces_ok = _app(tmp_path, "spacesok", {"requirements.txt": "alpha==1.0" + " " * 60_000 + "# why\n"})
    zero = _app(tmp_path, "zero", {"requirements.txt": "/dev/zero\n"})
    fifo = _app(tmp_path, "fifo", {"requirements.txt": "packages/x-1.0-py3-none-any.whl\n"})
    (fifo / "packages").mkdir()
    os.mkfifo(fifo / "packages" / "x-1.0-py3-none-any.whl")
    fifo_req = _app(tmp_path, "fiforeq", {})
    os.mkfifo(fifo_req / "requirements.txt")
    ok = _app(tmp_path, "ok", {"requirements.txt": "alpha==1.0\n"})
    started = time.monotonic()
    proc = _sync(tmp_path, [spaces, spaces_ok, zero, fifo, fifo_req, ok], upstream, timeout=120)
    assert time.monotonic() - started < 60
    res = _results(proc)
    assert res["ok"]["ok"] and res["spacesok"]["ok"]
    assert "requirements.txt:1" in res["spaces"]["error"]
    assert "outside the app folder" in res["zero"]["error"]
    assert "FIFO" in res["fifo"]["error"] and "requirements.txt:1" in res["fifo"]["error"]
    assert "FIFO" in res["fiforeq"]["error"]


def _noise(rng: random.Random) -> bytes:
    pieces = [
        b"alpha==1.0", b"-r ", b"-c ", b"--index-url ", b"--extra-index-url http://", b"${SECRET}", b"${lower}",
        b"git+https://", b"@", b"#", b" ; python_version < '3'", b"[extra]", b"\\\n", b"\n", b"\r\n", b"\x00",
        b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf", b"http://[::1", b":99999", b"../", b"/dev/zero", b"/proc/self/environ",
        b"file:///etc/passwd", b" " * rng.randint(1, 5000), b"=" * rng.randint(1, 50), b"\xd8\x00", b"\xc3\x28",
        b"packages/x.whl", b"-e .", b"--hash=sha256:", b"name @ ", b"::", b"%", b"\t", "é€😀".encode(),
    ]
    return b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 40)))


def _apt_noise(rng: random.Random) -> bytes:
    pieces = [b"curl", b" ", b"\n", b":repo:", b"deb ", b"http://[::1", b"https://h/x.deb", b"[trusted=yes] ",
              b"[signed-by=/etc/shadow] ", b"#", b"\x00", b"\xff\xfe", b"pkg=1.0", b"pkg:amd64", b"sudo apt-get install",
              b" " * rng.randint(1, 3000), b"deb-src", b"ppa:x/y", b"\xd8\x00", b"|", b"(>= 1)"]
    return b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 30)))


def test_fuzzed_apps_each_sync_or_fail_on_their_own(tmp_path, upstream):
    """Generated requirements files and Aptfiles (encodings, includes, cycles, special paths, secrets)
    across 40 apps in one sync: each app syncs or has its own error, no traceback, no hang, the good
    app's entry intact, no secret in any output."""
    rng = random.Random(20261201)
    apps = []
    for i in range(40):
        files: dict[str, bytes | str] = {"requirements.txt": _noise(rng)}
        if rng.random() < 0.3:
            files["inc.txt"] = _noise(rng) + b"\n-r requirements.txt\n"  # cycles back
            files["requirements.txt"] = b"-r inc.txt\n" + files["requirements.txt"]  # type: ignore[operator]
        if rng.random() < 0.4:
            files["Aptfile"] = _apt_noise(rng)
        apps.append(_app(tmp_path, f"fz{i:02d}", files))
    ok = _app(tmp_path, "ok", {"requirements.txt": "alpha==1.0\n"})
    secret = "fuzz-secret-4c1d9e77"
    started = time.monotonic()
    proc = _sync(tmp_path, [*apps, ok], upstream, "--distro", "fixture-none", env={"SECRET": secret}, timeout=600)
    assert time.monotonic() - started < 300
    res = _results(proc)
    assert res["ok"]["ok"] and len(res) == len(apps) + 1
    for name, r in res.items():
        assert r["ok"] or (r["error"] and f"apps/{name}/" in r["error"] or "fixture-none" in (r["error"] or "")), (name, r)
        assert "bug in airgap-mirror" not in (r["error"] or ""), (name, r["error"])
    assert secret not in proc.stdout + proc.stderr
    snap = json.loads((tmp_path / "store" / "store-v1" / "snapshots" / f"{json.loads(proc.stdout)['snapshot']}.json").read_text())
    assert snap["apps"]["ok"]["targets"][f"cp311-{X86}"]["packages"][0] == ["alpha", "1.0"]
