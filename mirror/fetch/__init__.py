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
import dataclasses
import functools
import itertools
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
    import httpcore
    import httpx

__all__ = ["Downloads", "FetchItem", "FetchReport", "fetch_all", "for_each_url", "pooled_client", "USER_AGENT", "get_bytes", "get_streaming", "get_to_file", "unknown_host"]

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
    client = httpx.Client(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=httpx.Timeout(timeout, connect=20.0),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        verify=_tls_context(),
        trust_env=True,
        auth=_host_auth(credentials or Credentials()),
    )
    _use_coalescing_backend(client, concurrency)
    return client


def _use_coalescing_backend(client: "httpx.Client", concurrency: int) -> None:
    """The client's direct transport (not its proxies': httpx makes those from the environment) on
    our network backend. httpx builds its pool with httpcore's own backend and has no setting for
    another (and a transport given to the client turns the environment's proxies off): the same
    pool, with ours. tests/test_fetch_coalescing.py fails if httpx keeps its pool otherwise."""
    import httpcore

    client._transport._pool = httpcore.ConnectionPool(  # type: ignore[attr-defined]  # noqa: SLF001
        ssl_context=_tls_context(), max_connections=concurrency, max_keepalive_connections=concurrency,
        keepalive_expiry=5.0, http1=True, http2=False, network_backend=_coalescing_backend())


@functools.cache
def _coalescing_backend() -> "httpcore.NetworkBackend":
    """httpcore's socket backend, with each read taking what the connection has already received.

    httpcore reads a response 64 KiB at a time, and over TLS a read returns one TLS record (16 KiB
    at most); each went through httpcore's and h11's events and httpx's stream, and each waited for
    the interpreter lock: 3,300 times for the 53 MB of a small app's files, while pages were parsed
    and uv's log read on other threads. A read here returns what arrived, up to 256 KiB (measured, 33
    files: 0.39-0.47 s and 0.50-0.63 s of CPU to 0.31-0.34 s and 0.40-0.45 s; a cold sync 4% faster;
    1 MiB was no faster and kept 25 MB more in flight). Only a stream read straight from its own
    socket (TCP, or TLS over TCP) is drained; TLS inside a proxy's TLS is read as httpcore reads it."""
    import httpcore

    class Stream(httpcore.NetworkStream):
        def __init__(self, inner: httpcore.NetworkStream, direct: bool) -> None:
            self._inner = inner
            sock = inner.get_extra_info("socket") if direct else None
            self._sock = sock if isinstance(sock, socket.socket) else None

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            first = self._inner.read(max_bytes, timeout)
            sock = self._sock
            if not first or sock is None:
                return first
            parts, total = [first], len(first)
            try:
                sock.settimeout(0.0)
                while total < _COALESCE:
                    more = sock.recv(_COALESCE - total)
                    if not more:
                        break  # the end: the next read says so
                    parts.append(more)
                    total += len(more)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
                pass  # all there is for now
            except OSError:
                pass  # the next read raises it, as httpcore maps it
            finally:
                with contextlib.suppress(OSError):
                    sock.settimeout(timeout)
            return first if len(parts) == 1 else b"".join(parts)

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, timeout)

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                      timeout: float | None = None) -> httpcore.NetworkStream:
            # TLS over this TCP socket is read from that socket; TLS over TLS (a proxy's) is not.
            over_tcp = self._sock is not None and not isinstance(self._sock, ssl.SSLSocket)
            return Stream(self._inner.start_tls(ssl_context, server_hostname, timeout), over_tcp)

        def get_extra_info(self, info: str) -> object:
            return self._inner.get_extra_info(info)

    class Backend(httpcore.NetworkBackend):
        def __init__(self) -> None:
            self._inner = httpcore.SyncBackend()

        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Iterable[tuple[int, int, int | bytes] | tuple[int, int, None, int]] | None = None,
                        ) -> httpcore.NetworkStream:
            return Stream(self._inner.connect_tcp(host, port, timeout, local_address, socket_options), True)

        def connect_unix_socket(self, path: str, timeout: float | None = None,
                                socket_options: Iterable[tuple[int, int, int | bytes] | tuple[int, int, None, int]] | None = None,
                                ) -> httpcore.NetworkStream:
            return Stream(self._inner.connect_unix_socket(path, timeout, socket_options), True)

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return Backend()


_COALESCE = 256 << 10


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
    client = _POOLS.get(key)  # made once, asked for by every download: no lock to find it
    if client is not None:
        return client
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
_NEXT_SHARD = itertools.count()


def _shard_client(creds: Credentials) -> "httpx.Client":
    """One of a few pooled clients for these credentials, the same for a worker thread every time:
    reused connections, and each pool's lock shared by a quarter of the workers. Shards are dealt
    to threads in turn (by `threading.get_ident() % 4` they were not: a thread's ident is the
    address of its aligned stack, so every worker had shard 0 and all shared one pool's lock)."""
    shard = getattr(_LOCAL, "shard", None)
    if shard is None:
        shard = _LOCAL.shard = next(_NEXT_SHARD) % _SHARDS
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


def unknown_host(url: str) -> str | None:
    """The host name of `url` when DNS says it does not exist (EAI_NONAME: not a resolver that timed
    out or failed for now), and the connection would not go through a proxy (which resolves names
    itself); else None. One lookup, kept with this process's others."""
    import urllib.request
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None
    if not host or parts.scheme not in ("http", "https"):
        return None
    if urllib.request.getproxies_environment() and not urllib.request.proxy_bypass_environment(host):
        return None
    _cache_name_lookups()
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        return host if _unknown_host(exc) else None
    except (OSError, UnicodeError):
        return None
    return None


def _check_status(url: str, status: int) -> None:
    if status in _RETRY_STATUS:
        raise _Retryable(f"HTTP {status}")
    if status != 200:
        raise TransportError(f"GET {redact(url)}: HTTP {status}")


def _copy_local(store: Store, item: FetchItem, on_bytes: Callable[[int], None]) -> tuple[int, str]:
    """A file:// source (an app's own package, a build): copied in with the same hash check."""
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(item.url).path)
    with store.ingest(expect=item.sha256 or None, max_size=item.size, what=item.filename,
                      source=f"{path} as resolved (it changed since?):") as blob:
        try:
            with open(path, "rb") as src:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    blob.write(chunk)
                    on_bytes(len(chunk))
        except OSError as exc:
            raise TransportError(f"{item.filename}: cannot read {path}: {exc.strerror or exc}") from exc
        return blob.size, blob.commit()


class _Stopped(Exception):
    """The run is being interrupted: a download in another thread stops at its next chunk."""


# A file this large downloads at the link's speed, not its latency's: more such downloads at once
# only share the link, while each adds a thread to the interpreter lock's queue and a writer to the
# disk. 25 wheels of 60-140 MB (1.86 GB) from PyPI here: 5.0-5.5 s two or four at a time, 7.0 s
# sixteen at a time (curl --parallel writing to the same disk: 5.0 s and 10 s).
LARGE = 4 << 20
LARGE_AT_ONCE = 4


class _SlotsBusy(Exception):
    """A large file's response came while every large slot was taken: asked for again once one frees."""


class _Slot:
    """One download's hold on a large slot (none to take when there are no slots): taken at most
    once at a time, given back by `release` or on leaving the `with`."""

    def __init__(self, slots: threading.Semaphore | None, stop: threading.Event) -> None:
        self._slots, self._stop, self.held = slots, stop, slots is None

    def take(self) -> None:
        """Wait for a slot (the run's stop ends the wait)."""
        while not self.held:
            self.held = self._slots.acquire(timeout=0.2)  # type: ignore[union-attr]
            if not self.held and self._stop.is_set():
                raise _Stopped

    def try_take(self) -> bool:
        if not self.held:
            self.held = self._slots.acquire(blocking=False)  # type: ignore[union-attr]
        return self.held

    def release(self) -> None:
        if self.held and self._slots is not None:
            self._slots.release()
            self.held = False

    def __enter__(self) -> "_Slot":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _download_one(client: "httpx.Client", store: Store, item: FetchItem, retries: int,
                  on_bytes: Callable[[int], None], stop: threading.Event,
                  large: threading.Semaphore | None = None) -> tuple[int, str]:
    """Fetch one file into the store: (its size, its sha256). A file of LARGE bytes or more (by the
    lock's size, else by Content-Length) downloads only while it holds one of the `large` slots; one
    whose size only its response tells, and that finds them all taken, gives its connection back and
    asks again once it has one (holding a response unread for minutes could time the server out)."""
    if item.url.startswith("file:"):
        return _copy_local(store, item, on_bytes)

    def fetch(slot: _Slot) -> tuple[int, str]:
        with store.ingest(expect=item.sha256 or None, max_size=item.size, what=item.filename, source="the index's") as blob:
            with client.stream("GET", item.url) as resp:
                _check_status(item.url, resp.status_code)
                if int(resp.headers.get("content-length") or 0) >= LARGE and not slot.try_take():
                    raise _SlotsBusy
                for chunk in resp.iter_raw():  # (as read: up to _COALESCE bytes at a time)
                    if stop.is_set():
                        raise _Stopped
                    blob.write(chunk)
                    on_bytes(len(chunk))
            slot.release()  # (the body is in: its fsync need not keep the next one waiting)
            sha256 = blob.commit()
            return blob.size, sha256

    def attempt() -> tuple[int, str]:
        with _Slot(large, stop) as slot:
            if (item.size or 0) >= LARGE:
                slot.take()
            while True:
                try:
                    return fetch(slot)
                except _SlotsBusy:
                    slot.take()

    return _retrying(item.url, retries, attempt, stop)


class _Retryable(Exception):
    pass


class Downloads:
    """Downloads into the store, each started as soon as it is known (`add`, from any thread) and
    waited for in batches (`wait`). A sync starts a file while uv is still resolving, as soon as
    uv picks its version, and waits for it with the others once the lock is known; `fetch_all` is
    one batch.

    A file may be started before its sha256 is known (`FetchItem.sha256` empty: uv's log names the
    file it picked, not its hash): it is hashed as it is written and kept under the hash it has;
    `wait` then takes it as the lock's file only when the hashes agree, and fetches the lock's
    otherwise. Threads (`concurrency` at a time, of which `large_at_once` for files of LARGE bytes or
    more; the callbacks are called from them). Failures are
    reported by `wait`, not raised, so one bad file does not waste the others' downloads; a full disk
    stops every download. `close` (and leaving the `with`) stops what is still running at its next
    chunk and waits for it: nothing half-written is kept."""

    def __init__(self, store: Store, *, concurrency: int = 16, retries: int = 4,
                 credentials: Credentials | None = None, on_bytes: Callable[[int], None] = lambda n: None,
                 large_at_once: int = LARGE_AT_ONCE) -> None:
        self.store = store
        self.on_bytes = on_bytes  # the caller may swap it (a sync's progress bar per phase)
        self._retries = retries
        self._credentials = credentials
        self._workers = max(1, concurrency)
        self._pool = cf.ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="fetch")
        self._warm = False
        # By sha256, or by URL for a file started before its hash was known.
        self._started: dict[str, tuple[FetchItem, cf.Future[int | MirrorError | None]]] = {}
        self._urls: dict[str, str] = {}  # URL → the key it was started under
        self._received: dict[str, int] = {}  # bytes received so far, by file (its key)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._large = threading.BoundedSemaphore(max(1, large_at_once))  # files of LARGE bytes or more, at once

    def __enter__(self) -> "Downloads":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key(self, item: FetchItem) -> str | None:
        """The key `item` was started under, if it was: its hash, or its URL."""
        if item.sha256 and item.sha256 in self._started:
            return item.sha256
        return self._urls.get(item.url)

    def add(self, item: FetchItem, on_done: Callable[[FetchItem], None] = lambda i: None) -> bool:
        """Start fetching `item` unless the store has it or it is started already (by hash or URL);
        `on_done(item)` runs in its thread once it is in, with its sha256 (or once it failed).
        True when started now."""
        with self._lock:
            if self._stop.is_set() or self._key(item) is not None:
                return False
            if item.sha256 and self.store.has_blob(item.sha256):
                return False
            if not self._warm:
                self._start_threads()
            key = self._urls[item.url] = item.sha256 or item.url
            self._started[key] = (item, self._pool.submit(self._run, item, on_done))
            return True

    def _start_threads(self) -> None:
        """Every thread started at the first download, before it: started by `submit`, each waits for
        the interpreter lock to say it is running, which the downloads already started keep for
        milliseconds at a time (py-spy found a cold APT sync's fetch spending most of its wall time
        in `Thread.start`). Not before the first: a no-op sync starts none."""
        started = threading.Barrier(self._workers + 1)
        for _ in range(self._workers):
            self._pool.submit(started.wait)  # each waits, so the next submit starts another thread
        started.wait()
        self._warm = True

    def started(self, item: FetchItem) -> bool:
        """Whether this file was started here (it may be in the store already: done)."""
        return self._key(item) is not None

    def received_for(self, item: FetchItem) -> int:
        """Bytes of this file received so far."""
        key = self._key(item)
        return self._received.get(key, 0) if key else 0

    def _run(self, item: FetchItem, on_done: Callable[[FetchItem], None]) -> int | MirrorError | None:
        key = item.sha256 or item.url

        def count(n: int) -> None:
            self._received[key] = self._received.get(key, 0) + n
            self.on_bytes(n)

        client = _shard_client(self._credentials or Credentials())  # the pool's lock was a download's longest wait
        try:
            size, sha256 = _download_one(client, self.store, item, self._retries, count, self._stop, self._large)
            outcome: int | MirrorError | None = size
            item = dataclasses.replace(item, sha256=sha256)
        except MirrorError as exc:
            outcome = exc
            if isinstance(exc, DiskFullError):
                self._stop.set()  # every later write would fail too
        except _Stopped:
            return None
        on_done(item)
        return outcome

    def wait(self, items: Iterable[FetchItem], on_done: Callable[[FetchItem], None] = lambda i: None,
             started: Callable[[], None] = lambda: None) -> FetchReport:
        """Fetch every item not in the store yet (those `add`ed before are not started again) and
        wait for them all: what was fetched, what was there, what failed. A full disk raises.
        `started()` is called once every item is started, before the wait (work to do meanwhile)."""
        report = FetchReport()
        mine: list[FetchItem] = []
        seen: set[str] = set()
        for item in items:
            if item.sha256 in seen:
                continue
            seen.add(item.sha256)
            self.add(item, on_done)
            (mine if self.started(item) else report.present).append(item)
        started()
        try:
            for item in mine:
                outcome = self._outcome(item)
                if outcome is not None and not isinstance(outcome, MirrorError) and not self.store.has_blob(item.sha256):
                    outcome = self._again(item, on_done)  # started by URL, and that URL gave another file
                elif isinstance(outcome, MirrorError) and self._started[self._key(item) or ""][0].url != item.url:
                    outcome = self._again(item, on_done)  # started from another URL (an index page's) that failed
                if outcome == "present":
                    report.present.append(item)
                elif isinstance(outcome, int):
                    # Fetched by this run (now, or when it was `add`ed): in the store, and new to it.
                    report.fetched.append(item)
                    report.bytes_fetched += outcome
                elif isinstance(outcome, MirrorError):
                    report.failed.append((item, outcome))
        except BaseException:
            self._stop.set()
            raise
        full = next((exc for _, exc in report.failed if isinstance(exc, DiskFullError)), None)
        if full is not None:
            raise full  # the store stays as it was
        return report

    def _outcome(self, item: FetchItem) -> int | MirrorError | None:
        key = self._key(item)
        return self._started[key][1].result() if key is not None else None

    def _again(self, item: FetchItem, on_done: Callable[[FetchItem], None]) -> int | MirrorError | str | None:
        """Fetch `item` itself, by its own URL and hash, after an early start that was not it."""
        if self._stop.is_set():
            return None
        with self._lock:
            self._started.pop(self._key(item) or "", None)
            self._started.pop(item.sha256, None)
            self._urls.pop(item.url, None)
        if not self.add(item, on_done):
            return "present" if self.store.has_blob(item.sha256) else None
        return self._outcome(item)

    def close(self) -> None:
        """Stop what is still downloading (nothing half-written is kept) and wait for it."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def fetch_all(items: Iterable[FetchItem], store: Store, *, concurrency: int = 16, retries: int = 4,
              on_bytes: Callable[[int], None] = lambda n: None,
              on_done: Callable[[FetchItem], None] = lambda i: None,
              credentials: Credentials | None = None, started: Callable[[], None] = lambda: None) -> FetchReport:
    """Fetch every item not yet in the store, `concurrency` at a time: one batch of `Downloads`.
    Interrupted (Ctrl-C), every download stops at its next chunk and nothing half-written is kept.
    `started()` is called once all are started (see `Downloads.wait`)."""
    items = list(items)
    with Downloads(store, concurrency=max(1, min(concurrency, len(items))), retries=retries,
                   credentials=credentials, on_bytes=on_bytes) as downloads:
        return downloads.wait(items, on_done, started)


def get_bytes(url: str, *, headers: dict[str, str] | None = None, max_bytes: int = 64 << 20,
              timeout: float = 60.0, retries: int = 3) -> bytes:
    """One small bounded GET (index pages, Release files)."""
    buf = bytearray()

    def sink() -> Callable[[bytes], None]:
        buf.clear()  # (each attempt starts over)
        return buf.extend

    get_streaming(url, sink, headers=headers, max_bytes=max_bytes, timeout=timeout, retries=retries)
    return bytes(buf)


def get_streaming(url: str, sink: Callable[[], Callable[[bytes], None]], *, headers: dict[str, str] | None = None,
                  max_bytes: int = 64 << 20, timeout: float = 60.0, retries: int = 3) -> int:
    """One bounded GET whose body is handed on as it arrives: each attempt calls `sink()` for a fresh
    consumer and feeds it every chunk (a retry starts over with a new one); → the bytes received.
    For a large index that is decompressed and parsed while it downloads."""
    client = pooled_client()

    def attempt() -> int:
        consume = sink()
        size = 0
        with client.stream("GET", url, headers=headers, timeout=timeout) as resp:
            _check_status(url, resp.status_code)
            for chunk in resp.iter_bytes(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise IntegrityError(f"GET {redact(url)}: response larger than {max_bytes} bytes")
                consume(chunk)
        return size

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
