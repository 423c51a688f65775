"""The published tree and the embedded server: PEP 503/691/658/700, negotiation, HEAD, Range, ETag, gzip."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading

import httpx
import pytest

from airgap_mirror.publish import current_tree, publish
from airgap_mirror.publish.simple import JSON_TYPE, IndexFile, render_project_html
from airgap_mirror.serve import make_server, negotiate


@pytest.fixture
def server(store_with_files):
    store, sid, files = store_with_files
    publish(store)
    srv = make_server(store.published, "127.0.0.1", 0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, store, files
    srv.shutdown()
    srv.server_close()


def test_project_page_json(server):
    srv, store, files = server
    r = httpx.get(srv.url + "/simple/foo-bar/", headers={"Accept": JSON_TYPE})
    assert r.status_code == 200
    assert r.headers["content-type"] == JSON_TYPE
    assert "Accept" in r.headers["vary"]
    doc = r.json()
    assert doc["meta"]["api-version"] == "1.4"
    assert doc["name"] == "foo-bar"
    assert doc["versions"] == ["1.0", "2.0"]
    by_name = {f["filename"]: f for f in doc["files"]}
    f1 = by_name["foo_bar-1.0-py3-none-any.whl"]
    assert f1["requires-python"] == ">=3.8"
    assert f1["yanked"] is False
    assert by_name["foo_bar-2.0-py3-none-any.whl"]["yanked"] == "broken"
    assert f1["upload-time"] == "2024-01-01T00:00:00Z"
    # Following the URL gives the bytes the hash promises; PEP 658 metadata likewise.
    body = httpx.get(httpx.URL(r.url).join(f1["url"])).content
    assert hashlib.sha256(body).hexdigest() == f1["hashes"]["sha256"] and len(body) == f1["size"]
    meta = httpx.get(httpx.URL(r.url).join(f1["url"] + ".metadata")).content
    assert hashlib.sha256(meta).hexdigest() == f1["core-metadata"]["sha256"]
    # PEP 714: never the legacy key in JSON; pip 22.3 to 23.1 crash on it (pypa/pip#12042).
    assert not any("dist-info-metadata" in f for f in doc["files"])


def test_project_page_html_and_redirect(server):
    srv, _, _ = server
    r = httpx.get(srv.url + "/simple/Foo_Bar/", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "/simple/foo-bar/"
    r = httpx.get(srv.url + "/simple/foo-bar", follow_redirects=True)
    assert r.headers["content-type"].startswith("text/html")
    assert 'data-requires-python="&gt;=3.8"' in r.text
    assert 'data-yanked="broken"' in r.text
    assert "#sha256=" in r.text and 'data-core-metadata="sha256=' in r.text
    root = httpx.get(srv.url + "/simple/", headers={"Accept": JSON_TYPE}).json()
    assert [p["name"] for p in root["projects"]] == ["foo-bar", "qux"]


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, "text/html"),
        ("*/*", "text/html"),
        (JSON_TYPE, JSON_TYPE),
        (f"application/vnd.pypi.simple.v1+html;q=0.2, {JSON_TYPE}", JSON_TYPE),
        (f"{JSON_TYPE};q=0.1, text/html", "text/html"),
        ("application/vnd.pypi.simple.latest+json", JSON_TYPE),
        ("application/xml", None),
    ],
)
def test_negotiate(accept, expected):
    assert negotiate(accept) == expected


def test_not_acceptable(server):
    srv, _, _ = server
    assert httpx.get(srv.url + "/simple/", headers={"Accept": "application/xml"}).status_code == 406


def test_head_range_etag_gzip(server):
    srv, _, files = server
    sha, meta = next(iter(files.items()))
    url = f"{srv.url}/packages/{sha[:2]}/{sha}/{meta['filename']}"
    with httpx.Client() as c:
        head = c.head(url)
        assert head.status_code == 200 and int(head.headers["content-length"]) == meta["size"] and not head.content
        full = c.get(url).content
        part = c.get(url, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == full[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{meta['size']}"
        assert c.get(url, headers={"Range": "bytes=-5"}).content == full[-5:]
        assert c.get(url, headers={"Range": f"bytes={meta['size'] + 5}-"}).status_code == 416
        etag = head.headers["etag"]
        assert c.get(url, headers={"If-None-Match": etag}).status_code == 304
        page = c.get(srv.url + "/simple/qux/", headers={"Accept-Encoding": "gzip"})
        assert page.headers.get("content-encoding") == "gzip" and "qux" in page.text


def test_a_path_asked_again_answers_each_way_of_asking(server):
    """The server keeps what a request resolved to, by the request as it came: asking the same path
    again in another way (another Accept, no gzip, a Range, a validator) gets that way's answer, not
    the first one's."""
    srv, _, files = server
    sha, meta = next(iter(files.items()))
    url = f"{srv.url}/packages/{sha[:2]}/{sha}/{meta['filename']}"
    page = srv.url + "/simple/qux/"
    with httpx.Client() as c:
        full = c.get(url).content
        for _ in range(3):  # (the first round resolves, the next ones are answered from what was kept)
            as_json = c.get(page, headers={"Accept": JSON_TYPE, "Accept-Encoding": "gzip"})
            as_html = c.get(page, headers={"Accept": "text/html", "Accept-Encoding": "gzip"})
            plain = c.get(page, headers={"Accept": JSON_TYPE, "Accept-Encoding": "identity"})
            assert as_json.headers["content-type"] == JSON_TYPE and as_json.json()["name"] == "qux"
            assert as_html.headers["content-type"].startswith("text/html") and "<a " in as_html.text
            assert as_json.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
            assert plain.json() == as_json.json()
            assert c.get(page, headers={"Accept": "application/xml"}).status_code == 406
            part = c.get(url, headers={"Range": "bytes=3-7"})
            assert part.status_code == 206 and part.content == full[3:8]
            whole = c.get(url)
            assert whole.status_code == 200 and whole.content == full
            assert c.get(url, headers={"If-None-Match": whole.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/packages/%2e%2e/%2e%2e/store-v1/catalog.sqlite",
                                  "/simple/..%2f..%2f", "/%00"])
def test_no_path_escapes(server, path):
    srv, _, _ = server
    with httpx.Client() as c:
        r = c.get(srv.url + path, follow_redirects=False)
        assert r.status_code in (301, 404)
        assert b"root:" not in r.content and b"SQLite" not in r.content


def test_many_concurrent_clients(server):
    srv, _, files = server
    sha, meta = next(iter(files.items()))
    url = f"{srv.url}/packages/{sha[:2]}/{sha}/{meta['filename']}"
    results: list[bool] = []

    def worker() -> None:
        with httpx.Client() as c:
            for _ in range(20):
                results.append(hashlib.sha256(c.get(url).content).hexdigest() == sha)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 320 and all(results)


def test_republish_switches_atomically_and_prunes(store_with_files):
    store, sid, _ = store_with_files
    first = publish(store)
    second = publish(store)
    third = publish(store)
    assert current_tree(store) == third.resolve()
    assert os.readlink(store.published / "current").startswith("trees/")
    assert not first.exists() and second.exists()  # the newest two stay for clients mid-download
    assert not list((store.published / "trees").glob(".*.partial"))
    index = json.loads(gzip.decompress((third / "simple" / "index.json.gz").read_bytes()))
    assert index["projects"]


def test_a_publish_links_the_pages_it_would_write_the_same(store_with_files):
    """A page made from the same inputs as the current tree's is linked from it (a nightly that
    changed one project does not write 20,000 pages again); a project whose files' facts changed (a
    yank) is written anew; a tree from another renderer, or a fresh publish (--force), links none."""
    store, _, files = store_with_files
    first = publish(store, url="http://mirror.test")
    yanked = {s: ({**m, "yanked": "bad build"} if m["project"] == "qux" else m) for s, m in files.items()}
    store.set_ref("current", store.put_snapshot({"format_version": 1, "apps": {}, "targets": {},
                                                 "python": {"files": yanked, "installers": {}, "build": {}}}, origin="test"))
    second = publish(store, url="http://mirror.test")

    def same(a, b, rel):
        return (a / rel).stat().st_ino == (b / rel).stat().st_ino

    for name in ("index.html", "index.html.gz", "index.json", "index.json.gz"):
        assert same(first, second, f"simple/foo-bar/{name}") and not same(first, second, f"simple/qux/{name}")
    assert same(first, second, "pypi/foo-bar/1.0/json") and not same(first, second, "pypi/qux/0.1/json")
    assert json.loads((second / "simple/qux/index.json").read_text())["files"][0]["yanked"] == "bad build"
    assert json.loads((second / "pypi/qux/0.1/json").read_text())["urls"][0]["yanked_reason"] == "bad build"
    fresh = publish(store, url="http://mirror.test", fresh=True)
    assert not same(second, fresh, "simple/foo-bar/index.html")
    assert (fresh / "simple/foo-bar/index.html").read_bytes() == (second / "simple/foo-bar/index.html").read_bytes()
    manifest = store.published / "trees" / f".{fresh.name}.pages.json"
    manifest.write_text(manifest.read_text().replace('"renderer":"', '"renderer":"0'))
    assert not same(fresh, publish(store, url="http://mirror.test"), "simple/foo-bar/index.html")
    # The manifests of pruned trees go with them.
    assert sorted(p.name for p in (store.published / "trees").glob(".*.pages.json")) == sorted(
        f".{t.name}.pages.json" for t in (store.published / "trees").iterdir() if not t.name.startswith("."))


def test_html_is_escaped():
    html = render_project_html("x", [IndexFile(filename='x-1.0.tar.gz"><script>', url='a"b', sha256="0" * 64, size=1,
                                               requires_python="<4,>=3")])
    assert "<script>" not in html and "&lt;4,&gt;=3" in html and 'a&quot;b' in html


def test_served_pylock_points_at_the_mirror():
    """uv's lock names upstream URLs; the published one names our tree, by URL or by a path relative
    to /locks/APP/TARGET/pylock.toml; a file the snapshot lacks keeps its reference."""
    from airgap_mirror.publish import served_pylock
    from airgap_mirror.store.model import PythonFile

    sha, other = "ab" * 32, "cd" * 32
    lock = (f'[[packages]]\nname = "a"\nwheels = [{{ name = "a-1.0-py3-none-any.whl", url = "https://up/a.whl", '
            f'upload-time = 2024-01-01T00:00:00Z, size = 3, hashes = {{ sha256 = "{sha}" }} }}]\n'
            f'sdist = {{ url = "https://up/b.tar.gz", size = 4, hashes = {{ sha256 = "{other}" }} }}\n').encode()
    files = {sha: PythonFile(filename="a-1.0-py3-none-any.whl")}
    out = served_pylock(lock, files, "https://mirror.example/pypi").decode()
    assert f'url = "https://mirror.example/pypi/packages/ab/{sha}/a-1.0-py3-none-any.whl"' in out
    assert f'hashes = {{ sha256 = "{sha}" }}' in out and 'url = "https://up/b.tar.gz"' in out
    rel = served_pylock(lock, files, None).decode()
    assert f'path = "../../../packages/ab/{sha}/a-1.0-py3-none-any.whl"' in rel


def test_a_publish_with_nothing_new_builds_nothing(upstream, tmp_path):
    """A nightly's publish after a sync that changed nothing keeps the tree it has (it rebuilt all of
    it); a new base URL, a new snapshot or --force builds one."""
    from tests.builders.cli import run_mirror
    from tests.builders.upstreams import DATA, X86

    store = tmp_path / "s"
    run_mirror("sync", str(DATA / "apps" / "shop"), "--store", str(store), "--python", "3.11", "--platform", X86,
               "--index-url", upstream.url + "/simple", "--installers", "")
    run_mirror("publish", "--store", str(store))
    first = (store / "published" / "current").resolve()
    again = run_mirror("publish", "--store", str(store))
    assert "published already" in again.stdout + again.stderr
    assert (store / "published" / "current").resolve() == first
    run_mirror("publish", "--store", str(store), "--base-url", "https://pypi.internal.example")
    moved = (store / "published" / "current").resolve()
    assert moved != first and "https://pypi.internal.example/packages/" in next(
        (moved / "locks").rglob("pylock.toml")).read_text()
    run_mirror("publish", "--store", str(store), "--force")
    assert (store / "published" / "current").resolve() != moved
