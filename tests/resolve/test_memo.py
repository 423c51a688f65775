"""The resolution memo: a nightly resync runs uv only for resolutions whose inputs or pages changed."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airgap_mirror.resolve import IndexConfig, uv_compile
from airgap_mirror.resolve.memo import MAX_AGE, ResolutionMemo, is_deterministic, pages_read
from airgap_mirror.resolve.targets import PythonTarget
from airgap_mirror.resolve.upstream import page_digests
from airgap_mirror.store import open_store
from airgap_mirror.sync import SyncOptions, run_sync
from tests.builders import make_sdist, make_wheel, write_simple_index
from tests.builders.upstreams import X86, StaticServer

TARGET = f"cp311-{X86}"


@pytest.fixture
def index(tmp_path: Path):
    """A small index this test may change: alpha 1.0 → beta>=1.0; beta 1.0; gamma 1.0."""
    root = tmp_path / "up"
    make_wheel(root / "files", "alpha", "1.0", requires=["beta>=1.0"])
    make_wheel(root / "files", "beta", "1.0")
    make_wheel(root / "files", "gamma", "1.0")
    write_simple_index(root / "files", root / "simple")
    an_hour_ago = time.time() - 3600  # Last-Modified is a validator only once it has settled
    for page in (root / "simple").rglob("*"):
        os.utime(page, (an_hour_ago, an_hour_ago))
    server = StaticServer(root)
    server.root = root  # type: ignore[attr-defined]

    def publish(name: str, version: str, **kw: object) -> None:
        make_wheel(root / "files", name, version, **kw)
        shutil.rmtree(root / "simple")
        write_simple_index(root / "files", root / "simple")

    server.publish = publish  # type: ignore[attr-defined]
    yield server
    server.stop()


def _app(tmp_path: Path, name: str, text: str) -> Path:
    app = tmp_path / "apps" / name
    app.mkdir(parents=True, exist_ok=True)
    (app / "requirements.txt").write_text(text)
    return app


def _opts(apps: list[Path], server: StaticServer, **kw: object) -> SyncOptions:
    return SyncOptions(apps=tuple(apps), pythons=("3.11",), platforms=(X86,),
                       index=IndexConfig(index_url=server.url + "/simple"), installers=(), **kw)  # type: ignore[arg-type]


def test_uv_reports_the_pages_it_read(index: StaticServer):
    """The memo's pages come from uv's own log: every project page it read, and no file URLs."""
    target = PythonTarget.parse("3.11", X86)
    res = uv_compile(["alpha"], target, index=IndexConfig(index_url=index.url + "/simple"))
    assert set(res.pages) == {f"{index.url}/simple/alpha/", f"{index.url}/simple/beta/"}
    assert b"beta" in res.pylock


def test_unchanged_resync_runs_no_resolver_and_reads_each_page_once(index: StaticServer, tmp_path: Path):
    apps = [_app(tmp_path, "one", "alpha\n"), _app(tmp_path, "two", "alpha\ngamma\n")]
    store = open_store(tmp_path / "s", create=True)
    first = run_sync(store, _opts(apps, index))
    assert first.ok and first.resolutions_run == 2 and first.resolutions_reused == 0
    index.requests.clear()
    second = run_sync(store, _opts(apps, index))
    assert second.ok and second.snapshot_id == first.snapshot_id and not second.changed
    assert second.resolutions_run == 0 and second.resolutions_reused == 2
    assert second.files_fetched == 0
    # Only our freshness check reached the index: one conditional GET per page, shared by both apps.
    gets = sorted(path for method, path, _ in index.requests)
    assert gets == ["/simple/alpha/", "/simple/beta/", "/simple/gamma/"]
    assert all(status == 304 for *_, status in index.requests)  # the index's Last-Modified was sent back


def test_a_cold_sync_reads_each_page_once(index: StaticServer, tmp_path: Path):
    """uv reads the pages to resolve; the mirror reads each of them once more, for two uses at
    once: the memo's digests and the yanked / requires-python of the files new to the catalog."""
    root = index.root  # type: ignore[attr-defined]
    gamma = next(p.name for p in (root / "files").iterdir() if p.name.startswith("gamma-"))
    shutil.rmtree(root / "simple")
    write_simple_index(root / "files", root / "simple", requires_python={gamma: ">=3.8"}, yanked={gamma: "a reason"})
    apps = [_app(tmp_path, "one", "alpha\n"), _app(tmp_path, "two", "alpha\ngamma==1.0\n")]
    store = open_store(tmp_path / "s", create=True)
    first = run_sync(store, _opts(apps, index))
    assert first.ok and first.resolutions_run == 2
    ours = sorted(path for path, agent in index.agents if agent.startswith("airgap-mirror/") and path.startswith("/simple/"))
    assert ours == ["/simple/alpha/", "/simple/beta/", "/simple/gamma/"]
    # What that one read gave is in the catalog (the wheel's own metadata names no Requires-Python).
    files = store.load_snapshot(first.snapshot_id)["python"]["files"]
    sha = next(s for s, f in files.items() if f["filename"] == gamma)
    entry = store.pyfile(sha, gamma)
    assert entry is not None and entry.requires_python == ">=3.8" and entry.yanked == "a reason"


def test_a_resync_reads_the_page_of_a_project_taken_as_an_sdist_once(index: StaticServer, tmp_path: Path):
    """A project a target gets only as an sdist has its page read in full after every resolution
    (the compiled-sdist check); in an unchanged resync that is the memo's one read of it, not a
    conditional read and then a full one."""
    root = index.root  # type: ignore[attr-defined]
    make_sdist(root / "files", "solo", "1.0")
    shutil.rmtree(root / "simple")
    write_simple_index(root / "files", root / "simple")
    an_hour_ago = time.time() - 3600
    for page in (root / "simple").rglob("*"):
        os.utime(page, (an_hour_ago, an_hour_ago))
    app = _app(tmp_path, "app", "solo\n")
    store = open_store(tmp_path / "s", create=True)
    assert run_sync(store, _opts([app], index)).ok
    index.requests.clear()
    second = run_sync(store, _opts([app], index))
    assert second.ok and second.resolutions_reused == 1 and second.resolutions_run == 0
    assert [(path, status) for _, path, status in index.requests] == [("/simple/solo/", 200)]


def test_files_start_downloading_while_uv_still_resolves(index: StaticServer, tmp_path: Path):
    """A file uv has picked starts downloading then, not after the whole resolution: alpha's wheel
    arrives while uv still waits for beta's page (held back 1.5 s), and the sync still takes and
    reports every file of the lock, each fetched once, as it would have without the head start."""
    index.delays["/simple/beta/"] = 1.5
    app = _app(tmp_path, "app", "alpha\n")
    store = open_store(tmp_path / "s", create=True)
    result = run_sync(store, _opts([app], index))
    assert result.ok and result.files_fetched == 2 and result.files_present == 0
    served = [(path, agent.split("/")[0]) for path, agent in index.agents]
    alpha_wheel = next(i for i, (path, agent) in enumerate(served)
                       if path.endswith("/alpha-1.0-py3-none-any.whl") and agent == "airgap-mirror")
    beta_page_to_uv = next(i for i, (path, agent) in enumerate(served) if path == "/simple/beta/" and agent == "uv")
    assert alpha_wheel < beta_page_to_uv
    ours = [path for path, agent in served if agent == "airgap-mirror" and path.endswith(".whl")]
    assert sorted(ours) == sorted(set(ours)) and len(ours) == 2  # each file once
    files = store.load_snapshot(result.snapshot_id)["python"]["files"]
    assert sorted(f["filename"] for f in files.values()) == ["alpha-1.0-py3-none-any.whl", "beta-1.0-py3-none-any.whl"]
    assert all(store.has_blob(sha) for sha in files)


def test_a_changed_page_re_resolves_only_the_apps_that_read_it(index: StaticServer, tmp_path: Path):
    apps = [_app(tmp_path, "reads-beta", "alpha\n"), _app(tmp_path, "gamma-only", "gamma\n")]
    store = open_store(tmp_path / "s", create=True)
    first = run_sync(store, _opts(apps, index))
    index.publish("beta", "1.1")  # type: ignore[attr-defined]
    second = run_sync(store, _opts(apps, index))
    assert second.resolutions_run == 1 and second.resolutions_reused == 1
    assert second.changed and second.files_fetched == 1
    pins = dict(map(tuple, store.load_snapshot(second.snapshot_id)["apps"]["reads-beta"]["targets"][TARGET]["packages"]))
    assert pins["beta"] == "1.1"
    assert store.load_snapshot(second.snapshot_id)["apps"]["gamma-only"] == store.load_snapshot(first.snapshot_id)["apps"]["gamma-only"]


def test_a_changed_requirement_re_resolves(index: StaticServer, tmp_path: Path):
    app = _app(tmp_path, "app", "alpha\n")
    store = open_store(tmp_path / "s", create=True)
    run_sync(store, _opts([app], index))
    (app / "requirements.txt").write_text("alpha\ngamma\n")
    second = run_sync(store, _opts([app], index))
    assert second.resolutions_run == 1 and second.changed


def test_no_solution_is_remembered_until_a_page_changes(index: StaticServer, tmp_path: Path):
    app = _app(tmp_path, "app", "beta==3.0\n")
    store = open_store(tmp_path / "s", create=True)
    first = run_sync(store, _opts([app], index))
    assert not first.ok and "beta" in (first.apps[0].error or "")
    second = run_sync(store, _opts([app], index))
    assert not second.ok and second.resolutions_run == 0
    assert "unchanged since" in (second.apps[0].error or "") and "--refresh" in (second.apps[0].error or "")
    index.publish("beta", "3.0")  # type: ignore[attr-defined]
    third = run_sync(store, _opts([app], index))
    assert third.ok and third.resolutions_run == 1


def test_refresh_runs_every_resolution(index: StaticServer, tmp_path: Path):
    app = _app(tmp_path, "app", "alpha\n")
    store = open_store(tmp_path / "s", create=True)
    first = run_sync(store, _opts([app], index))
    again = run_sync(store, _opts([app], index, refresh=True))
    assert again.resolutions_run == 1 and again.snapshot_id == first.snapshot_id


def test_a_page_that_cannot_be_read_is_not_taken_as_unchanged(index: StaticServer, tmp_path: Path):
    """An index that is down: the memo does not answer for it (uv then reports the failure)."""
    app = _app(tmp_path, "app", "alpha\n")
    store = open_store(tmp_path / "s", create=True)
    first = run_sync(store, _opts([app], index))
    assert first.ok
    shutil.rmtree(Path(index.root) / "simple" / "beta")  # type: ignore[attr-defined]
    second = run_sync(store, _opts([app], index))
    assert second.resolutions_run == 1 and not second.ok and second.apps[0].kept_previous


# The memo core with a page reader standing in for the network: dates and digests are values.
def _reader(pages: dict[str, str | None], calls: list[dict[str, tuple]]):
    def read(validators):
        calls.append(dict(validators))
        return {u: ("etag-" + str(d), None, d) for u, d in pages.items() if u in validators}
    return read


def test_memo_core(tmp_path: Path):
    pages: dict[str, str | None] = {"https://i/simple/a/": "sha256:1", "https://i/simple/b/": "sha256:2"}
    calls: list[dict[str, tuple]] = []
    now = datetime(2026, 1, 1, tzinfo=UTC)
    memo = ResolutionMemo(tmp_path, _reader(pages, calls), now=now)
    memo.read(pages)
    assert memo.record("k", pylock=b"lock", error=None, pages=list(pages))
    memo.save_validators()
    assert not ResolutionMemo(tmp_path, _reader(pages, calls), now=now).record(
        "k2", pylock=b"x", error=None, pages=["https://i/simple/never-read/"])  # a page it did not read

    later = ResolutionMemo(tmp_path, _reader(pages, calls), now=now + timedelta(days=1))
    rec = later.load("k")
    assert rec is not None and rec.pylock == "lock"
    later.read(rec.pages)
    later.read(rec.pages)  # read once per run
    assert len(calls) == 2 and calls[-1]["https://i/simple/a/"] == ("etag-sha256:1", None, "sha256:1")
    assert later.unchanged(rec)

    pages["https://i/simple/b/"] = "sha256:3"
    changed = ResolutionMemo(tmp_path, _reader(pages, calls), now=now + timedelta(days=1))
    changed.read(rec.pages)
    assert not changed.unchanged(rec)

    pages["https://i/simple/b/"] = None  # cannot be read now
    down = ResolutionMemo(tmp_path, _reader(pages, calls), now=now + timedelta(days=1))
    down.read(rec.pages)
    assert not down.unchanged(rec)

    assert ResolutionMemo(tmp_path, _reader(pages, calls), now=now + MAX_AGE + timedelta(seconds=1)).load("k") is None


def test_page_digests_sends_validators(index: StaticServer):
    url = f"{index.url}/simple/alpha/"
    etag, modified, digest = page_digests({url: (None, None, None)})[url]
    assert digest and digest.startswith("sha256:") and modified
    # With the validator the index answers 304, so the known digest is kept: it is not re-hashed.
    assert page_digests({url: (etag, modified, "sha256:known")})[url][2] == "sha256:known"
    missing = f"{index.url}/simple/nothing-here/"
    assert page_digests({missing: (None, None, None)})[missing][2] == "absent"
    index.publish("gamma", "2.0")  # type: ignore[attr-defined]  # every page written just now
    fresh = f"{index.url}/simple/gamma/"
    assert page_digests({fresh: (None, None, None)})[fresh][1] is None  # too new to be a validator


@pytest.mark.parametrize(("error", "expected"), [
    ("app for cp311: uv could not resolve:\nerror: No solution found when resolving dependencies\n  cause: ...", True),
    ("error: Failed to build `cbor2==5.2.0`\n  cause: The build backend returned an error", True),
    ("error: Request failed after 3 retries\n  cause: Failed to fetch: https://x/simple/y/", False),
    ("error: No solution found ... cause: error sending request for url", False),
    ("uv wrote a pylock.toml we cannot read", False),
])
def test_which_failures_are_remembered(error: str, expected: bool):
    assert is_deterministic(error) is expected


def test_pages_read_parses_uv_log():
    log = (
        "DEBUG No cache entry for: https://u:p@i.example/simple/flask/\n"
        "DEBUG Found stale response for: https://i.example/simple/jinja2/\n"
        "DEBUG Sending revalidation request for: https://i.example/simple/jinja2/\n"
        "DEBUG Found fresh response for: https://files.example/p/Flask-2.0.1-py3-none-any.whl\n"
        "DEBUG Found fresh response for: https://files.example/p/Flask-2.0.1-py3-none-any.whl.metadata\n"
        "DEBUG No cache entry for: https://links.example/wheels/\n"
    )
    assert pages_read(log) == ("https://i.example/simple/flask/", "https://i.example/simple/jinja2/",
                               "https://links.example/wheels/")


def test_gc_removes_expired_records(tmp_path: Path):
    from airgap_mirror.maintenance.health import collect_garbage
    from airgap_mirror.resolve.memo import expired_records

    store = open_store(tmp_path / "s", create=True)
    now = datetime.now(UTC)
    pages = {"https://i/simple/a/": "sha256:1"}
    for key, when in (("a" * 64, now - MAX_AGE - timedelta(hours=1)), ("b" * 64, now)):
        memo = ResolutionMemo(store.cache, _reader(pages, []), now=when)
        memo.read(pages)
        memo.record(key, pylock=b"x", error=None, pages=list(pages))
    assert [p.stem for p in expired_records(store.cache)] == ["a" * 64]
    assert collect_garbage(store, dry_run=True).removed_records == 1 and len(list(store.cache.rglob("*.json"))) == 2
    assert collect_garbage(store).removed_records == 1
    assert [p.stem for p in (store.cache / "resolutions").rglob("*.json")] == ["b" * 64]


def test_pages_the_index_says_are_fresh_are_not_asked_again(tmp_path):
    """Cache-Control max-age, as PyPI sends it (600 s) and pip honours it: a resync within it asks
    the index for no page at all; with max-age=0 (the other tests' index) every page is revalidated."""
    import functools
    import http.server

    from tests.builders.upstreams import _QuietHandler

    root = tmp_path / "up"
    make_wheel(root / "files", "alpha", "1.0", requires=["beta>=1.0"])
    make_wheel(root / "files", "beta", "1.0")
    write_simple_index(root / "files", root / "simple")

    class Fresh(_QuietHandler):
        def end_headers(self) -> None:
            self.send_header("Cache-Control", "max-age=600, public")
            http.server.SimpleHTTPRequestHandler.end_headers(self)

    server = StaticServer.__new__(StaticServer)
    server._start(functools.partial(Fresh, directory=str(root)))
    try:
        app = _app(tmp_path, "web", "alpha==1.0\n")
        store = open_store(tmp_path / "store", create=True)
        first = run_sync(store, _opts([app], server))
        assert first.ok and first.resolutions_run == 1
        server.requests.clear()
        again = run_sync(store, _opts([app], server))
        assert again.ok and again.resolutions_reused == 1 and again.snapshot_id == first.snapshot_id
        assert not [r for r in server.requests if "/simple/" in r[1]], server.requests
        # Once the page is stale (here: the record says so), it is revalidated as before.
        pages = tmp_path / "store" / "cache" / "pages.json"
        import json

        doc = json.loads(pages.read_text())
        pages.write_text(json.dumps({u: [*v[:3], 0] for u, v in doc.items()}))
        server.requests.clear()
        third = run_sync(store, _opts([app], server))
        assert third.ok and third.resolutions_reused == 1
        assert [r for r in server.requests if "/simple/" in r[1]]
    finally:
        server.stop()
