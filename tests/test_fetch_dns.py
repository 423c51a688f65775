"""Name lookups of our clients go once per host name for a burst of connections (a site's resolver
may drop a burst), through our network backend: the process's socket.getaddrinfo is left alone."""

from __future__ import annotations

import http.server
import socket
import threading

from airgap_mirror.fetch import dns, for_each_url


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # every request a new connection, so a new lookup each time without the cache
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_burst_of_connections_looks_the_name_up_once(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    asked: list[str] = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        asked.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(dns.socket, "getaddrinfo", counting)
    monkeypatch.setattr(dns, "_CACHE", {})  # (what an earlier test looked up)
    host = "localhost"
    try:
        got: list[int] = []
        for_each_url([f"http://{host}:{server.server_address[1]}/{i}" for i in range(40)],
                     lambda client, url: got.append(client.get(url).status_code), concurrency=16)
        assert got == [200] * 40
        assert asked.count(host) == 1
    finally:
        server.shutdown()
        server.server_close()


def test_nothing_of_the_process_is_changed_by_loading_the_mirror():
    """The name lookups and the slim httpx import are seams of our own: after a command's imports and
    a client made, socket.getaddrinfo is the interpreter's and no stand-in module is left."""
    import subprocess
    import sys

    code = ("import socket, sys; lookup = socket.getaddrinfo\n"
            "import airgap_mirror, airgap_mirror.cli, airgap_mirror.sync\n"
            "from airgap_mirror.fetch.client import load_httpx, pooled_client\n"
            "load_httpx(); import httpx; pooled_client()\n"
            "assert socket.getaddrinfo is lookup, 'getaddrinfo replaced'\n"
            "assert 'httpx._main' not in sys.modules, 'stand-in left in sys.modules'\n"
            "assert 'pygments' not in sys.modules, 'httpx CLI loaded'\n"
            "assert httpx.Client is not None\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
