"""The embedded HTTP server for the published tree: PEP 691 negotiation, HEAD, Range, ETag/304, gzip.

Step 6 of the flow.


It serves whatever `published/current` points at when each request arrives, so a republish is
picked up without a restart and a request in flight finishes on the tree it started on. The tree
is plain files: nginx or any static host can serve it instead (scripts/nginx.conf).
"""

from __future__ import annotations

import email.utils
import os
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import canonicalize_name

from mirror.store.names import UnsafePath, safe_join
from mirror.publish.simple import HTML_TYPE, JSON_TYPE

__all__ = ["MirrorServer", "make_server", "negotiate"]

_JSON_TYPES = (JSON_TYPE, "application/vnd.pypi.simple.latest+json")
_HTML_TYPES = (HTML_TYPE, "application/vnd.pypi.simple.latest+html", "text/html")
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8", ".json": "application/json", ".whl": "application/octet-stream",
    ".metadata": "text/plain; charset=utf-8", ".gz": "application/gzip", ".xz": "application/x-xz",
    ".deb": "application/vnd.debian.binary-package", ".toml": "text/plain; charset=utf-8",
    ".lock": "text/plain; charset=utf-8", ".asc": "text/plain; charset=utf-8", ".gpg": "application/pgp-keys",
    ".zip": "application/zip",
}
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


def negotiate(accept: str | None, fmt: str | None = None) -> str | None:
    """The simple-API content type to send, per PEP 691; None means 406 Not Acceptable."""
    if fmt:
        return fmt if fmt in (*_JSON_TYPES, *_HTML_TYPES) else None
    if not accept:
        return "text/html"
    best: tuple[float, int, str] | None = None
    for order, item in enumerate(accept.split(",")):
        parts = [p.strip() for p in item.split(";")]
        media = parts[0].lower()
        q = 1.0
        for param in parts[1:]:
            if param.startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if media in _JSON_TYPES:
            chosen = JSON_TYPE
        elif media in _HTML_TYPES:
            chosen = media if media == "text/html" else HTML_TYPE
        elif media in ("*/*", "application/*", "text/*"):
            chosen = "text/html"
        else:
            continue
        key = (q, -order, chosen)
        if best is None or key[:2] > best[:2]:
            best = key
    return best[2] if best else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        # An idle or stalled connection is closed after the server's idle timeout, freeing its thread.
        self.timeout = self.server.idle_timeout
        super().setup()
    # Headers and body go out in separate writes: with Nagle's algorithm the body of a small page
    # waits for the client's delayed ACK of the headers (40 ms on Linux) on a kept-alive connection.
    disable_nagle_algorithm = True
    server: "MirrorServer"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        if self.server.access_log:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _error(self, status: HTTPStatus, message: str = "") -> None:
        body = (message or status.phrase).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        # Never request bytes in a header as they came: CR/LF would split the response.
        self.send_response(HTTPStatus.MOVED_PERMANENTLY)
        self.send_header("Location", quote(location, safe="/-._~!$&'()*+,;=:@"))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _serve(self, head: bool) -> None:
        try:
            self._serve_path(head)
        except (OSError, RuntimeError, ValueError):  # a name too long, a symlink loop: nothing to serve
            self.close_connection = True
            self._error(HTTPStatus.NOT_FOUND)

    def _query(self, key: str) -> str | None:
        """A query parameter, `+` kept as `+` (clients send ?format=...v1+json unencoded)."""
        for item in urlsplit(self.path).query.split("&"):
            k, _, v = item.partition("=")
            if unquote(k) == key:
                return unquote(v)
        return None

    def _serve_path(self, head: bool) -> None:
        tree = self.server.tree()
        if tree is None:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE, "nothing published yet: run `mirror publish`")
        split = urlsplit(self.path)
        raw_path = unquote(split.path)
        parts = [p for p in raw_path.split("/") if p]
        try:
            target = safe_join(tree, *parts) if parts else tree
        except UnsafePath:
            return self._error(HTTPStatus.NOT_FOUND)
        vary = False
        content_type: str | None = None
        if parts and parts[0] == "simple" and len(parts) <= 2:
            if len(parts) == 2 and canonicalize_name(parts[1]) != parts[1]:
                return self._redirect(f"/simple/{canonicalize_name(parts[1])}/")
            if not raw_path.endswith("/"):
                return self._redirect(raw_path + "/")
            fmt = self._query("format")
            content_type = negotiate(self.headers.get("Accept"), fmt)
            vary = True
            if content_type is None:
                return self._error(HTTPStatus.NOT_ACCEPTABLE, f"acceptable: {JSON_TYPE}, {HTML_TYPE}, text/html")
            target = target / ("index.json" if content_type in _JSON_TYPES else "index.html")
        elif target.is_dir():
            if not raw_path.endswith("/"):
                return self._redirect(raw_path + "/")
            target = target / "index.html"
        # The tree is ours, but a symlink in it must not lead out of it (to /etc/passwd).
        real = Path(os.path.realpath(target))
        if real != tree and tree not in real.parents:
            return self._error(HTTPStatus.NOT_FOUND)
        self._send_file(target, head=head, content_type=content_type, vary=vary)

    def _send_file(self, path: Path, *, head: bool, content_type: str | None, vary: bool) -> None:
        encoding = None
        accept_enc = self.headers.get("Accept-Encoding", "")
        gz = path.with_name(path.name + ".gz")
        if "gzip" in accept_enc and "Range" not in self.headers and gz.is_file() and path.suffix in (".html", ".json"):
            path, encoding = gz, "gzip"
        try:
            fh = open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return self._error(HTTPStatus.NOT_FOUND)
        with fh:
            st = os.fstat(fh.fileno())
            if not content_type:
                content_type = _CONTENT_TYPES.get(Path(path.name).suffix, "application/octet-stream")
            elif content_type == "text/html":
                content_type = "text/html; charset=utf-8"
            etag = f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}{"-gz" if encoding else ""}"'
            last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
            inm = self.headers.get("If-None-Match")
            if inm and (inm.strip() == "*" or etag in [t.strip() for t in inm.split(",")]):
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.send_header("ETag", etag)
                if vary:
                    self.send_header("Vary", "Accept, Accept-Encoding")
                self.end_headers()
                return
            start, end = 0, st.st_size - 1
            status = HTTPStatus.OK
            rng = self.headers.get("Range")
            if rng and encoding is None:
                m = _RANGE.match(rng.strip())
                # An invalid range (5-2) is ignored, as RFC 9110 says: the whole file, 200.
                if m and (m.group(1) or m.group(2)) and not (m.group(1) and m.group(2) and int(m.group(2)) < int(m.group(1))):
                    if m.group(1):
                        start = int(m.group(1))
                        end = min(int(m.group(2)), st.st_size - 1) if m.group(2) else st.st_size - 1
                    else:
                        start = max(0, st.st_size - int(m.group(2)))
                    if start > end or start >= st.st_size:
                        self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                        self.send_header("Content-Range", f"bytes */{st.st_size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = HTTPStatus.PARTIAL_CONTENT
            length = end - start + 1 if st.st_size else 0
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.send_header("Accept-Ranges", "bytes")
            if vary:
                self.send_header("Vary", "Accept, Accept-Encoding")
            elif path.suffix in (".html", ".json"):
                self.send_header("Vary", "Accept-Encoding")
            if encoding:
                self.send_header("Content-Encoding", encoding)
            if status == HTTPStatus.PARTIAL_CONTENT:
                self.send_header("Content-Range", f"bytes {start}-{end}/{st.st_size}")
            self.end_headers()
            if head or length == 0:
                return
            self.wfile.flush()
            try:
                self.connection.sendfile(fh, offset=start, count=length)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True


class MirrorServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], published: Path, *, access_log: bool = False,
                 idle_timeout: float = 30.0) -> None:
        self.published = Path(published)
        self.access_log = access_log
        self.idle_timeout = idle_timeout
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def tree(self) -> Path | None:
        link = self.published / "current"
        try:
            resolved = link.resolve(strict=True)
        except (FileNotFoundError, RuntimeError):
            return None
        return resolved if resolved.is_dir() else None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


def make_server(published: Path, host: str = "127.0.0.1", port: int = 8080, *, access_log: bool = False,
                idle_timeout: float = 30.0) -> MirrorServer:
    return MirrorServer((host, port), published, access_log=access_log, idle_timeout=idle_timeout)
