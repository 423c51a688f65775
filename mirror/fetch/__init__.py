"""Downloading into the store: parallel, retried, streamed, hashed while written, renamed in when verified.

Step 3 of the flow.


All network I/O of the mirror passes through `pooled_client`, and its errors through `_transient`,
the one place where httpx errors are translated into our TransportError.

Files, index pages and APT indexes go over HTTP/1.1 from a pool of threads. httpx's HTTP/2 is pure
Python and handles a large response in 16 KiB frames, each through several layers of locks and
cancel scopes under asyncio, which made a fast link CPU-bound (measured on 36 files, 53 MB: 0.9 s
over HTTP/2 in asyncio, 0.4 s over HTTP/1.1 in threads, where hashing, writing and fsync also run
in parallel); index pages, up to megabytes for a project like numpy, fared the same.
"""

from __future__ import annotations

import atexit
import concurrent.futures as cf
import contextlib
import functools
import os
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from mirror import __version__
from mirror.errors import DiskFullError, IntegrityError, MirrorError, TransportError
from mirror.credentials import Credentials
from mirror.store import Store
from mirror.urls import redact

if TYPE_CHECKING:
    import httpx

__all__ = ["FetchItem", "FetchReport", "fetch_all", "for_each_url", "pooled_client", "USER_AGENT", "get_bytes", "get_to_file"]

T = TypeVar("T")
USER_AGENT = f"airgap-mirror/{__version__}"
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchItem:
    url: str
    sha256: str
    filename: str
    size: int | None = None


@dataclass(slots=True, kw_only=True)
class FetchReport:
    fetched: list[FetchItem] = field(default_factory=list)
    present: list[FetchItem] = field(default_factory=list)
    failed: list[tuple[FetchItem, MirrorError]] = field(default_factory=list)
    bytes_fetched: int = 0


def _make_client(*, concurrency: int = 16, timeout: float = 60.0,
                credentials: Credentials | None = None) -> "httpx.Client":
    """The one HTTP client configuration: HTTP/1.1, pooled, for threads (see the module's note).

    TLS trusts the system store (and SSL_CERT_FILE / SSL_CERT_DIR, as sites behind an inspecting
    proxy set them); HTTPS_PROXY / NO_PROXY are honoured. `credentials` authorise requests by
    host (a private index's files), then a netrc; httpx drops them on a redirect to another host.
    """
    import httpx  # imported here: a command that reads no network never pays for it

    _cache_name_lookups()
    return httpx.Client(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=httpx.Timeout(timeout, connect=20.0),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        verify=_tls_context(),
        trust_env=True,
        auth=_host_auth(credentials or Credentials()),
    )


_POOLS: dict[tuple[object, ...], "httpx.Client"] = {}
_POOLS_LOCK = threading.Lock()
_POOL_CONNECTIONS = 64


def pooled_client(credentials: Credentials | None = None, *, shard: int = 0) -> "httpx.Client":
    """The process's one pooled client for these credentials, shared by every phase and thread of a
    run: its connections, TLS sessions and name lookups are reused. (A client per phase opened a
    burst of new connections each time, and a burst of name lookups is what a site's resolver may
    drop: here, 40 at once failed and 24 waited out glibc's 5 s retry.) Closed at exit."""
    creds = credentials or Credentials()
    key = (frozenset(creds.by_origin.items()), creds.use_netrc, os.environ.get("SSL_CERT_FILE"),
           os.environ.get("SSL_CERT_DIR"), shard)
    with _POOLS_LOCK:
        client = _POOLS.get(key)
        if client is None:
            if not _POOLS:
                atexit.register(_close_pools)
            client = _POOLS[key] = _make_client(concurrency=_POOL_CONNECTIONS, credentials=creds)
        return client


_DNS_TTL = 60.0
_DNS: dict[tuple[object, ...], tuple[float, object]] = {}
_DNS_LOCKS: dict[object, threading.Lock] = {}
_real_getaddrinfo = socket.getaddrinfo


def _cache_name_lookups() -> None:
    """Name lookups of this process go one at a time per host name and are kept for a minute.

    A run opens dozens of connections to the same few hosts at once (pages, files), and so asked
    the resolver the same name dozens of times at once: a burst a site's resolver may drop. This
    machine's did (40 lookups at once failed, 24 waited out glibc's 5 s retry), which read as pages
    that could not be read, so resolutions that were unchanged ran again. Installed for the process
    (socket.getaddrinfo), which covers direct and proxied connections alike; uv, a process of its
    own, is not affected."""
    if socket.getaddrinfo is not _real_getaddrinfo:
        return

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: ANN001, ANN202, A002
        key = (host, port, family, type, proto, flags)
        hit = _DNS.get(key)
        if hit is not None and time.monotonic() - hit[0] < _DNS_TTL:
            return hit[1]
        with _POOLS_LOCK:
            lock = _DNS_LOCKS.setdefault(host, threading.Lock())
        with lock:
            hit = _DNS.get(key)
            if hit is not None and time.monotonic() - hit[0] < _DNS_TTL:
                return hit[1]
            found = _real_getaddrinfo(host, port, family, type, proto, flags)
            _DNS[key] = (time.monotonic(), found)
            return found

    socket.getaddrinfo = getaddrinfo


_LOCAL = threading.local()
_WORKERS: cf.ThreadPoolExecutor | None = None


def for_each_url(urls: Iterable[str], one: Callable[["httpx.Client", str], None], *,
                 credentials: Credentials | None = None, concurrency: int = 32) -> None:
    """`one(client, url)` for every URL, `concurrency` at a time, on the process's page workers, each
    of which keeps to one of a few shared clients. Many short requests through one pool spent their
    time waiting on its lock (httpcore hands out connections under one lock, polling every idle
    socket each time): re-reading the corpus's 918 pages, 324 of 499 thread-seconds. A client per
    worker ended that but cost a new client and connection per page for a small app (its no-op
    resync's page reads took 0.55-1.0 s instead of 0.4)."""
    global _WORKERS
    urls = list(dict.fromkeys(urls))
    if not urls:
        return
    with _POOLS_LOCK:
        if _WORKERS is None:
            _WORKERS = cf.ThreadPoolExecutor(max_workers=64, thread_name_prefix="pages")
    creds = credentials or Credentials()
    pending: set[cf.Future[None]] = set()
    for url in urls:
        if len(pending) >= concurrency:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in done:
                fut.result()
        pending.add(_WORKERS.submit(lambda u: one(_shard_client(creds), u), url))
    for fut in cf.as_completed(pending):
        fut.result()


_SHARDS = 4


def _shard_client(creds: Credentials) -> "httpx.Client":
    """One of a few pooled clients for these credentials, the same for a worker thread every time:
    reused connections, and each pool's lock shared by a quarter of the workers."""
    shard = getattr(_LOCAL, "shard", None)
    if shard is None:
        shard = _LOCAL.shard = threading.get_ident() % _SHARDS
    return pooled_client(creds, shard=shard)


def _close_pools() -> None:
    with _POOLS_LOCK:
        for client in _POOLS.values():
            with contextlib.suppress(Exception):
                client.close()
        _POOLS.clear()


def _tls_context() -> ssl.SSLContext:
    """The system's trust store (and SSL_CERT_FILE / SSL_CERT_DIR), loaded once a process while
    those stay the same: loading it costs some 50 ms, and a sync makes a client per phase and per
    APT index."""
    return _tls_context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.lru_cache(maxsize=4)
def _tls_context_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return ssl.create_default_context()


def _host_auth(credentials: Credentials) -> "httpx.Auth":
    import httpx

    class HostAuth(httpx.Auth):
        def auth_flow(self, request: "httpx.Request"):  # type: ignore[override]
            found = credentials.for_url(str(request.url))
            if found is not None and "Authorization" not in request.headers:
                request.headers["Authorization"] = httpx.BasicAuth(*found)._auth_header
            yield request

    return HostAuth()


def _retrying(url: str, retries: int, attempt_once: Callable[[], T], stop: threading.Event | None = None) -> T:
    """Run one GET attempt, retrying transient failures (timeouts, resets, 408/429/5xx) with
    backoff; a set `stop` ends the waiting between tries."""
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            return attempt_once()
        except Exception as exc:  # noqa: BLE001 (sorted by _transient: ours pass through, httpx's become TransportError)
            last = _transient(url, exc)
        if attempt < retries:
            delay = min(30.0, 0.5 * 2**attempt) * (0.5 + random.random())
            if stop is None:
                time.sleep(delay)
            elif stop.wait(delay):
                break
    raise TransportError(f"GET {redact(url)}: {last} (after {retries + 1} tries)") from last


def _transient(url: str, exc: Exception) -> Exception:
    """`exc` when another try may succeed (timeouts, resets, 408/429/5xx); raises otherwise, httpx's
    errors as TransportError and ours (IntegrityError, DiskFullError ...) untouched."""
    import httpx

    if isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, _Retryable)):
        if _unknown_host(exc):  # the name does not exist: asking again in a second will not change that
            raise TransportError(f"GET {redact(url)}: {exc}") from exc
        return exc
    if isinstance(exc, httpx.HTTPError):
        raise TransportError(f"GET {redact(url)}: {exc}") from exc
    raise exc


def _unknown_host(exc: BaseException) -> bool:
    """A DNS answer that the name does not exist (EAI_NONAME), not a temporary resolver failure."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, socket.gaierror) and seen.errno == socket.EAI_NONAME:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _check_status(url: str, status: int) -> None:
    if status in _RETRY_STATUS:
        raise _Retryable(f"HTTP {status}")
    if status != 200:
        raise TransportError(f"GET {redact(url)}: HTTP {status}")


def _copy_local(store: Store, item: FetchItem, on_bytes: Callable[[int], None]) -> int:
    """A file:// source (an app's own package, a build): copied in with the same hash check."""
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(item.url).path)
    with store.ingest(expect=item.sha256, max_size=item.size, what=item.filename,
                      source=f"{path} as resolved (it changed since?):") as blob:
        try:
            with open(path, "rb") as src:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    blob.write(chunk)
                    on_bytes(len(chunk))
        except OSError as exc:
            raise TransportError(f"{item.filename}: cannot read {path}: {exc.strerror or exc}") from exc
        blob.commit()
        return blob.size


class _Stopped(Exception):
    """The run is being interrupted: a download in another thread stops at its next chunk."""


def _download_one(client: "httpx.Client", store: Store, item: FetchItem, retries: int,
                  on_bytes: Callable[[int], None], stop: threading.Event) -> int:
    if item.url.startswith("file:"):
        return _copy_local(store, item, on_bytes)

    def attempt() -> int:
        with store.ingest(expect=item.sha256, max_size=item.size, what=item.filename, source="the index's") as blob:
            with client.stream("GET", item.url) as resp:
                _check_status(item.url, resp.status_code)
                for chunk in resp.iter_raw(1 << 20):
                    if stop.is_set():
                        raise _Stopped
                    blob.write(chunk)
                    on_bytes(len(chunk))
            blob.commit()
            return blob.size

    return _retrying(item.url, retries, attempt, stop)


class _Retryable(Exception):
    pass


def fetch_all(items: Iterable[FetchItem], store: Store, *, concurrency: int = 16, retries: int = 4,
              on_bytes: Callable[[int], None] = lambda n: None,
              on_done: Callable[[FetchItem], None] = lambda i: None,
              credentials: Credentials | None = None) -> FetchReport:
    """Fetch every item not yet in the store, `concurrency` at a time (threads; the callbacks are
    called from them). Failures are reported, not raised, so one bad file does not waste the others'
    downloads; a full disk stops the run. Interrupted (Ctrl-C), every download stops at its next
    chunk and nothing half-written is kept."""
    report = FetchReport()
    todo: list[FetchItem] = []
    seen: set[str] = set()
    for item in items:
        if item.sha256 in seen:
            continue
        seen.add(item.sha256)
        (report.present if store.has_blob(item.sha256) else todo).append(item)
    if not todo:
        return report
    stop, lock = threading.Event(), threading.Lock()

    def run(client: "httpx.Client", item: FetchItem) -> None:
        try:
            n = _download_one(client, store, item, retries, on_bytes, stop)
        except MirrorError as exc:
            with lock:
                report.failed.append((item, exc))
            if isinstance(exc, DiskFullError):
                stop.set()  # every later write would fail too
        except _Stopped:
            return
        else:
            with lock:
                report.fetched.append(item)
                report.bytes_fetched += n
        on_done(item)

    workers = max(1, min(concurrency, len(todo)))
    client = pooled_client(credentials)
    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fetch") as pool:
        futures = [pool.submit(run, client, item) for item in todo]
        try:
            for fut in futures:
                fut.result()
        except BaseException:
            stop.set()
            raise
    full = next((exc for _, exc in report.failed if isinstance(exc, DiskFullError)), None)
    if full is not None:
        raise full  # the store stays as it was
    return report


def get_bytes(url: str, *, headers: dict[str, str] | None = None, max_bytes: int = 64 << 20,
              timeout: float = 60.0, retries: int = 3) -> bytes:
    """One small bounded GET (index pages, Release files)."""
    client = pooled_client()

    def attempt() -> bytes:
        with client.stream("GET", url, headers=headers, timeout=timeout) as resp:
            _check_status(url, resp.status_code)
            buf = bytearray()
            for chunk in resp.iter_bytes():
                buf += chunk
                if len(buf) > max_bytes:
                    raise IntegrityError(f"GET {redact(url)}: response larger than {max_bytes} bytes")
            return bytes(buf)

    return _retrying(url, retries, attempt)


def get_to_file(url: str, dest: "os.PathLike[str] | str", *, timeout: float = 300.0, retries: int = 3,
                max_bytes: int = 8 << 30) -> int:
    """Stream one URL to `dest` (a package named by URL); credentials in the URL authorise it only."""
    from mirror.credentials import Credentials as _C
    from mirror.urls import strip_credentials

    client = pooled_client(_C.from_urls([url]))

    def attempt() -> int:
        size = 0
        with open(dest, "wb") as fh:
            with client.stream("GET", strip_credentials(url), timeout=timeout) as resp:
                _check_status(url, resp.status_code)
                for chunk in resp.iter_raw(1 << 16):
                    fh.write(chunk)
                    size += len(chunk)
                    if size > max_bytes:
                        raise IntegrityError(f"GET {redact(url)}: larger than {max_bytes} bytes")
        return size

    return _retrying(url, retries, attempt)
