"""Downloading into the store: parallel, retried, streamed, hashed while written, renamed in when verified.

Step 3 of the flow.


All network I/O of the mirror passes through `make_client`, the one seam where httpx errors are
translated into our TransportError.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from mirror import __version__
from mirror.errors import DiskFullError, IntegrityError, MirrorError, TransportError
from mirror.credentials import Credentials
from mirror.store import Store
from mirror.urls import redact

if TYPE_CHECKING:
    import httpx

__all__ = ["FetchItem", "FetchReport", "fetch_all", "make_client", "USER_AGENT", "get_bytes", "get_to_file"]

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


def make_client(*, concurrency: int = 16, timeout: float = 60.0,
                credentials: Credentials | None = None) -> "httpx.AsyncClient":
    """The one HTTP client configuration: HTTP/2, pooled.

    TLS trusts the system store (and SSL_CERT_FILE / SSL_CERT_DIR, as sites behind an inspecting
    proxy set them); HTTPS_PROXY / NO_PROXY are honoured. `credentials` authorise requests by
    host (a private index's files), then a netrc; httpx drops them on a redirect to another host.
    """
    import httpx  # imported here: a no-op sync never pays for it

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(
        http2=True,
        limits=limits,
        timeout=httpx.Timeout(timeout, connect=20.0),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
        verify=ssl.create_default_context(),
        trust_env=True,
        auth=_host_auth(credentials or Credentials()),
    )


def _host_auth(credentials: Credentials) -> "httpx.Auth":
    import httpx

    class HostAuth(httpx.Auth):
        def auth_flow(self, request: "httpx.Request"):  # type: ignore[override]
            found = credentials.for_url(str(request.url))
            if found is not None and "Authorization" not in request.headers:
                request.headers["Authorization"] = httpx.BasicAuth(*found)._auth_header
            yield request

    return HostAuth()


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(min(30.0, 0.5 * 2**attempt) * (0.5 + random.random()))


async def _retrying(url: str, retries: int, attempt_once: Callable[[], Awaitable[T]]) -> T:
    """Run one GET attempt, retrying transient failures (timeouts, resets, 408/429/5xx) with backoff.

    The seam where httpx errors become TransportError; IntegrityError passes through untouched.
    """
    import httpx

    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            return await attempt_once()
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError, _Retryable) as exc:
            if _unknown_host(exc):  # the name does not exist: asking again in a second will not change that
                raise TransportError(f"GET {redact(url)}: {exc}") from exc
            last = exc
            if attempt < retries:
                await _backoff(attempt)
        except httpx.HTTPError as exc:
            raise TransportError(f"GET {redact(url)}: {exc}") from exc
    raise TransportError(f"GET {redact(url)}: {last} (after {retries + 1} tries)") from last


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


async def _download_one(client: "httpx.AsyncClient", store: Store, item: FetchItem, retries: int,
                        on_bytes: Callable[[int], None]) -> int:
    if item.url.startswith("file:"):
        return await asyncio.to_thread(_copy_local, store, item, on_bytes)

    async def attempt() -> int:
        with store.ingest(expect=item.sha256, max_size=item.size, what=item.filename, source="the index's") as blob:
            async with client.stream("GET", item.url) as resp:
                _check_status(item.url, resp.status_code)
                async for chunk in resp.aiter_raw(1 << 16):
                    blob.write(chunk)
                    on_bytes(len(chunk))
            blob.commit()
            return blob.size

    return await _retrying(item.url, retries, attempt)


class _Retryable(Exception):
    pass


async def _fetch_all(items: list[FetchItem], store: Store, concurrency: int, retries: int,
                     on_bytes: Callable[[int], None], on_done: Callable[[FetchItem], None],
                     credentials: Credentials | None) -> FetchReport:
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
    sem = asyncio.Semaphore(concurrency)
    async with make_client(concurrency=concurrency, credentials=credentials) as client:

        async def run(item: FetchItem) -> None:
            async with sem:
                try:
                    n = await _download_one(client, store, item, retries, on_bytes)
                except MirrorError as exc:
                    report.failed.append((item, exc))
                else:
                    report.fetched.append(item)
                    report.bytes_fetched += n
                on_done(item)

        await asyncio.gather(*(run(i) for i in todo))
    full = next((exc for _, exc in report.failed if isinstance(exc, DiskFullError)), None)
    if full is not None:
        raise full  # every later write would fail too: stop the run, the store stays as it was
    return report


def fetch_all(items: Iterable[FetchItem], store: Store, *, concurrency: int = 16, retries: int = 4,
              on_bytes: Callable[[int], None] = lambda n: None,
              on_done: Callable[[FetchItem], None] = lambda i: None,
              credentials: Credentials | None = None) -> FetchReport:
    """Fetch every item not yet in the store. Failures are reported, not raised, so one bad file
    does not waste the others' downloads."""
    return asyncio.run(_fetch_all(list(items), store, concurrency, retries, on_bytes, on_done, credentials))


def get_bytes(url: str, *, headers: dict[str, str] | None = None, max_bytes: int = 64 << 20,
              timeout: float = 60.0, retries: int = 3) -> bytes:
    """One small bounded GET (index pages, Release files)."""

    async def go() -> bytes:
        async with make_client(concurrency=2, timeout=timeout) as client:

            async def attempt() -> bytes:
                async with client.stream("GET", url, headers=headers) as resp:
                    _check_status(url, resp.status_code)
                    buf = bytearray()
                    async for chunk in resp.aiter_bytes():
                        buf += chunk
                        if len(buf) > max_bytes:
                            raise IntegrityError(f"GET {redact(url)}: response larger than {max_bytes} bytes")
                    return bytes(buf)

            return await _retrying(url, retries, attempt)

    return asyncio.run(go())


def get_to_file(url: str, dest: "os.PathLike[str] | str", *, timeout: float = 300.0, retries: int = 3,
                max_bytes: int = 8 << 30) -> int:
    """Stream one URL to `dest` (a package named by URL); credentials in the URL authorise it only."""
    from mirror.credentials import Credentials as _C
    from mirror.urls import strip_credentials

    creds = _C.from_urls([url])

    async def go() -> int:
        async with make_client(concurrency=2, timeout=timeout, credentials=creds) as client:

            async def attempt() -> int:
                size = 0
                with open(dest, "wb") as fh:
                    async with client.stream("GET", strip_credentials(url)) as resp:
                        _check_status(url, resp.status_code)
                        async for chunk in resp.aiter_raw(1 << 16):
                            fh.write(chunk)
                            size += len(chunk)
                            if size > max_bytes:
                                raise IntegrityError(f"GET {redact(url)}: larger than {max_bytes} bytes")
                return size

            return await _retrying(url, retries, attempt)

    return asyncio.run(go())
