"""What the server answers, apart from how bytes reach the socket: routes, PEP 691 negotiation,
auth, caching headers, /health, /metrics and the front page. `App.handle` turns a request into a
`Response` (a body, or a file with a byte range); the HTTP layer (airgap_mirror.serve) sends it.

Caching: project pages, the APT indexes that change (Release, InRelease, Packages) and locks get a
short `Cache-Control` (30 s, so a client sees a new import within a minute; pip 26.2 caches simple
pages by it) and a strong ETag from their content; distribution files, `.metadata` and by-hash
paths never change under their names and are `immutable` for a year.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from packaging.utils import canonicalize_name

from airgap_mirror import logs
from airgap_mirror.publish import layout
from airgap_mirror.publish.layout import _CONTENT_TYPES, LONG_CACHE, SHORT_CACHE
from airgap_mirror.publish.simple import HTML_TYPE, JSON_TYPE
from airgap_mirror.store.names import UnsafePath, safe_join

from .auth import REALM, Auth
from .front import epoch, front_page

_log = logs.get(__name__)

__all__ = ["App", "Response", "negotiate", "SHORT_CACHE", "LONG_CACHE"]

_JSON_TYPES = (JSON_TYPE, "application/vnd.pypi.simple.latest+json")
_HTML_TYPES = (HTML_TYPE, "application/vnd.pypi.simple.latest+html", "text/html")
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_KEEP_BYTES = 256 << 10  # pages up to this size are kept in memory, per worker ...
_KEEP_TOTAL = 64 << 20  # ... up to this much in all
_KEEP_FILE = 64 << 10  # and immutable files up to this size (PEP 658 .metadata: asked for as often as pages)


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


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    file: Path | None = None  # send this file's bytes [start, start + length) instead of body
    start: int = 0
    length: int = 0
    route: str = "other"
    user: str = "-"

    @property
    def size(self) -> int:
        return self.length if self.file is not None else len(self.body)


class _Metrics:
    """Prometheus metrics through prometheus_client (its registry, collectors and text format).
    With several worker processes (`multiprocess`), its multiprocess mode sums them at scrape."""

    def __init__(self, multiprocess: bool = False) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.multiprocess = multiprocess
        self.registry = CollectorRegistry()
        self.requests = Counter("airgap_mirror_http_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self.sent = Counter("airgap_mirror_http_response_bytes", "Body bytes sent, by route", ["route"],
                            registry=self.registry)
        self.in_flight = Gauge("airgap_mirror_http_requests_in_flight", "Requests being answered now",
                               registry=self.registry, multiprocess_mode="livesum")
        # Counted in plain ints, handed to prometheus_client at most once a second and at each
        # scrape: its per-update cost (a lock, and a file write with several workers) was as much
        # as answering the request.
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._bytes: dict[str, int] = {}
        self._active = 0
        self._next_flush = 0.0
        self._flusher: threading.Thread | None = None

    def begin(self) -> None:
        with self._lock:
            self._active += 1
            if self._flusher is None:  # a worker that goes quiet still reports within a second
                self._flusher = threading.Thread(target=self._flush_every_second, name="metrics", daemon=True)
                self._flusher.start()

    def _flush_every_second(self) -> None:
        while True:
            time.sleep(1.0)
            self.flush()

    def end(self, route: str, status: int, sent: int) -> None:
        key = (route, str(status))
        with self._lock:
            self._active -= 1
            self._counts[key] = self._counts.get(key, 0) + 1
            if sent:
                self._bytes[route] = self._bytes.get(route, 0) + sent
            now = time.monotonic()
            due = now >= self._next_flush
            if due:
                self._next_flush = now + 1.0
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            sent, self._bytes = self._bytes, {}
            for (route, status), n in counts.items():
                self.requests.labels(route, status).inc(n)
            for route, n in sent.items():
                self.sent.labels(route).inc(n)
            self.in_flight.set(self._active)

    def scrape(self, status: dict[str, Any] | None, intact: bool) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import GaugeMetricFamily

        self.flush()
        if self.multiprocess:
            from prometheus_client import multiprocess

            counters = CollectorRegistry()
            multiprocess.MultiProcessCollector(counters)  # type: ignore[no-untyped-call]  # (untyped in prometheus_client)
        else:
            counters = self.registry

        class Tree:
            def collect(self) -> Iterator[GaugeMetricFamily]:
                yield GaugeMetricFamily("airgap_mirror_tree_intact", "1 when the published tree is present and whole",
                                        value=1 if intact else 0)
                if status is not None:
                    created, published = epoch(status.get("created")), epoch(status.get("published"))
                    if created is not None:
                        yield GaugeMetricFamily("airgap_mirror_snapshot_age_seconds",
                                                "Age of the served snapshot (since it was made)", value=time.time() - created)
                    if published is not None:
                        yield GaugeMetricFamily("airgap_mirror_last_publish_timestamp_seconds",
                                                "When the served tree was published (Unix time)", value=published)

        tree = CollectorRegistry()
        tree.register(Tree())
        return generate_latest(counters) + generate_latest(tree)


class App:
    def __init__(self, published: Path, *, auth: Auth | None = None, url: str | None = None,
                 multiprocess: bool = False) -> None:
        self.published = Path(published)
        self.auth = auth
        self.url = url.rstrip("/") if url else None
        self.metrics = _Metrics(multiprocess)
        self._lock = threading.Lock()
        # A published tree never changes once switched in (a publish builds a new one), so what a
        # path resolves to in a tree (file, size, ETag, headers) is looked up once per tree.
        self._trees: dict[str, Path] = {}
        self._entries: dict[tuple[Path, str, str | None, bool], _Entry] = {}
        # The same, by the request as it came (the tree's link, the target, Accept, Accept-Encoding,
        # whether a Range was asked): a path asked for again skips parsing, negotiation and the
        # path's checks (as much again as the rest of answering it). Not with auth: every request
        # is checked.
        self._hot: dict[tuple[str, str, str | None, str | None, bool], _Entry] = {}
        self._current = os.path.join(self.published, "current")
        self._kept = 0  # bytes of pages kept in memory

    # -- the tree ------------------------------------------------------------------------------
    def tree(self) -> Path | None:
        """The tree `published/current` points at now (one readlink a request: a publish switches it)."""
        try:
            target = os.readlink(self._current)
        except OSError:
            return None
        return self._tree(target)

    def _tree(self, target: str) -> Path | None:
        tree = self._trees.get(target)
        if tree is None:
            try:
                resolved = (self.published / "current").resolve(strict=True)
            except (FileNotFoundError, RuntimeError, OSError):
                return None
            if not resolved.is_dir():
                return None
            with self._lock:
                if len(self._trees) > 64:
                    self._trees.clear()
                    self._entries.clear()
                    self._hot.clear()
                    self._kept = 0
                self._trees[target] = tree = resolved
        return tree

    def served(self) -> tuple[Path | None, dict[str, Any] | None, bool]:
        """(the tree now, what its snapshot.json says, whether it is intact) for /health, /metrics, /."""
        tree = self.tree()
        if tree is None:
            return None, None, False
        try:
            doc = json.loads((tree / "snapshot.json").read_text())
        except (OSError, ValueError):
            return tree, None, False
        if not (isinstance(doc, dict) and isinstance(doc.get("id"), str)):
            return tree, None, False
        return tree, doc, (tree / "simple" / "index.html").is_file()

    # -- a request -----------------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Mapping[str, str], *, scheme: str = "http",
               host: str | None = None, client: str | None = None) -> Response:
        if method not in ("GET", "HEAD"):
            return self._text(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: GET and HEAD only\n",
                              extra=[("Allow", "GET, HEAD")])
        hot = None
        if self.auth is None:
            try:
                link = os.readlink(self._current)
            except OSError:
                link = None
            if link is not None:
                hot = (link, target, headers.get("accept"), headers.get("accept-encoding"), "range" in headers)
                entry = self._hot.get(hot)
                if entry is not None and entry.intact():
                    return entry.response(headers)
        split = urlsplit(target)
        raw_path = unquote(split.path)
        if raw_path == "/health":  # for load balancers, without credentials: the details only with them
            return self._health(detail=self.auth is None or self.auth.check(headers.get("authorization"), client) is not None)
        user = "-"
        if self.auth is not None:
            wait = self.auth.retry_after(client) if headers.get("authorization") else None  # (over its limit before this one)
            who = self.auth.check(headers.get("authorization"), client)
            if who is None and wait is not None:
                return self._text(HTTPStatus.TOO_MANY_REQUESTS, "too many wrong passwords from this address: wait and "
                                  "check the credentials\n", route="denied", extra=[("Retry-After", str(wait))])
            if who is None:
                return self._text(HTTPStatus.UNAUTHORIZED, "authentication required\n", route="denied",
                                  extra=[("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"'),
                                         ("WWW-Authenticate", f'Bearer realm="{REALM}"')])
            user = who
        if raw_path == "/metrics":
            resp = self._metrics()
        elif raw_path in ("/", "/index.html"):
            resp = self._front(scheme, host)
        else:
            resp = self._tree_path(raw_path, split.query, headers, hot)
        resp.user = user
        if self.auth is not None:  # what a user fetched is not for a shared cache
            resp.headers = [(k, _private(v)) if k == "Cache-Control" else (k, v) for k, v in resp.headers]
        return resp

    def observe(self, resp: Response, sent: int) -> None:
        self.metrics.end(resp.route, resp.status, sent)

    # -- routes --------------------------------------------------------------------------------
    def _text(self, status: int, text: str, *, route: str = "other", ctype: str = "text/plain; charset=utf-8",
              extra: list[tuple[str, str]] | None = None, cache: str = "no-store") -> Response:
        body = text.encode("utf-8")
        return Response(int(status), [("Content-Type", ctype), ("Cache-Control", cache), *(extra or [])], body,
                        route=route)

    def _health(self, *, detail: bool = True) -> Response:
        """Whether the tree is served whole; with `detail` (no auth configured, or the request's
        credentials), what it serves: snapshot, times, the last import (its bundle, signer, site)."""
        tree, status, intact = self.served()
        now = time.time()
        doc: dict[str, Any] = {"status": "ok" if intact else "unavailable", "tree": "intact" if intact else
                               ("missing" if tree is None else "broken")}
        if status is not None and detail:
            doc.update(snapshot=status["id"], snapshot_created=status.get("created"), published=status.get("published"),
                       last_import=status.get("last_import"))
            created = epoch(status.get("created"))
            if created is not None:
                doc["snapshot_age_seconds"] = int(now - created)
        code = HTTPStatus.OK if intact else HTTPStatus.SERVICE_UNAVAILABLE
        return self._text(code, json.dumps(doc, indent=1) + "\n", route="health", ctype="application/json")

    def _metrics(self) -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        _, status, intact = self.served()
        return self._text(HTTPStatus.OK, self.metrics.scrape(status, intact).decode(), route="metrics",
                          ctype=CONTENT_TYPE_LATEST)

    def _front(self, scheme: str, host: str | None) -> Response:
        tree, status, _ = self.served()
        base = self.url or (f"{scheme}://{host}" if host else "")
        page = front_page(status, base, tree, self.published.parent)
        # Built from the request's Host when no URL is configured: a cache must key it by Host too.
        return self._text(HTTPStatus.OK, page, route="front", ctype="text/html; charset=utf-8", cache=SHORT_CACHE,
                          extra=[] if self.url else [("Vary", "Host")])

    def _tree_path(self, raw_path: str, query: str, headers: Mapping[str, str],
                   hot: tuple[str, str, str | None, str | None, bool] | None = None) -> Response:
        tree = self._tree(hot[0]) if hot is not None else self.tree()
        if tree is None:
            return self._text(HTTPStatus.SERVICE_UNAVAILABLE, "nothing published yet: run `mirror publish`\n")
        parts = [p for p in raw_path.split("/") if p]
        route = parts[0] if parts and parts[0] in ("simple", "debian", "locks", "packages", "conda") else "other"
        content_type: str | None = None
        if route == "simple" and len(parts) <= 2:
            if len(parts) == 2 and canonicalize_name(parts[1]) != parts[1]:
                return _redirect(f"/simple/{canonicalize_name(parts[1])}/", route)
            if not raw_path.endswith("/"):
                return _redirect(raw_path + "/", route)
            content_type = negotiate(headers.get("accept"), _query(query, "format"))
            if content_type is None:
                return self._text(HTTPStatus.NOT_ACCEPTABLE, f"acceptable: {JSON_TYPE}, {HTML_TYPE}, text/html\n", route=route)
        gzip_ok = "gzip" in (headers.get("accept-encoding") or "") and "range" not in headers
        key = (tree, raw_path, content_type, gzip_ok)
        entry = self._entries.get(key)
        if entry is not None and not entry.intact():
            with self._lock:  # put back by `verify --repair` (another inode): what was kept is the damage
                self._kept -= len(entry.body or b"")
            entry = None
        if entry is None:
            found = self._resolve(tree, parts, raw_path, route, content_type, gzip_ok)
            if isinstance(found, Response):
                return found
            entry = found
            with self._lock:
                if len(self._entries) > 100_000:
                    self._entries.clear()
                    self._hot.clear()
                    self._kept = 0
                self._entries[key] = entry
        if hot is not None:
            with self._lock:
                if len(self._hot) > 100_000:  # (Accept headers are the client's: as many as it likes)
                    self._hot.clear()
                self._hot[hot] = entry
        return entry.response(headers)

    def _resolve(self, tree: Path, parts: list[str], raw_path: str, route: str, content_type: str | None,
                 gzip_ok: bool) -> _Entry | Response:
        """What a path is in a tree: a file with its headers, or a redirect or 404 (not kept)."""
        try:
            target = safe_join(tree, *parts) if parts else tree
        except UnsafePath:
            return self._text(HTTPStatus.NOT_FOUND, "not found\n", route=route)
        vary = None
        if content_type is not None:
            vary = "Accept, Accept-Encoding"
            target = target / ("index.json" if content_type in _JSON_TYPES else "index.html")
        elif target.is_dir():
            if not raw_path.endswith("/"):
                return _redirect(raw_path + "/", route)
            target = target / "index.html"
        # The tree is ours, but a symlink in it must not lead out of it (to /etc/passwd).
        real = Path(os.path.realpath(target))
        if real != tree and tree not in real.parents:
            return self._text(HTTPStatus.NOT_FOUND, "not found\n", route=route)
        path, encoding = target, None
        gz = target.with_name(target.name + ".gz")
        if gzip_ok and target.suffix in (".html", ".json") and gz.is_file():
            path, encoding = gz, "gzip"
        try:
            st = os.stat(path)
        except OSError:
            return self._text(HTTPStatus.NOT_FOUND, "not found\n", route=route)
        if not os.path.isfile(path):
            return self._text(HTTPStatus.NOT_FOUND, "not found\n", route=route)
        if not content_type:
            content_type = ("application/json" if parts[:1] == ["pypi"] and target.name == "json"  # PyPI's JSON API
                            else layout.INTEGRITY_JSON if parts[:1] == ["integrity"] and target.name == "provenance"
                            else _CONTENT_TYPES.get(Path(target.name).suffix, "application/octet-stream"))
        elif content_type == "text/html":
            content_type = "text/html; charset=utf-8"
        immutable = layout.immutable(target.relative_to(tree).as_posix())
        # A page is read once per tree: kept in memory when small, and its ETag is its content's
        # hash (the same page in a new tree keeps its ETag: a revalidation after a publish that did
        # not change it is a 304). Files never change under their names: their stat will do; a small
        # one (a .metadata) is kept too, sent from memory rather than opened for every request.
        body = None
        if immutable:
            etag = f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'
            if st.st_size <= _KEEP_FILE and self._kept + st.st_size <= _KEEP_TOTAL:
                with open(path, "rb") as fh:
                    data = fh.read(_KEEP_FILE + 1)
                if len(data) == st.st_size:
                    body = data
                    self._kept += st.st_size
        else:
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                chunks = []
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
                    if st.st_size <= _KEEP_BYTES:
                        chunks.append(chunk)
            etag = f'"{h.hexdigest()[:32]}"'
            data = b"".join(chunks)
            if st.st_size <= _KEEP_BYTES and len(data) == st.st_size and self._kept + st.st_size <= _KEEP_TOTAL:
                body = data
                self._kept += st.st_size
        if encoding:
            etag = etag[:-1] + '-gz"'
        common = [("ETag", etag), ("Cache-Control", ("public, " + LONG_CACHE) if immutable else SHORT_CACHE),
                  ("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))]
        if vary:
            common.append(("Vary", vary))
        elif target.suffix in (".html", ".json"):
            common.append(("Vary", "Accept-Encoding"))
        head = [("Content-Type", content_type), ("Accept-Ranges", "bytes")]
        if encoding:
            head.append(("Content-Encoding", encoding))
        return _Entry(path=path, size=st.st_size, etag=etag, common=tuple(common), head=tuple(head), route=route,
                      ranges=encoding is None, body=body,
                      ident=(st.st_ino, st.st_size, st.st_mtime_ns) if immutable else None)


@dataclass(frozen=True, slots=True)
class _Entry:
    """A file of a published tree as served: its headers worked out once."""

    path: Path
    size: int
    etag: str
    common: tuple[tuple[str, str], ...]  # ETag, Cache-Control, Last-Modified, Vary (also on a 304)
    head: tuple[tuple[str, str], ...]  # Content-Type, Accept-Ranges, Content-Encoding
    route: str
    ranges: bool
    body: bytes | None = None  # a page's bytes, kept: small, and asked for all day
    # A file's (inode, size, mtime), checked each request (one stat): a file does not change under
    # its name, but `verify --repair` puts a damaged one back from its blob in the tree served.
    ident: tuple[int, int, int] | None = None

    def intact(self) -> bool:
        """Whether the file is still the one this entry was made of (a page's entry has nothing to
        check; an immutable file's inode, size and mtime, one stat)."""
        return self.ident is None or _ident(self.path) == self.ident

    def response(self, headers: Mapping[str, str]) -> Response:
        # (statuses as ints: an HTTPStatus member is an enum lookup, asked of every request answered here)
        inm = headers.get("if-none-match")
        if inm and (inm.strip() == "*" or self.etag in [t.strip() for t in inm.split(",")]):
            return Response(304, list(self.common), route=self.route)
        rng = headers.get("range") if self.ranges else None
        if rng:
            m = _RANGE.match(rng.strip())
            # An invalid range (5-2) is ignored, as RFC 9110 says: the whole file, 200.
            if m and (m.group(1) or m.group(2)) and not (m.group(1) and m.group(2) and int(m.group(2)) < int(m.group(1))):
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), self.size - 1) if m.group(2) else self.size - 1
                else:
                    start, end = max(0, self.size - int(m.group(2))), self.size - 1
                if start > end or start >= self.size:
                    return Response(416,
                                    [("Content-Range", f"bytes */{self.size}")], route=self.route)
                return Response(206, [*self.head, *self.common,
                                                             ("Content-Range", f"bytes {start}-{end}/{self.size}")],
                                file=self.path, start=start, length=end - start + 1, route=self.route)
        if self.body is not None:
            return Response(200, [*self.head, *self.common], self.body, route=self.route)
        return Response(200, [*self.head, *self.common], file=self.path, length=self.size, route=self.route)


def _ident(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _private(value: str) -> str:
    value = value.removeprefix("public, ")
    return value if value == "no-store" else "private, " + value


def _redirect(location: str, route: str) -> Response:
    # Never request bytes in a header as they came: CR/LF would split the response.
    return Response(HTTPStatus.MOVED_PERMANENTLY, [("Location", quote(location, safe="/-._~!$&'()*+,;=:@"))],
                    route=route)


def _query(query: str, key: str) -> str | None:
    """A query parameter, `+` kept as `+` (clients send ?format=...v1+json unencoded)."""
    for item in query.split("&"):
        k, _, v = item.partition("=")
        if unquote(k) == key:
            return unquote(v)
    return None
