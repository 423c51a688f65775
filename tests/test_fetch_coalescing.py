"""Downloads read what a connection has received in one go (airgap_mirror.fetch's network backend), over
real TLS (a throwaway CA) and plain TCP from a local server: the same bytes, responses one after
another on one kept-alive connection, and reads of more than one TLS record each."""

from __future__ import annotations

import hashlib
import http.server
import os
import ssl
import threading

import pytest

from airgap_mirror.fetch import client as fetch
from airgap_mirror.fetch.backend import COALESCE
from tests.builders.tls import ca_and_cert

BIG = os.urandom(5 << 20)
SMALL = b"small body\n"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # kept alive: the next response follows on the same connection

    def do_GET(self) -> None:  # noqa: N802
        body = BIG if self.path == "/big" else SMALL
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=["https", "http"])
def server(request, tmp_path, monkeypatch):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    scheme = request.param
    if scheme == "https":
        ca, cert, key = ca_and_cert(tmp_path / "tls")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the client's trust: this CA alone
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"{scheme}://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=10)


def test_responses_arrive_whole_one_after_another_on_one_connection(server):
    client = fetch.pooled_client(shard=7)  # a client of this test's own (its trust is this server's CA)
    try:
        for path, body in [("/big", BIG), ("/small", SMALL), ("/big", BIG), ("/small", SMALL)]:
            got = client.get(server + path)
            assert got.status_code == 200 and hashlib.sha256(got.content).digest() == hashlib.sha256(body).digest()
        with client.stream("GET", server + "/big") as resp:
            streamed = b"".join(resp.iter_raw())
        assert streamed == BIG
        assert len(client._transport._pool.connections) == 1  # noqa: SLF001  (kept alive, reused each time)
    finally:
        with fetch._POOLS_LOCK:  # noqa: SLF001
            for key in [k for k, c in fetch._POOLS.items() if c is client]:  # noqa: SLF001
                del fetch._POOLS[key]  # noqa: SLF001
        client.close()


def test_a_read_takes_more_than_one_tls_record(server):
    """The backend itself: a 5 MiB response comes in reads of up to 256 KiB, not of one TLS record
    (16 KiB) or httpcore's 64 KiB, and the bytes are the server's."""
    import httpcore

    host, port = server.split("://")[1].split(":")
    backend = fetch._coalescing_backend()  # noqa: SLF001
    stream = backend.connect_tcp(host, int(port), timeout=10)
    if server.startswith("https"):
        stream = stream.start_tls(fetch._tls_context(), server_hostname=host, timeout=10)  # noqa: SLF001
    stream.write(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout=10)
    reads, data = [], b""
    while chunk := stream.read(64 * 1024, timeout=10):
        reads.append(len(chunk))
        data += chunk
    stream.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == BIG
    assert max(reads) > 64 * 1024 and max(reads) <= COALESCE + 64 * 1024  # noqa: SLF001
    assert len(reads) < len(data) // (16 * 1024)
    assert isinstance(stream, httpcore.NetworkStream)


def test_the_shared_clients_use_that_backend_and_still_the_environments_proxies(monkeypatch):
    """httpx has no setting for it: the transport's pool is replaced. An httpx that changes how its
    transport keeps its pool fails here, not silently slower; and a site's HTTPS_PROXY / NO_PROXY
    still route requests (a transport handed to httpx.Client would have turned them off)."""
    import httpx

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "mirror.internal")
    import socket

    lookup = socket.getaddrinfo
    client = fetch._make_client()  # noqa: SLF001
    assert socket.getaddrinfo is lookup  # nothing of the process changed: our lookups are our clients'
    try:
        assert client._transport._pool._network_backend is fetch._coalescing_backend()  # noqa: SLF001
        via = client._transport_for_url(httpx.URL("https://pypi.org/simple/"))  # noqa: SLF001
        assert via is not client._transport and "proxy.internal" in repr(via._pool._proxy_url)  # noqa: SLF001
        assert via._pool._network_backend is fetch._coalescing_backend()  # (name lookups kept for the proxy too)  # noqa: SLF001
        assert client._transport_for_url(httpx.URL("https://mirror.internal/simple/")) is client._transport  # noqa: SLF001
    finally:
        client.close()
