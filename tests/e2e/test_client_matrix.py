"""The client matrix, offline: every pip line sites still run, the pip each CPython 3.8-3.13 bundles, and
uv (current and one older minor) install one app from our index alone, through `mirror serve` and
through nginx with scripts/nginx.conf: wheels, an sdist built inside with only our index, extras,
markers, and `--require-hashes` from the published lock. Each client is named in the test id."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.builders import clients, make_wheel, write_simple_index
from tests.builders.cli import Served, run_mirror
from tests.builders.upstreams import X86, StaticServer, build_upstream_files, clean_env

MATRIX = clients.matrix()
PYTHONS = sorted({c.python_version for c in MATRIX if c.python}, key=lambda v: tuple(map(int, v.split("."))))
REQUIREMENTS = """\
alpha==1.0                 # a wheel, and beta through its dependency
gamma==1.0                 # platform wheels for some targets, the sdist for the others
delta==1.0                 # an sdist whose build needs buildhelper, itself an sdist
toppings[fast]==1.0        # an extra
oldpy==1.0 ; python_version < "3.10"
darwinonly==1.0 ; sys_platform == "darwin"
"""
CHECK = """\
import json, sys, alpha, beta, gamma, delta, toppings
try:
    import oldpy
except ImportError:
    oldpy = None
try:
    import darwinonly
except ImportError:
    darwinonly = None
print(json.dumps({"beta": beta.__version__, "delta": delta.BUILT_FROM, "oldpy": oldpy is not None,
                  "darwinonly": darwinonly is not None}))
"""


@pytest.fixture(scope="module")
def matrix_mirror(tmp_path_factory):
    from tests.builders.nginx import Nginx

    work = tmp_path_factory.mktemp("matrix")
    files = work / "upstream" / "files"
    build_upstream_files(files)
    make_wheel(files, "toppings", "1.0", requires=['beta>=2.0 ; extra == "fast"'])
    make_wheel(files, "oldpy", "1.0")
    write_simple_index(files, work / "upstream" / "simple")
    upstream = StaticServer(work / "upstream")
    app = work / "apps" / "matrix"
    app.mkdir(parents=True)
    (app / "requirements.txt").write_text(REQUIREMENTS)
    store = work / "store"
    args = ["sync", str(app), "--store", str(store), "--platform", X86, "--installers", "",
            "--index-url", upstream.url + "/simple", "--json"]
    for v in PYTHONS:
        args += ["--python", v]
    summary = json.loads(run_mirror(*args).stdout)
    assert summary["ok"], summary
    upstream.stop()  # from here on, our index alone
    run_mirror("publish", "--store", str(store))
    served = Served(store)
    # Published again now that the served URL is known: the pylock.toml files point at it.
    run_mirror("publish", "--store", str(store), "--base-url", served.base)
    ngx = Nginx(store / "published", work / "nginx")
    yield {"app": app, "served": served, "nginx": ngx}
    ngx.stop()
    served.stop()


def _target(client: clients.Client) -> str:
    return f"cp{client.python_version.replace('.', '')}-{X86}"


def _install(client: clients.Client, tmp_path: Path, index: str, *args: str) -> dict:
    venv = tmp_path / "venv"
    subprocess.run([client.python, "-m", "venv", "--without-pip", str(venv)], check=True, env=clean_env())
    py = str(venv / "bin" / "python")
    if client.kind == "pip":
        # The pip under test runs from its wheel, as get-pip does, and installs into the venv's Python.
        cmd = [py, f"{client.wheel}/pip", "install", "--isolated", "--no-cache-dir", "--index-url", index, *args]
    else:
        cmd = [str(clients.uv_exe(client, tmp_path)), "pip", "install", "--no-config", "--python", py,
               "--cache-dir", str(tmp_path / "uv-cache"), "--index-url", index, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=600)
    assert proc.returncode == 0, f"{client.id}: {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}"
    out = subprocess.run([py, "-c", CHECK], capture_output=True, text=True, env=clean_env())
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _expect(client: clients.Client, got: dict) -> None:
    assert got["beta"] == "2.0"          # the extra's requirement (beta>=2.0) was honoured
    assert got["delta"] == "sdist"       # built inside, its build requirement from our index only
    assert got["darwinonly"] is False
    assert got["oldpy"] is (tuple(map(int, client.python_version.split("."))) < (3, 10))


@pytest.mark.parametrize("client", MATRIX, ids=[c.id for c in MATRIX])
def test_client_installs_requirements_from_mirror_serve(matrix_mirror, client, tmp_path):
    if client.why_missing:
        pytest.skip(client.why_missing)
    got = _install(client, tmp_path, matrix_mirror["served"].simple, "-r", str(matrix_mirror["app"] / "requirements.txt"))
    _expect(client, got)


@pytest.mark.parametrize("client", MATRIX, ids=[c.id for c in MATRIX])
def test_client_installs_the_hashed_lock_from_nginx(matrix_mirror, client, tmp_path):
    if client.why_missing:
        pytest.skip(client.why_missing)
    lock = tmp_path / "requirements.lock"
    with urllib.request.urlopen(f"{matrix_mirror['served'].base}/locks/matrix/{_target(client)}/requirements.lock") as r:
        lock.write_bytes(r.read())
    got = _install(client, tmp_path, matrix_mirror["nginx"].simple, "--require-hashes", "-r", str(lock))
    _expect(client, got)


PYLOCK_CLIENTS = [c for c in MATRIX if c.kind == "uv" or (c.kind == "pip" and c.python_version == clients.HOST
                                                       and tuple(map(int, c.version.split(".")[:2])) >= (26, 1))]


@pytest.mark.parametrize("client", PYLOCK_CLIENTS, ids=[c.id for c in PYLOCK_CLIENTS])
def test_client_installs_the_published_pylock(matrix_mirror, client, tmp_path):
    """The published pylock.toml names our files (hashes unchanged): pip >= 26.1 reads it from the
    mirror's URL, uv from a copy on disk; only our index is reachable."""
    if client.why_missing:
        pytest.skip(client.why_missing)
    url = f"{matrix_mirror['served'].base}/locks/matrix/{_target(client)}/pylock.toml"
    with urllib.request.urlopen(url) as r:
        text = r.read().decode()
    urls = re.findall(r'url = "([^"]+)"', text)
    assert urls and all(u.startswith(matrix_mirror["served"].base + "/packages/") for u in urls), urls
    source = url
    if client.kind == "uv":
        source = str(tmp_path / "pylock.toml")
        Path(source).write_text(text)
    got = _install(client, tmp_path, matrix_mirror["served"].simple, "-r", source)
    _expect(client, got)
