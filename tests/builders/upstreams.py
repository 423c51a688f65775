"""Local upstreams for tests: static and authenticated index servers, a signed Debian archive, git
repositories over file:// and smart HTTP, and the clean environment every client runs in."""

from __future__ import annotations

import ensurepip
import functools
import hashlib
import http.server
import json
import os
import shutil
import threading
import time
from pathlib import Path

from packaging.utils import canonicalize_name

from tests.builders import make_sdist, make_wheel

DATA = Path(__file__).parents[1] / "data"

X86 = "manylinux_2_28_x86_64"


ARM = "manylinux_2_28_aarch64"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a client under test: no pip/uv settings from this machine."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV", "PYTHONPATH", "CONDA"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["UV_NO_CONFIG"] = "1"
    env["UV_PYTHON_DOWNLOADS"] = "never"
    env.update(extra)
    return env


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        delay = getattr(self.server, "delays", {}).get(self.path)  # a slow page, for tests of what overlaps it
        if delay:
            time.sleep(delay)
        super().do_GET()

    def end_headers(self) -> None:
        # Like an index that wants revalidation (PyPI says max-age=600): pages are never stale-cached.
        self.send_header("Cache-Control", "max-age=0, must-revalidate")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def log_request(self, code: object = "-", size: object = "-") -> None:
        self.server.requests.append((self.command, self.path, int(getattr(code, "value", code))))  # type: ignore[attr-defined]
        self.server.agents.append((self.path, self.headers.get("User-Agent", "")))  # type: ignore[attr-defined]


class _JsonIndexHandler(_QuietHandler):
    """A PEP 691 index: a project's `index.json` (with PEP 700 upload times), as pypi.org serves it."""

    def do_GET(self) -> None:  # noqa: N802
        page = Path(self.directory) / self.path.lstrip("/").split("?")[0] / "index.json"
        if self.path.startswith("/simple/") and self.path.endswith("/") and page.is_file():
            body = page.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.pypi.simple.v1+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()


def write_json_index(files_dir: Path, index_dir: Path, upload_times: dict[str, str],
                     statuses: dict[str, tuple[str, str | None]] | None = None,
                     provenances: dict[str, str] | None = None) -> None:
    """The PEP 691 JSON pages of a folder of distributions, each file with its PEP 700 upload time
    (`upload_times`: file name → RFC 3339 time), a project's PEP 792 status where `statuses`
    gives one (project → (status, reason)), and a file's PEP 740 `provenance` URL where
    `provenances` gives one (file name → URL, relative to the page)."""
    from packaging.utils import parse_sdist_filename, parse_wheel_filename

    by_project: dict[str, list[Path]] = {}
    for f in sorted(files_dir.iterdir()):
        name = parse_wheel_filename(f.name)[0] if f.name.endswith(".whl") else parse_sdist_filename(f.name)[0]
        by_project.setdefault(str(canonicalize_name(name)), []).append(f)
    for project, paths in by_project.items():
        files = [{"filename": p.name, "url": f"../../files/{p.name}", "size": p.stat().st_size,
                  "hashes": {"sha256": hashlib.sha256(p.read_bytes()).hexdigest()},
                  **({"upload-time": upload_times[p.name]} if p.name in upload_times else {}),
                  **({"provenance": provenances[p.name]} if provenances and p.name in provenances else {})} for p in paths]
        (index_dir / project).mkdir(parents=True, exist_ok=True)
        doc: dict[str, object] = {"meta": {"api-version": "1.4"}, "name": project, "files": files, "versions": []}
        if statuses and project in statuses:
            status, reason = statuses[project]
            doc["project-status"] = {"status": status, **({"reason": reason} if reason else {})}
        (index_dir / project / "index.json").write_text(json.dumps(doc))


class StaticServer:
    """A plain static file server on 127.0.0.1 (an upstream stand-in); stopped by the test."""

    def __init__(self, directory: Path, *, json_pages: bool = False) -> None:
        handler = _JsonIndexHandler if json_pages else _QuietHandler
        self._start(functools.partial(handler, directory=str(directory)))

    def _start(self, handler: object) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
        self.httpd.daemon_threads = True
        self.httpd.requests = []  # type: ignore[attr-defined]  # (method, path, status), as served
        self.requests: list[tuple[str, str, int]] = self.httpd.requests  # type: ignore[attr-defined]
        self.httpd.agents = []  # type: ignore[attr-defined]  # (path, User-Agent), as served
        self.agents: list[tuple[str, str]] = self.httpd.agents  # type: ignore[attr-defined]
        self.httpd.delays = {}  # type: ignore[attr-defined]  # path → seconds its GET waits before answering
        self.delays: dict[str, float] = self.httpd.delays  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def build_upstream_files(files: Path) -> None:
    """The fixture universe of distributions."""
    make_wheel(files, "alpha", "1.0", requires=["beta>=1.0"])
    make_wheel(files, "beta", "1.0")
    make_wheel(files, "beta", "2.0")
    make_wheel(files, "gamma", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64")
    make_wheel(files, "gamma", "1.0", tag="cp39-cp39-manylinux2014_aarch64")
    make_wheel(files, "gamma", "1.0", tag="cp311-cp311-macosx_11_0_arm64")
    make_wheel(files, "gamma", "1.0", tag="cp311-cp311-manylinux_2_34_x86_64")  # too new for a 2_28 target
    make_sdist(files, "gamma", "1.0")
    make_sdist(files, "delta", "1.0", build_requires=["buildhelper>=1.0"])
    make_sdist(files, "buildhelper", "1.0")
    make_wheel(files, "darwinonly", "1.0")
    make_wheel(files, "armonly", "1.0")
    make_wheel(files, "sharedname", "1.0", module_text="ORIGIN = 'public'\n")  # a private index's name, on PyPI too
    bundled = Path(ensurepip.__file__).parent / "_bundled"
    for whl in bundled.glob("*.whl"):  # real pip and setuptools wheels, offline
        shutil.copy(whl, files / whl.name)


def build_debian_upstream(root: Path) -> dict[str, object]:
    from tests.builders.debs import GpgKey, make_deb, write_archive

    key = GpgKey.create(root / "gnupg")
    debs = root / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    main: list[Path] = []
    for arch in ("amd64", "arm64"):
        main += [
            make_deb(debs, "base-req", "1.0", arch, priority="required", essential="yes", depends="libc-fix"),
            make_deb(debs, "libc-fix", "1.0", arch),
            make_deb(debs, "libfoo", "1.0", arch),
            make_deb(debs, "tool-foreign", "1.0", arch, multi_arch="foreign"),
            make_deb(debs, "pyish", "1.0", arch, multi_arch="allowed"),
            make_deb(debs, "libbar", "1.0", arch, depends="pyish:any, tool-foreign, data-all",
                     pre_depends="libc-fix (>= 1.0)"),
            make_deb(debs, "app-tool", "1.0", arch, depends="libfoo (>= 1.1), mail-transport | fallback-mta, libc-fix",
                     pre_depends="pre-thing", recommends="docs-extra"),
            make_deb(debs, "postfix-fix", "1.0", arch, provides="mail-transport"),
            make_deb(debs, "fallback-mta", "1.0", arch),
            make_deb(debs, "libapi-impl", "2.1", arch, provides="libapi (= 2.1)"),
            make_deb(debs, "needs-api", "1.0", arch, depends="libapi (>= 2)"),
            make_deb(debs, "broken-dep", "1.0", arch, depends="does-not-exist (>= 3)"),
        ]
    main += [make_deb(debs, "pre-thing", "1.0", "all"), make_deb(debs, "data-all", "1.0", "all"),
             make_deb(debs, "docs-extra", "1.0", "all")]
    updates = [make_deb(debs, "libfoo", "1.2", arch) for arch in ("amd64", "arm64")]
    archive = root / "archive"
    write_archive(archive, "fixture", main, key)
    write_archive(archive, "fixture-updates", updates, key)
    keyring = key.export(root / "fixture-archive.gpg")
    key.stop()
    # A URL-only .deb (an Aptfile line naming it), and one for a :repo: line.
    (archive / "extra").mkdir()
    make_deb(archive / "extra", "urltool", "3.0", "amd64", depends="libfoo")
    vendor = [make_deb(debs, "vendor-tool", "0.9", "all", depends="libfoo (>= 1.0)")]
    write_archive(archive / "vendor", "stable", vendor, None)  # unsigned: [trusted=yes] only
    return {"archive": archive, "keyring": keyring, "debs": debs}


def apt_config(upstream_url: str, keyring: Path, **extra: object) -> str:
    """The [apt] section of a mirror.toml that points at a fixture archive."""
    lines = ["[apt]", 'distros = ["fixture"]']
    for k, v in extra.items():
        lines.append(f"{k.replace('_', '-')} = {v!r}".replace("'", '"').replace("True", "true").replace("False", "false"))
    lines += ["[[apt.sources]]", f'url = "{upstream_url}"', 'suites = ["{distro}", "{distro}-updates"]',
              'components = ["main"]', f'keyrings = ["{keyring}"]']
    return "\n".join(lines) + "\n"


def aptfile_app(tmp_path: Path, aptfile: str, upstream_url: str, keyring: Path, **extra: object) -> tuple[Path, str]:
    """An app folder `apps/a` holding this Aptfile, and a mirror.toml (store `store`) whose [apt]
    points at a fixture archive: (the app, the config's path)."""
    app = tmp_path / "apps" / "a"
    app.mkdir(parents=True, exist_ok=True)
    (app / "Aptfile").write_text(aptfile)
    (tmp_path / "mirror.toml").write_text('[store]\npath = "store"\n' + apt_config(upstream_url, keyring, **extra))
    return app, str(tmp_path / "mirror.toml")


PRIVATE_USER = "mirror-bot-7f3a"


PRIVATE_PASSWORD = "pw-Q9v!x2-never-on-disk"


GIT_TOKEN = "gt-5c1e88d0-secret-token"


class AuthServer(StaticServer):
    """A static server that answers 401 unless the request carries the expected basic auth."""

    def __init__(self, directory: Path, user: str, password: str) -> None:
        import base64

        want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.seen_auth: list[bool] = []
        seen = self.seen_auth

        class Handler(_QuietHandler):
            def do_GET(self) -> None:  # noqa: N802
                ok = self.headers.get("Authorization") == want
                seen.append(ok)
                if not ok:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="private"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

            do_HEAD = do_GET  # noqa: N815

        self._start(functools.partial(Handler, directory=str(directory)))


def build_private_files(files: Path) -> None:
    """What a company's private index holds: its own package, and one whose name PyPI also has."""
    make_wheel(files, "privpkg", "1.0", requires=["beta>=1.0", "sharedname"])
    make_wheel(files, "sharedname", "1.0", module_text="ORIGIN = 'private'\n")


def _git(*args: str, cwd: Path) -> str:
    import subprocess

    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


class GitRepo:
    """A git repository of the project `gitpkg` (and `gitsub` in sub/): tags v1.0, v1.1, branch main."""

    def __init__(self, path: Path) -> None:
        from tests.builders import make_project

        self.path = path
        path.mkdir(parents=True)
        _git("init", "--quiet", "--initial-branch=main", cwd=path)
        self.commits: dict[str, str] = {}
        for version in ("1.0", "1.1"):
            self._commit(make_project, version)
            _git("tag", f"v{version}", cwd=path)

    def _commit(self, make_project, version: str) -> str:  # type: ignore[no-untyped-def]
        make_project(self.path, "gitpkg", version, requires=["beta>=1.0"], marker=f"git {version}")
        make_project(self.path / "sub", "gitsub", version, marker=f"sub {version}")
        _git("add", "-A", cwd=self.path)
        _git("commit", "--quiet", "-m", f"version {version}", cwd=self.path)
        self.commits[version] = _git("rev-parse", "HEAD", cwd=self.path)
        return self.commits[version]

    def move_main(self, version: str) -> str:
        """A new commit on main (the branch moves; tags stay)."""
        from tests.builders import make_project

        return self._commit(make_project, version)


class GitHttpServer(StaticServer):
    """git's smart HTTP protocol (`git http-backend` as CGI) on 127.0.0.1, behind basic auth."""

    def __init__(self, project_root: Path, user: str, password: str) -> None:
        import base64
        import gzip
        import subprocess

        want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        root = str(project_root)

        class Handler(http.server.BaseHTTPRequestHandler):
            def _cgi(self) -> None:
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="git"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path, _, query = self.path.partition("?")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                env = {"GIT_PROJECT_ROOT": root, "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
                       "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": user,
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                       "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""), "PATH": os.environ.get("PATH", "")}
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode("latin-1").split("\r\n"):
                    k, _, v = line.partition(":")
                    if k.lower() == "status":
                        status = int(v.strip().split()[0])
                    elif k:
                        headers.append((k, v.strip()))
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _cgi  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self._start(Handler)
