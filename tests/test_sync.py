"""Sync behaviour on bad input and bad upstreams: clear errors, nothing lost, nothing half-kept."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airgap_mirror.fetch import Downloads, FetchItem, fetch_all
from airgap_mirror.resolve import IndexConfig
from airgap_mirror.store import open_store
from airgap_mirror.sync import SyncOptions, run_sync
from tests.builders.upstreams import X86, StaticServer, clean_env


def _opts(apps: list[Path], upstream) -> SyncOptions:
    return SyncOptions(apps=tuple(apps), pythons=("3.11",), platforms=(X86,),
                       index=IndexConfig(index_url=upstream.url + "/simple"), installers=())


def test_one_bad_app_does_not_stop_the_others(apps: Path, upstream, tmp_path: Path):
    bad = apps / "broken"
    bad.mkdir()
    (bad / "requirements.txt").write_text("alpha==1.0\nbeta = 2\n")
    proc = subprocess.run(
        [sys.executable, "-m", "airgap_mirror.cli", "sync", str(apps / "shop"), str(bad), "--store", str(tmp_path / "s"),
         "--python", "3.11", "--platform", X86, "--index-url", upstream.url + "/simple", "--installers", ""],
        capture_output=True, text=True, env=clean_env(),
    )
    assert proc.returncode == 1
    assert f"{bad / 'requirements.txt'}:2" in proc.stderr and "beta==2" in proc.stderr
    assert "ok shop" in proc.stderr


def test_an_index_whose_host_does_not_exist_fails_its_app_at_once(apps: Path, upstream, tmp_path: Path):
    """An extra index on a host name DNS says does not exist (.invalid, RFC 6761) fails that app with
    a line naming the index and the host, without uv's retries; the other app syncs."""
    import socket

    try:
        socket.getaddrinfo("no-such-index.invalid", 443)
    except socket.gaierror as exc:
        if exc.errno != socket.EAI_NONAME:
            pytest.skip(f"no DNS resolver answers here ({exc})")
    bad = apps / "private"
    bad.mkdir()
    (bad / "requirements.txt").write_text("--extra-index-url https://no-such-index.invalid/simple\nalpha==1.0\n")
    store = open_store(tmp_path / "s", create=True)
    result = run_sync(store, _opts([apps / "shop", bad], upstream))
    by_name = {a.name: a for a in result.apps}
    assert by_name["shop"].ok and not by_name["private"].ok
    error = by_name["private"].error or ""
    assert "https://no-such-index.invalid/simple cannot be reached" in error and "not a known host name" in error
    assert "uv could not resolve" not in error  # uv did not run for it


def test_unresolvable_app_keeps_previous_lock(apps: Path, upstream, tmp_path: Path):
    store = open_store(tmp_path / "s", create=True)
    first = run_sync(store, _opts([apps / "shop"], upstream))
    assert first.ok
    (apps / "shop" / "requirements.txt").write_text("alpha==9.9\n")
    second = run_sync(store, _opts([apps / "shop"], upstream))
    assert not second.ok
    app = second.apps[0]
    assert app.kept_previous and "alpha" in (app.error or "")
    snap = store.load_snapshot(second.snapshot_id)
    assert snap["apps"]["shop"] == store.load_snapshot(first.snapshot_id)["apps"]["shop"]


def test_hash_mismatch_keeps_nothing(upstream, tmp_path: Path):
    store = open_store(tmp_path / "s", create=True)
    files = Path(upstream.root) / "files"
    f = next(files.glob("alpha-*.whl"))
    good = hashlib.sha256(f.read_bytes()).hexdigest()
    wrong = "0" * 64
    report = fetch_all([FetchItem(url=f"{upstream.url}/files/{f.name}", sha256=wrong, filename=f.name)], store)
    assert len(report.failed) == 1 and "does not match" in str(report.failed[0][1])
    assert not store.has_blob(wrong) and not store.has_blob(good)
    assert not list(store.tmp.iterdir())  # no temp file left behind
    report = fetch_all([FetchItem(url=f"{upstream.url}/files/{f.name}", sha256=good, filename=f.name)], store)
    assert report.fetched and store.has_blob(good)


def test_a_file_started_before_its_hash_was_known_is_taken_only_when_the_hashes_agree(upstream, tmp_path: Path):
    """A sync starts the file uv picked by its URL alone (uv's log gives no hash). When the lock's
    hash agrees it is that file, fetched once; when the URL gave another file, the lock's file is
    fetched by its own URL and checked, and the stray one is not taken for it."""
    store = open_store(tmp_path / "s", create=True)
    files = Path(upstream.root) / "files"
    alpha, beta = next(files.glob("alpha-*.whl")), next(files.glob("beta-1.0-*.whl"))
    sha = {f: hashlib.sha256(f.read_bytes()).hexdigest() for f in (alpha, beta)}
    url = {f: f"{upstream.url}/files/{f.name}" for f in (alpha, beta)}
    upstream.requests.clear()  # (the server is shared with the other tests)
    with Downloads(store) as downloads:
        assert downloads.add(FetchItem(url=url[alpha], sha256="", filename=alpha.name))
        assert not downloads.add(FetchItem(url=url[alpha], sha256=sha[alpha], filename=alpha.name))  # the same URL
        # An early guess whose URL turns out to give another file (here: beta's URL for alpha's name).
        assert downloads.add(FetchItem(url=url[beta], sha256="", filename=alpha.name))
        report = downloads.wait([FetchItem(url=url[alpha], sha256=sha[alpha], filename=alpha.name)])
        # The stray, once it is in (waited for here: leaving the `with` stops what still runs, and on a
        # loaded machine it sometimes still ran), is kept under its own hash, fetched once.
        downloads.wait([FetchItem(url=url[beta], sha256=sha[beta], filename=beta.name)])
    assert [i.filename for i in report.fetched] == [alpha.name] and not report.failed and not report.present
    served = [path for method, path, _ in upstream.requests if method == "GET" and path.endswith(".whl")]
    assert served.count(f"/files/{alpha.name}") == 1 and served.count(f"/files/{beta.name}") == 1
    assert store.has_blob(sha[alpha]) and store.has_blob(sha[beta])  # the stray is kept under its own hash
    other = open_store(tmp_path / "other", create=True)
    with Downloads(other) as downloads:  # started from an index page's URL that fails; the lock's URL works
        assert downloads.add(FetchItem(url=f"{upstream.url}/files/gone.whl", sha256=sha[beta], filename=beta.name))
        report = downloads.wait([FetchItem(url=url[beta], sha256=sha[beta], filename=beta.name)])
    assert [i.filename for i in report.fetched] == [beta.name] and not report.failed
    assert other.has_blob(sha[beta])


def test_a_resolution_that_backtracks_stops_downloading_ahead(upstream, tmp_path: Path):
    """Each version uv picks starts downloading before the lock is known; once uv picks a second
    version of a project (backtracking, which can run through dozens of versions), that resolution
    starts nothing more ahead: what it dropped stays at the first pick. Another resolution goes on."""
    from airgap_mirror.resolve.memo import ResolutionMemo
    from airgap_mirror.resolve.targets import PythonTarget
    from airgap_mirror.sync.early import EarlyDownloads
    from airgap_mirror.sync.jobs import Job

    files = Path(upstream.root) / "files"

    def url(pattern: str) -> str:
        return f"{upstream.url}/files/{next(files.glob(pattern)).name}"

    def job(name: str) -> Job:
        return Job(key=(name, f"cp311-{X86}"), target=PythonTarget.parse("3.11", X86),
                    index=IndexConfig(index_url=upstream.url + "/simple"), requirements=("alpha",))

    store = open_store(tmp_path / "s", create=True)
    upstream.requests.clear()  # (the server is shared with the other tests)
    with Downloads(store) as downloads:
        early = EarlyDownloads(store, ResolutionMemo(tmp_path / "cache", lambda *a, **k: {}), downloads)
        one, other = early.hearing(job("one")), early.hearing(job("other"))
        one("beta", "2.0", url("beta-2.0-*.whl"), ())
        one("alpha", "1.0", url("alpha-1.0-*.whl"), ())
        one("beta", "1.0", url("beta-1.0-*.whl"), ())  # a second beta: uv is backtracking
        one("gamma", "1.0", url("gamma-1.0-cp311-*.whl"), ())
        other("gamma", "1.0", url("gamma-1.0-cp311-*.whl"), ())
        early.close()

        def started(pattern: str) -> bool:
            return downloads.started(FetchItem(url=url(pattern), sha256="", filename=url(pattern).rsplit("/", 1)[1]))

        assert started("beta-2.0-*.whl") and started("alpha-1.0-*.whl")
        assert not started("beta-1.0-*.whl")
        assert started("gamma-1.0-cp311-*.whl")  # by the other resolution only
    served = [path for method, path, _ in upstream.requests if path.endswith(".whl")]
    assert not any("beta-1.0" in path for path in served)


def test_upstream_changes_make_a_new_snapshot(tmp_path: Path):
    """A new release upstream is picked up by the next sync, and only it is fetched."""
    from tests.builders import make_wheel, write_simple_index

    root = tmp_path / "up"
    make_wheel(root / "files", "alpha", "1.0", requires=["beta>=1.0"])
    make_wheel(root / "files", "beta", "1.0")
    write_simple_index(root / "files", root / "simple")
    app = tmp_path / "app"
    app.mkdir()
    (app / "requirements.txt").write_text("alpha\n")
    server = StaticServer(root)
    try:
        store = open_store(tmp_path / "s", create=True)
        opts = _opts([app], server)
        first = run_sync(store, opts)
        make_wheel(root / "files", "beta", "1.1")
        shutil.rmtree(root / "simple")
        write_simple_index(root / "files", root / "simple")
        second = run_sync(store, opts)
    finally:
        server.stop()
    assert second.changed and second.snapshot_id != first.snapshot_id
    assert second.files_fetched == 1
    pins = dict(map(tuple, store.load_snapshot(second.snapshot_id)["apps"]["app"]["targets"][f"cp311-{X86}"]["packages"]))
    assert pins["beta"] == "1.1"


def test_json_summary_and_help():
    out = subprocess.run([sys.executable, "-m", "airgap_mirror.cli", "sync", "--help"], capture_output=True, text=True,
                         env=clean_env())
    assert out.returncode == 0 and "Example" in out.stdout
    for cmd in ("publish", "serve", "client-config", "init"):
        h = subprocess.run([sys.executable, "-m", "airgap_mirror.cli", cmd, "--help"], capture_output=True, text=True,
                           env=clean_env())
        assert h.returncode == 0 and "Example" in h.stdout, cmd


def test_client_config():
    out = subprocess.run([sys.executable, "-m", "airgap_mirror.cli", "client-config", "--url", "http://mirror.internal:8080"],
                         capture_output=True, text=True, env=clean_env()).stdout
    assert "index-url = http://mirror.internal:8080/simple/" in out
    assert "UV_DEFAULT_INDEX=http://mirror.internal:8080/simple/" in out
    assert "--index-url http://mirror.internal:8080/simple/" in out
    assert "trusted-host = mirror.internal" in out


def test_init_writes_a_config_that_loads(tmp_path: Path):
    from airgap_mirror.cli.config import load_config

    subprocess.run([sys.executable, "-m", "airgap_mirror.cli", "init", str(tmp_path / "mirror.toml")], check=True,
                   env=clean_env(), capture_output=True)
    (tmp_path / "apps" / "one").mkdir(parents=True)
    cfg = load_config(tmp_path / "mirror.toml")
    assert cfg.apps == (tmp_path / "apps" / "one",)
    assert cfg.platforms == ("manylinux_2_28_x86_64",) and cfg.pythons == ("3.11",)
    from airgap_mirror.defaults import DEFAULT_INSTALLERS

    assert cfg.installers == tuple(DEFAULT_INSTALLERS) and cfg.installers  # the list is TOML, not Python repr
    assert "platform's own" in (tmp_path / "mirror.toml").read_text()  # apostrophes kept in the comments


def test_retries_transient_errors_then_succeeds(tmp_path: Path):
    """A real server that answers 503 twice, then the file: the fetch retries and verifies."""
    import http.server
    import threading

    payload = b"wheel bytes" * 100
    sha = hashlib.sha256(payload).hexdigest()
    hits = {"n": 0}

    class Flaky(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits["n"] += 1
            if self.path.endswith("missing.whl"):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if hits["n"] <= 2:
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *a: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        store = open_store(tmp_path / "s", create=True)
        report = fetch_all([FetchItem(url=f"{base}/x.whl", sha256=sha, filename="x.whl")], store)
        assert report.fetched and store.has_blob(sha) and hits["n"] == 3
        before = hits["n"]
        report = fetch_all([FetchItem(url=f"{base}/missing.whl", sha256="1" * 64, filename="missing.whl")], store)
        assert "HTTP 404" in str(report.failed[0][1]) and hits["n"] == before + 1  # no retry on 404
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_yanked_flag_and_requires_python_come_from_the_index(tmp_path: Path):
    from airgap_mirror.publish import publish
    from tests.builders import make_wheel, write_simple_index

    root = tmp_path / "up"
    make_wheel(root / "files", "beta", "1.0")
    make_wheel(root / "files", "beta", "2.0")
    write_simple_index(root / "files", root / "simple", yanked={"beta-1.0-py3-none-any.whl": "broken <build>"},
                       requires_python={"beta-1.0-py3-none-any.whl": ">=3.8"})
    app = tmp_path / "app"
    app.mkdir()
    (app / "requirements.txt").write_text("beta==1.0\n")
    server = StaticServer(root)
    try:
        store = open_store(tmp_path / "s", create=True)
        result = run_sync(store, _opts([app], server))
    finally:
        server.stop()
    assert result.ok
    tree = publish(store)
    page = json.loads((tree / "simple" / "beta" / "index.json").read_text())
    (f,) = page["files"]
    assert f["yanked"] == "broken <build>" and f["requires-python"] == ">=3.8"
    assert 'data-yanked="broken &lt;build&gt;"' in (tree / "simple" / "beta" / "index.html").read_text()


def test_other_requirements_files_are_named_and_can_be_added(upstream, tmp_path: Path):
    """A file the platform does not install (here one a predeploy script would) is warned about, and
    read when mirror.toml names it under [apps] requirement-files."""
    app = tmp_path / "apps" / "predeploy"
    app.mkdir(parents=True)
    (app / "requirements.txt").write_text("")
    (app / "requirements-predeploy.txt").write_text("alpha\n")
    base = ["sync", str(app), "--store", str(tmp_path / "s"), "--python", "3.11", "--platform", X86,
            "--index-url", upstream.url + "/simple", "--installers", "", "--json"]
    first = json.loads(subprocess.run([sys.executable, "-m", "airgap_mirror.cli", *base], capture_output=True, text=True,
                                      env=clean_env()).stdout)["apps"][0]
    assert first["targets"] == [] and any("requirements-predeploy.txt not mirrored" in w for w in first["warnings"])
    (tmp_path / "mirror.toml").write_text('[apps]\nrequirement-files = ["requirements-predeploy.txt"]\n')
    second = json.loads(subprocess.run([sys.executable, "-m", "airgap_mirror.cli", *base, "--config", str(tmp_path / "mirror.toml")],
                                       capture_output=True, text=True, env=clean_env()).stdout)
    entry = second["apps"][0]
    assert entry["ok"] and entry["targets"] == [f"cp311-{X86}"] and not entry["warnings"]
    store = open_store(tmp_path / "s")
    pins = dict(map(tuple, store.load_snapshot(second["snapshot"])["apps"]["predeploy"]["targets"][f"cp311-{X86}"]["packages"]))
    assert pins == {"alpha": "1.0", "beta": "2.0"}


def test_each_warning_is_said_once_per_change_and_failures_come_last_counted(apps: Path, upstream, tmp_path: Path):
    """A nightly printed the same long warnings every night and its one FAILED line drowned: a
    warning the last sync printed is counted, not printed again (`--all-warnings` prints it); failed
    apps come after the others, and a last line counts them."""
    (apps / "shop" / "requirements-dev.txt").write_text("pytest\n")  # not installed by the platform: warned
    bad = apps / "broken"
    bad.mkdir()
    (bad / "requirements.txt").write_text("alpha==1.0\nbeta = 2\n")
    cmd = [sys.executable, "-m", "airgap_mirror.cli", "sync", str(bad), str(apps / "shop"), "--store", str(tmp_path / "s"),
           "--python", "3.11", "--platform", X86, "--index-url", upstream.url + "/simple", "--installers", ""]
    first = subprocess.run(cmd, capture_output=True, text=True, env=clean_env()).stderr
    assert "requirements-dev.txt not mirrored" in first
    lines = [ln for ln in first.splitlines() if ln.strip()]
    assert lines[-1].startswith("FAILED: 1 of 2 apps (broken)")
    assert first.index("ok shop") < first.index("FAILED broken")
    again = subprocess.run(cmd, capture_output=True, text=True, env=clean_env()).stderr
    assert "requirements-dev.txt not mirrored" not in again and "1 warnings unchanged since the last sync" in again
    everything = subprocess.run([*cmd, "--all-warnings"], capture_output=True, text=True, env=clean_env()).stderr
    assert "requirements-dev.txt not mirrored" in everything
