"""The standard library's threaded HTTP server in front of the same answers as granian's (`make_server`):
a server with no worker processes, for tests and small sites."""

from __future__ import annotations

import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

from .accesslog import access_line
from .app import App, Response
from .auth import Auth


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm the body of a small page
    # waits for the client's delayed ACK of the headers (40 ms on Linux) on a kept-alive connection.
    disable_nagle_algorithm = True
    server: MirrorServer

    def setup(self) -> None:
        # An idle or stalled connection is closed after the server's idle timeout, freeing its thread.
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)

    def handle(self) -> None:
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):  # a client that does not trust us, or speaks plain HTTP
                self.close_connection = True
                return
        super().handle()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # the access log (combined format) is written by _log

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_POST(self) -> None:
        self._serve(head=False)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_POST

    def _serve(self, head: bool) -> None:
        app = self.server.app
        app.metrics.begin()
        sent = 0
        resp = Response(500)
        try:
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                resp = app.handle(self.command, self.path, headers, scheme=self.server.scheme,
                                  host=self.headers.get("Host"), client=self.client_address[0])
            except (OSError, RuntimeError, ValueError):  # a name too long, a symlink loop: nothing to serve
                self.close_connection = True
                resp = Response(404, [("Content-Type", "text/plain; charset=utf-8")], b"not found\n")
            sent = self._send(resp, head)
        finally:
            app.observe(resp, sent)
            self._log(resp, sent)

    def _send(self, resp: Response, head: bool) -> int:
        self.send_response_only(resp.status)
        self.send_header("Server", "airgap-mirror")
        self.send_header("Date", self.date_time_string())
        for k, v in resp.headers:
            self.send_header(k, v)
        if resp.status != 304:
            self.send_header("Content-Length", str(resp.size))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if head or self.command == "HEAD" or resp.status == 304 or resp.size == 0:
            return 0
        try:
            if resp.file is None:
                self.wfile.write(resp.body)
                return len(resp.body)
            with open(resp.file, "rb") as fh:
                self.wfile.flush()
                sent: int = self.connection.sendfile(fh, offset=resp.start, count=resp.length)
                return sent
        except (BrokenPipeError, ConnectionResetError, FileNotFoundError, ssl.SSLError):
            self.close_connection = True
            return 0

    def _log(self, resp: Response, sent: int) -> None:
        out = self.server.access_log
        if out is None:
            return
        line = access_line(self.client_address[0], resp.user, self.requestline, resp.status, sent,
                           self.headers.get("Referer"), self.headers.get("User-Agent"))
        with self.server.log_lock:
            out.write(line)
            out.flush()


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], published: Path, *, access_log: IO[str] | None = None,
                 idle_timeout: float = 30.0, tls: ssl.SSLContext | None = None, auth: Auth | None = None,
                 url: str | None = None) -> None:
        self.published = Path(published)
        self.access_log = access_log
        self.log_lock = threading.Lock()
        self.idle_timeout = idle_timeout
        self.tls = tls
        self.scheme = "https" if tls else "http"
        self.app = App(self.published, auth=auth, url=url)
        super().__init__(address, _Handler)
        if tls is not None:
            # The handshake runs on the connection's own thread (do_handshake in the handler), so a
            # slow or hostile client never holds up the accept loop.
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)

    def tree(self) -> Path | None:
        return self.app.tree()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"{self.scheme}://{host.decode() if isinstance(host, bytes) else host}:{port}"


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context from PEM files (the certificate with its chain, and the key); TLS 1.2 at least."""
    from airgap_mirror.errors import ConfigError

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"TLS: cannot use certificate {cert} with key {key}: {exc}") from exc
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def make_server(published: Path, host: str = "127.0.0.1", port: int = 8080, *, access_log: IO[str] | bool | None = None,
                idle_timeout: float = 30.0, tls: ssl.SSLContext | None = None, auth: Auth | None = None,
                url: str | None = None) -> MirrorServer:
    log = sys.stderr if access_log is True else (access_log or None)
    return MirrorServer((host, port), published, access_log=log, idle_timeout=idle_timeout, tls=tls, auth=auth,
                        url=url)
