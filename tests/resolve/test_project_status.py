"""PEP 792 project status carried across: read from the upstream's pages (JSON `project-status`, HTML
meta tags), kept in the snapshot, said by the apps that use such a project, served on our own pages,
and a change of it shown by `mirror diff`."""

from __future__ import annotations

import json

import pytest

from airgap_mirror.resolve.upstream import parse_project_page
from tests.builders import make_wheel
from tests.builders.cli import run_mirror
from tests.builders.upstreams import X86, StaticServer, write_json_index


@pytest.fixture
def status_upstream(tmp_path):
    root = tmp_path / "up"
    files = root / "files"
    make_wheel(files, "alpha", "1.0", requires=["beta>=1.0"])
    make_wheel(files, "beta", "1.0")
    server = StaticServer(root, json_pages=True)
    server.root = root  # type: ignore[attr-defined]
    yield server
    server.stop()


def _sync(app, store, upstream, *extra):
    proc = run_mirror("sync", str(app), "--store", str(store), "--python", "3.11", "--platform", X86,
                      "--index-url", upstream.url + "/simple", "--installers", "", "--json", *extra)
    return json.loads(proc.stdout)


def _archived_beta_shop(upstream, tmp_path):
    """An app of alpha (which needs beta) synced from an upstream that says beta is archived:
    (app folder, store, the sync's summary)."""
    root = upstream.root
    write_json_index(root / "files", root / "simple", {}, {"beta": ("archived", "moved to beta-ng")})
    app = tmp_path / "shop"
    app.mkdir()
    (app / "requirements.txt").write_text("alpha\n")
    store = tmp_path / "s"
    return app, store, _sync(app, store, upstream)


def test_a_project_status_is_kept_said_served_and_diffed(status_upstream, tmp_path):
    root = status_upstream.root
    app, store, first = _archived_beta_shop(status_upstream, tmp_path)
    (a,) = first["apps"]
    assert any("beta is archived upstream" in w and "moved to beta-ng" in w for w in a["warnings"]), a["warnings"]
    snap = json.loads((store / "store-v1" / "snapshots" / f"{first['snapshot']}.json").read_text())
    assert snap["python"]["projects"] == {"beta": {"status": "archived", "reason": "moved to beta-ng"}}

    run_mirror("publish", "--store", str(store))
    simple = store / "published" / "current" / "simple"
    page = json.loads((simple / "beta" / "index.json").read_text())
    assert page["meta"]["api-version"] == "1.4"
    assert page["project-status"] == {"status": "archived", "reason": "moved to beta-ng"}
    assert "project-status" not in json.loads((simple / "alpha" / "index.json").read_text())
    html = (simple / "beta" / "index.html").read_text()
    again = parse_project_page(html.encode(), "text/html")  # as an index reading ours would
    assert (again.status, again.reason) == ("archived", "moved to beta-ng")

    # The upstream quarantines beta: a sync that reads the page anew (--refresh) records it; diff says so.
    write_json_index(root / "files", root / "simple", {}, {"beta": ("quarantined", None)})
    second = _sync(app, store, status_upstream, "--refresh")
    diff = run_mirror("diff", first["snapshot"], second["snapshot"], "--store", str(store))
    assert "project status (PEP 792): beta archived → quarantined" in diff.stdout
    as_json = json.loads(run_mirror("diff", first["snapshot"], second["snapshot"], "--store", str(store),
                                    "--json").stdout)
    assert as_json["project_statuses"] == [["beta", "archived", "quarantined"]]


def test_an_html_page_says_its_status_in_meta_tags():
    html = (b'<!DOCTYPE html><html><head><meta name="pypi:repository-version" content="1.4">'
            b'<meta name="pypi:project-status" content="deprecated">'
            b'<meta name="pypi:project-status-reason" content="use other"></head>'
            b'<body><a href="x-1.0.tar.gz#sha256=ab">x-1.0.tar.gz</a></body></html>')
    page = parse_project_page(html, "text/html", "https://i/simple/x/")
    assert (page.status, page.reason) == ("deprecated", "use other") and "x-1.0.tar.gz" in page
    plain = parse_project_page(b'<html><body><a href="x-1.0.tar.gz">x-1.0.tar.gz</a></body></html>', "text/html")
    assert plain.status == "active"


def test_uv_audit_reads_the_status_from_our_mirror(status_upstream, tmp_path):
    """The real uv (`uv audit`, 0.13.9) reads the statuses we serve and reports them, inside, with our
    mirror its only index. uv audit also asks a vulnerability service (OSV) and has no offline mode:
    here a stand-in on loopback that knows of no vulnerability (`--service-url`), as a site without
    an OSV mirror would point it; what is under test is what uv reads from us."""
    import http.server
    import subprocess
    import threading

    from airgap_mirror.resolve import uv_binary
    from tests.builders.cli import Served
    from tests.builders.upstreams import clean_env

    _, store, synced = _archived_beta_shop(status_upstream, tmp_path)
    assert synced["ok"]
    asked: list[str] = []

    class Osv(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            asked.append(self.path)
            answer = json.dumps({"results": [{} for _ in body.get("queries", [])]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    osv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Osv)
    threading.Thread(target=osv.serve_forever, daemon=True).start()
    served = Served(store)
    try:
        project = tmp_path / "inside"
        project.mkdir()
        (project / "pyproject.toml").write_text('[project]\nname = "inside"\nversion = "0.1"\nrequires-python = ">=3.11"\n'
                                                'dependencies = ["alpha"]\n[tool.uv]\npackage = false\n')
        env = clean_env(UV_NO_CONFIG="1", UV_CACHE_DIR=str(tmp_path / "uvc"), UV_PYTHON_DOWNLOADS="never")
        index = ["--default-index", served.simple]
        subprocess.run([uv_binary(), "lock", *index, "--python", "3.11"], cwd=project, env=env, check=True, capture_output=True)
        audit = subprocess.run([uv_binary(), "audit", "--frozen", *index, "--python-version", "3.11",
                                "--service-url", f"http://127.0.0.1:{osv.server_address[1]}"],
                               cwd=project, env=env, capture_output=True, text=True)
    finally:
        served.stop()
        osv.shutdown()
    out = audit.stdout + audit.stderr
    assert "beta is archived" in out, out
    assert "alpha is" not in out, out  # active: nothing said
    assert asked, "uv audit never asked the vulnerability service it was given"
