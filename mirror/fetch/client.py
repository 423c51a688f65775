"""The process's HTTP clients: one configuration (HTTP/1.1, pooled, for threads, TLS from the system's
store, credentials by host), our network backend under it, and the few shared pools every phase uses."""

import atexit
import concurrent.futures as cf
import functools
import itertools
import os
import ssl
import threading
import types
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING

from airgap_mirror import __version__, logs
from airgap_mirror.credentials import Credentials

if TYPE_CHECKING:
    import httpcore
    import httpx

_log = logs.get(__name__)

USER_AGENT = f"airgap-mirror/{__version__}"


def load_httpx() -> None:
    """Import httpx without its command-line tool: what our code calls before its `import httpx`.

    httpx's package imports its CLI whenever click is installed (granian, our server, brings it), and
    with it pygments' lexers and rich's syntax module: some 50 ms of every command that downloads,
    for a tool the mirror never runs. While httpx is first imported here, a stand-in answers for
    `httpx._main`; it is gone from `sys.modules` as soon as that import is done, so nothing else in
    the process sees it (`httpx.main` is the stand-in's, which says so)."""
    import sys

    if "httpx" in sys.modules:
        return
    stub = types.ModuleType("httpx._main", "httpx's command line, not loaded by airgap-mirror")

    def main() -> None:
        raise SystemExit("httpx's command line is not loaded inside airgap-mirror")

    stub.main = main  # type: ignore[attr-defined]
    placed = sys.modules.setdefault("httpx._main", stub) is stub
    try:
        import httpx  # noqa: F401
    finally:
        if placed and sys.modules.get("httpx._main") is stub:
            del sys.modules["httpx._main"]

def _make_client(*, concurrency: int = 16, timeout: float = 60.0,
                credentials: Credentials | None = None) -> "httpx.Client":
    """The one HTTP client configuration: HTTP/1.1, pooled, for threads (see the module's note).

    TLS trusts the system store (and SSL_CERT_FILE / SSL_CERT_DIR, as sites behind an inspecting
    proxy set them); HTTPS_PROXY / NO_PROXY are honoured. `credentials` authorise requests by
    host (a private index's files), then a netrc; httpx drops them on a redirect to another host.
    """
    load_httpx()  # imported here: a command that reads no network never pays for it
    import httpx

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
    """The client's transports on our network backend: the direct one, and the proxies' that httpx
    makes from the environment (HTTPS_PROXY ...). httpx builds its pools with httpcore's own backend
    and has no setting for another (and a transport given to the client turns the environment's
    proxies off): the same pool, with ours; each proxy's pool is given ours too. This client's, not
    the process's: nothing outside it changes. tests/test_fetch_coalescing.py fails if httpx keeps
    its pool otherwise."""
    import httpcore

    client._transport._pool = httpcore.ConnectionPool(  # type: ignore[attr-defined]  # noqa: SLF001
        ssl_context=_tls_context(), max_connections=concurrency, max_keepalive_connections=concurrency,
        keepalive_expiry=5.0, http1=True, http2=False, network_backend=_coalescing_backend())
    for transport in client._mounts.values():  # noqa: SLF001
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.ConnectionPool):
            pool._network_backend = _coalescing_backend()  # noqa: SLF001


@functools.cache
def _coalescing_backend() -> "httpcore.NetworkBackend":
    """The process's one network backend (fetch.backend: reads that take what has arrived, our name
    lookups)."""
    from airgap_mirror.fetch.backend import Backend

    return Backend()




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
        pending.add(_WORKERS.submit(lambda u: one(shard_client(creds), u), url))
    for fut in cf.as_completed(pending):
        fut.result()


SHARDS = 4
_NEXT_SHARD = itertools.count()


def shard_client(creds: Credentials) -> "httpx.Client":
    """One of a few pooled clients for these credentials, the same for a worker thread every time:
    reused connections, and each pool's lock shared by a quarter of the workers. Shards are dealt
    to threads in turn (by `threading.get_ident() % 4` they were not: a thread's ident is the
    address of its aligned stack, so every worker had shard 0 and all shared one pool's lock)."""
    shard = getattr(_LOCAL, "shard", None)
    if shard is None:
        shard = _LOCAL.shard = next(_NEXT_SHARD) % SHARDS
    return pooled_client(creds, shard=shard)


def warm_clients() -> None:
    """The trust store loaded and the download clients made (for no credentials, as a public index's
    downloads ask for them), ahead of the first download: 50-60 ms that were the first files' wait,
    every download thread queued behind the one making the client."""
    load_httpx()
    _tls_context()
    for shard in range(SHARDS):
        pooled_client(Credentials(), shard=shard)


def _close_pools() -> None:
    with _POOLS_LOCK:
        for client in _POOLS.values():
            try:
                client.close()
            except Exception:  # noqa: BLE001  (at exit: nothing more to do with it)
                _log.debug("closing an HTTP client at exit failed", exc_info=True)
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
    load_httpx()
    import httpx

    class HostAuth(httpx.Auth):
        def auth_flow(self, request: "httpx.Request") -> "Generator[httpx.Request, httpx.Response, None]":
            found = credentials.for_url(str(request.url))
            if found is not None and "Authorization" not in request.headers:
                request.headers["Authorization"] = httpx.BasicAuth(*found)._auth_header
            yield request

    return HostAuth()
