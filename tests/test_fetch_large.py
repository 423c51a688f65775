"""Large files download a few at a time (airgap_mirror.fetch.LARGE, `large_at_once`), small ones as many
at once as the concurrency allows: from a real HTTP server on loopback that counts the large bodies
it is sending at each moment, with the files' sizes known from the lock or only from the response's
Content-Length (a response that finds every slot taken is given back and asked for again)."""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time

import pytest

from airgap_mirror.fetch import Downloads, FetchItem
from airgap_mirror.fetch import downloads as fetch
from airgap_mirror.store import open_store

LARGE = {f"/large-{i}.whl": os.urandom(fetch.LARGE + 4096) for i in range(8)}
SMALL = {f"/small-{i}.whl": os.urandom(600) for i in range(6)}
CHUNK = 256 << 10


class _Counting(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.sending = 0  # large bodies being sent now (past their first chunks: the client is reading)
        self.most = 0
        self.given_back = 0  # large responses the client closed before their body was read
        self.small_at_once = 0
        self.small_most = 0


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Counting

    def do_GET(self) -> None:  # noqa: N802
        large = self.path in LARGE
        body = LARGE[self.path] if large else SMALL[self.path]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        srv = self.server
        if not large:
            with srv.lock:
                srv.small_at_once += 1
                srv.small_most = max(srv.small_most, srv.small_at_once)
            time.sleep(0.05)  # (long enough for the others to be asked meanwhile)
            self.wfile.write(body)
            with srv.lock:
                srv.small_at_once -= 1
            return
        counted = False
        try:
            for i, at in enumerate(range(0, len(body), CHUNK)):
                if i:
                    time.sleep(0.03)
                self.wfile.write(body[at:at + CHUNK])
                self.wfile.flush()
                if i == 1:  # a client that gave the response back has closed by now: the write above failed
                    with srv.lock:
                        srv.sending += 1
                        srv.most = max(srv.most, srv.sending)
                    counted = True
        except (BrokenPipeError, ConnectionResetError):
            with srv.lock:
                srv.given_back += 1
            self.close_connection = True
        finally:
            if counted:
                with srv.lock:
                    srv.sending -= 1

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    srv = _Counting()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


@pytest.mark.parametrize("size_known", [True, False], ids=["size-from-the-lock", "size-from-content-length"])
def test_large_files_download_a_few_at_a_time_small_ones_alongside(server, tmp_path, size_known):
    srv, url = server
    store = open_store(tmp_path / "s", create=True)
    items = [FetchItem(url=url + path, sha256=hashlib.sha256(body).hexdigest(), filename=path[1:],
                       size=len(body) if size_known else None) for path, body in [*LARGE.items(), *SMALL.items()]]
    done: list[FetchItem] = []
    with Downloads(store, concurrency=16, large_at_once=2) as downloads:
        report = downloads.wait(items, on_done=done.append)
    assert not report.failed and len(report.fetched) == len(items)
    assert sorted(i.filename for i in done) == sorted(i.filename for i in items)
    for item in items:
        assert hashlib.sha256(store.blob_path(item.sha256).read_bytes()).hexdigest() == item.sha256
    assert srv.most == 2, f"{srv.most} large bodies were sent at once"
    if size_known:
        assert srv.given_back == 0  # a size the lock gives waits for its slot before asking
    else:
        assert srv.given_back >= 1  # found every slot taken, gave the response back, asked again (and is in)
    assert srv.small_most >= 3, "the small files did not download alongside the large ones"


def test_a_download_waiting_for_a_large_slot_stops_when_the_run_stops(server, tmp_path):
    srv, url = server
    store = open_store(tmp_path / "s", create=True)
    downloads = Downloads(store, concurrency=8, large_at_once=1)
    for path, body in list(LARGE.items())[:4]:
        downloads.add(FetchItem(url=url + path, sha256=hashlib.sha256(body).hexdigest(), filename=path[1:], size=len(body)))
    time.sleep(0.2)  # one is downloading, the others wait for its slot
    started = time.monotonic()
    downloads.close()
    assert time.monotonic() - started < 5
    assert not any(store.tmp.iterdir()), "a half-written download was kept"
