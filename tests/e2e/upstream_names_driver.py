"""Run by tests/e2e/test_upstream_names.py inside a network and mount namespace of its own (unshare),
whose /etc/hosts points pypi.org and files.pythonhosted.org at 127.0.0.1: outside the gap, an
upstream under those names (a throwaway CA's certificate) serves tiny real wheels in PyPI's layout,
the real uv and pip lock apps against it, and `mirror sync` / `publish` mirror them; inside, the
upstream is gone and `mirror serve` answers under the same names: the apps install with their own
tools and their locks unchanged. Prints one JSON line of what it saw; exits non-zero on failure."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from mirror.resolve import uv_binary
from tests.builders.tls import ca_and_cert

NAMES = ("pypi.org", "files.pythonhosted.org")


def upstream_tree(files: Path, root: Path) -> None:
    """PyPI's layout: /simple/PROJECT/ pages whose links are files.pythonhosted.org/packages/... URLs."""
    by_project: dict[str, list[str]] = {}
    for f in sorted(files.glob("*.whl")):
        sha = hashlib.sha256(f.read_bytes()).hexdigest()
        rel = f"packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{f.name}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, root / rel)
        by_project.setdefault(canonicalize_name(parse_wheel_filename(f.name)[0]), []).append(
            f'<a href="https://files.pythonhosted.org/{rel}#sha256={sha}">{f.name}</a><br>')
    for project, links in by_project.items():
        (root / "simple" / project).mkdir(parents=True, exist_ok=True)
        (root / "simple" / project / "index.html").write_text("<!DOCTYPE html><html><body>" + "".join(links) + "</body></html>")


def serve_tls(directory: Path, cert: Path, key: Path) -> http.server.ThreadingHTTPServer:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(directory))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 443), handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def main() -> None:
    work, files, pip_python = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    (work / "hosts").write_text("127.0.0.1 localhost " + " ".join(NAMES) + "\n")
    subprocess.run(["mount", "--bind", str(work / "hosts"), "/etc/hosts"], check=True)
    ca, cert, key = ca_and_cert(work / "tls", NAMES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV", "SSL_CERT"))}
    env.update(SSL_CERT_FILE=str(ca), PIP_CERT=str(ca), PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1",
               UV_PYTHON_DOWNLOADS="never", UV_PYTHON=sys.executable, PIP_DISABLE_PIP_VERSION_CHECK="1",
               UV_CACHE_DIR=str(work / "uv-cache"))
    mirror = [sys.executable, "-m", "mirror.cli"]

    # Outside the gap: the upstream under its own names; the apps lock against it with their tools.
    upstream_tree(files, work / "upstream")
    upstream = serve_tls(work / "upstream", cert, key)
    uvapp = work / "apps" / "uvapp"
    uvapp.mkdir(parents=True)
    (uvapp / "pyproject.toml").write_text('[project]\nname = "uvapp"\nversion = "0.1"\nrequires-python = ">=3.10"\n'
                                          'dependencies = ["alpha==1.0"]\n[tool.uv]\npackage = false\n')
    run([uv_binary(), "lock", "-q"], env, cwd=uvapp)  # pypi.org: uv's default index
    pipapp = work / "apps" / "pipapp"
    pipapp.mkdir(parents=True)
    run([pip_python, "-m", "pip", "lock", "--isolated", "--cert", str(ca), "alpha==1.0", "-o", str(pipapp / "pylock.toml")],
        env)
    locks = {p: p.read_bytes() for p in (uvapp / "uv.lock", pipapp / "pylock.toml")}
    assert b"https://pypi.org/simple" in locks[uvapp / "uv.lock"]
    assert b"https://files.pythonhosted.org/packages/" in locks[uvapp / "uv.lock"]
    assert b"https://files.pythonhosted.org/packages/" in locks[pipapp / "pylock.toml"]
    store = work / "store"
    sync = json.loads(run([*mirror, "sync", str(uvapp), str(pipapp), "--store", str(store), "--python", "3.11",
                           "--installers", "", "--json"], env))  # the default upstream: https://pypi.org/simple
    assert sync["ok"], sync
    run([*mirror, "publish", "--store", str(store)], env)
    upstream.shutdown()
    upstream.server_close()

    # Inside: the mirror answers under the upstream's names; the apps' files are as they were.
    serve = subprocess.Popen([*mirror, "serve", "--store", str(store), "--host", "127.0.0.1", "--port", "443",
                              "--tls-cert", str(cert), "--tls-key", str(key)], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        line = serve.stdout.readline()  # type: ignore[union-attr]
        assert "serving" in line, line + serve.stderr.read()  # type: ignore[union-attr]
        inside = work / "inside"
        shutil.copytree(work / "apps", inside)
        run([uv_binary(), "sync", "--locked", "--no-default-groups"], env, cwd=inside / "uvapp")
        uv_installed = run([uv_binary(), "pip", "list", "--format", "json", "--python",
                            str(inside / "uvapp" / ".venv" / "bin" / "python")], env, cwd=inside / "uvapp")
        venv = inside / "pipapp" / "venv"
        run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env)
        run([pip_python, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--isolated", "--cert", str(ca),
             "-r", str(inside / "pipapp" / "pylock.toml")], env)
        pip_installed = run([pip_python, "-m", "pip", "--python", str(venv / "bin" / "python"), "list", "--format", "json"], env)
        unchanged = all((inside / p.relative_to(work / "apps")).read_bytes() == data for p, data in locks.items())
    finally:
        serve.terminate()
        serve.wait(timeout=10)
    print(json.dumps({"uv": {p["name"]: p["version"] for p in json.loads(uv_installed)},
                      "pip": {p["name"]: p["version"] for p in json.loads(pip_installed)},
                      "locks_unchanged": unchanged}))


if __name__ == "__main__":
    main()
