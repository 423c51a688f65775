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
import shlex
import shutil
import ssl
import subprocess
import sys
import threading
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from airgap_mirror.publish.lockview import lock_command
from airgap_mirror.resolve import uv_binary
from tests.builders.tls import ca_and_cert

NAMES = ("pypi.org", "files.pythonhosted.org")


def upstream_tree(files: Path, root: Path) -> None:
    """PyPI's layout: /simple/PROJECT/ pages (HTML, and PEP 691 JSON) whose links are
    files.pythonhosted.org/packages/... URLs, and the JSON API (/pypi/PROJECT/VERSION/json) Poetry reads."""
    import email.parser
    import zipfile

    by_project: dict[str, list[tuple[str, str, str]]] = {}
    releases: dict[tuple[str, str], dict] = {}
    for f in sorted(files.glob("*.whl")):
        sha = hashlib.sha256(f.read_bytes()).hexdigest()
        rel = f"packages/{sha[:2]}/{sha[2:4]}/{sha[4:]}/{f.name}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, root / rel)
        name, version, *_ = parse_wheel_filename(f.name)
        project = canonicalize_name(name)
        url = f"https://files.pythonhosted.org/{rel}"
        by_project.setdefault(project, []).append((f.name, url, sha))
        with zipfile.ZipFile(f) as zf:
            meta = email.parser.BytesHeaderParser().parsebytes(zf.read(next(n for n in zf.namelist() if n.endswith("METADATA"))))
        doc = releases.setdefault((project, str(version)), {"info": {"name": project, "version": str(version), "summary": "",
                                                                     "requires_dist": meta.get_all("Requires-Dist") or None,
                                                                     "requires_python": None, "yanked": False}, "urls": []})
        doc["urls"].append({"filename": f.name, "url": url, "digests": {"sha256": sha}, "packagetype": "bdist_wheel"})
    for project, links in by_project.items():
        (root / "simple" / project).mkdir(parents=True, exist_ok=True)
        (root / "simple" / project / "index.html").write_text("<!DOCTYPE html><html><body>" + "".join(
            f'<a href="{u}#sha256={h}">{n}</a><br>' for n, u, h in links) + "</body></html>")
        (root / "simple" / project / "index.json").write_text(json.dumps({
            "meta": {"api-version": "1.1"}, "name": project,
            "versions": sorted({str(parse_wheel_filename(n)[1]) for n, _, _ in links}),
            "files": [{"filename": n, "url": u, "hashes": {"sha256": h}} for n, u, h in links]}))
    for (project, version), doc in releases.items():
        (root / "pypi" / project / version).mkdir(parents=True, exist_ok=True)
        (root / "pypi" / project / version / "json").write_text(json.dumps(doc))


class _Upstream(http.server.SimpleHTTPRequestHandler):
    """PyPI as clients see it: a project page in JSON to a client that asks for it (PEP 691)."""

    def send_head(self):  # type: ignore[no-untyped-def]
        if self.path.startswith("/simple/") and "json" in (self.headers.get("Accept") or ""):
            self.path = self.path.rstrip("/") + "/index.json"
        return super().send_head()

    def guess_type(self, path):  # type: ignore[no-untyped-def]
        if str(path).endswith(("index.json", "/json")):
            return "application/vnd.pypi.simple.v1+json" if "/simple/" in str(path) else "application/json"
        return super().guess_type(path)

    def log_message(self, *args):  # type: ignore[no-untyped-def]
        pass


def serve_tls(directory: Path, cert: Path, key: Path) -> http.server.ThreadingHTTPServer:
    handler = lambda *a: _Upstream(*a, directory=str(directory))  # noqa: E731
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
    work, files, pip_python, tools = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    (work / "hosts").write_text("127.0.0.1 localhost " + " ".join(NAMES) + "\n")
    subprocess.run(["mount", "--bind", str(work / "hosts"), "/etc/hosts"], check=True)
    ca, cert, key = ca_and_cert(work / "tls", NAMES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV", "SSL_CERT"))}
    env.update(SSL_CERT_FILE=str(ca), PIP_CERT=str(ca), PIP_CONFIG_FILE=os.devnull, UV_NO_CONFIG="1",
               UV_PYTHON_DOWNLOADS="never", UV_PYTHON=sys.executable, PIP_DISABLE_PIP_VERSION_CHECK="1",
               UV_CACHE_DIR=str(work / "uv-cache"), REQUESTS_CA_BUNDLE=str(ca), HOME=str(work / "home"),
               POETRY_CACHE_DIR=str(work / "poetry-cache"), POETRY_VIRTUALENVS_IN_PROJECT="true",
               POETRY_NO_INTERACTION="1", PIPENV_VENV_IN_PROJECT="1", PIPENV_NOSPIN="1", PIPENV_YES="1",
               PIPENV_CACHE_DIR=str(work / "pipenv-cache"), PIPENV_IGNORE_VIRTUALENVS="1", PIPENV_VERBOSITY="-1")
    env["PATH"] = f"{tools / 'bin'}:{env.get('PATH', '')}"
    mirror = [sys.executable, "-m", "airgap_mirror.cli"]

    # Outside the gap: the upstream under its own names; the apps lock against it with their tools.
    # (with the real `wheel`, which setuptools < 70.1 asks for to build the packaged uvapp)
    everything = work / "files"
    shutil.copytree(files, everything)
    for whl in (Path(__file__).resolve().parents[2] / ".cache" / "clients").glob("wheel-*.whl"):
        shutil.copy(whl, everything / whl.name)
    upstream_tree(everything, work / "upstream")
    upstream = serve_tls(work / "upstream", cert, key)
    uvapp = work / "apps" / "uvapp"
    uvapp.mkdir(parents=True)
    (uvapp / "pyproject.toml").write_text('[project]\nname = "uvapp"\nversion = "0.1"\nrequires-python = ">=3.10"\n'
                                          'dependencies = ["alpha==1.0"]\n[dependency-groups]\nworker = ["darwinonly==1.0"]\n'
                                          # a packaged project: uv sync builds it, with setuptools from the mirror
                                          '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
                                          '[tool.setuptools]\npy-modules = ["uvapp"]\n')
    (uvapp / "uvapp.py").write_text("BUILT = True\n")
    run([uv_binary(), "lock", "-q"], env, cwd=uvapp)  # pypi.org: uv's default index
    pipapp = work / "apps" / "pipapp"
    pipapp.mkdir(parents=True)
    run([pip_python, "-m", "pip", "lock", "--isolated", "--cert", str(ca), "alpha==1.0", "-o", str(pipapp / "pylock.toml")],
        env)
    poetryapp = work / "apps" / "poetryapp"
    poetryapp.mkdir(parents=True)
    (poetryapp / "pyproject.toml").write_text('[project]\nname = "poetryapp"\nversion = "0.1"\nrequires-python = ">=3.10"\n'
                                              'dependencies = ["alpha==1.0"]\n[tool.poetry]\npackage-mode = false\n'
                                              '[tool.poetry.group.worker.dependencies]\narmonly = "1.0"\n')
    run([str(tools / "bin" / "poetry"), "lock"], env, cwd=poetryapp)
    pipenvapp = work / "apps" / "pipenvapp"
    pipenvapp.mkdir(parents=True)
    (pipenvapp / "Pipfile").write_text('[[source]]\nurl = "https://pypi.org/simple"\nverify_ssl = true\nname = "pypi"\n\n'
                                       '[packages]\nalpha = "==1.0"\n\n[worker]\ndarwinonly = "==1.0"\n\n'
                                       '[requires]\npython_version = "3.11"\n')
    run([str(tools / "bin" / "pipenv"), "--python", sys.executable, "lock"], env, cwd=pipenvapp)
    shutil.rmtree(pipenvapp / ".venv", ignore_errors=True)  # (made by pipenv lock: not part of the app)
    locks = {p: p.read_bytes() for p in (uvapp / "uv.lock", pipapp / "pylock.toml", poetryapp / "poetry.lock",
                                          pipenvapp / "Pipfile.lock")}
    assert b"https://pypi.org/simple" in locks[uvapp / "uv.lock"]
    assert b"https://files.pythonhosted.org/packages/" in locks[uvapp / "uv.lock"]
    assert b"https://files.pythonhosted.org/packages/" in locks[pipapp / "pylock.toml"]
    store = work / "store"
    sync = json.loads(run([*mirror, "sync", str(uvapp), str(pipapp), str(poetryapp), str(pipenvapp), "--store", str(store),
                           "--python", "3.11", "--installers", "", "--json",  # the default upstream: pypi.org
                           # each app's worker group, as its platform installs it: the printed command runs below
                           "--group", "uvapp:worker", "--group", "poetryapp:worker", "--group", "pipenvapp:worker"], env))
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
        run([uv_binary(), *shlex.split(lock_command("uv.lock", (), ("worker",)))[1:]], env, cwd=inside / "uvapp")
        uv_installed = run([uv_binary(), "pip", "list", "--format", "json", "--python",
                            str(inside / "uvapp" / ".venv" / "bin" / "python")], env, cwd=inside / "uvapp")
        venv = inside / "pipapp" / "venv"
        run([sys.executable, "-m", "venv", "--without-pip", str(venv)], env)
        run([pip_python, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--isolated", "--cert", str(ca),
             "-r", str(inside / "pipapp" / "pylock.toml")], env)
        pip_installed = run([pip_python, "-m", "pip", "--python", str(venv / "bin" / "python"), "list", "--format", "json"], env)
        run([str(tools / "bin" / "poetry"), *shlex.split(lock_command("poetry.lock", (), ("worker",)))[1:]], env,
            cwd=inside / "poetryapp")
        poetry_installed = run([str(inside / "poetryapp" / ".venv" / "bin" / "python"), "-c",
                                "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version "
                                "for d in m.distributions()}))"], env)
        run([str(tools / "bin" / "pipenv"), "--python", sys.executable, *shlex.split(lock_command("Pipfile.lock", (), ("worker",)))[1:]],
            env, cwd=inside / "pipenvapp")
        pipenv_installed = run([str(inside / "pipenvapp" / ".venv" / "bin" / "python"), "-c",
                                "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version "
                                "for d in m.distributions()}))"], env)
        unchanged = all((inside / p.relative_to(work / "apps")).read_bytes() == data for p, data in locks.items())
    finally:
        serve.terminate()
        serve.wait(timeout=10)
    print(json.dumps({"uv": {p["name"]: p["version"] for p in json.loads(uv_installed)},
                      "pip": {p["name"]: p["version"] for p in json.loads(pip_installed)},
                      "poetry": json.loads(poetry_installed), "pipenv": json.loads(pipenv_installed),
                      "locks_unchanged": unchanged}))


if __name__ == "__main__":
    main()
