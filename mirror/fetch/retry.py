"""Which failures another try may mend (timeouts, resets, 408/429/5xx), the retrying itself, and the
one translation of httpx's errors into ours."""

import random
import socket
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from airgap_mirror.errors import TransportError
from airgap_mirror.fetch.client import load_httpx
from airgap_mirror.fetch.dns import resolve
from airgap_mirror.urls import redact

T = TypeVar("T")
_RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}

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
    load_httpx()
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
    if urllib.request.getproxies_environment() and not urllib.request.proxy_bypass_environment(host):  # type: ignore[attr-defined]  # (not in typeshed)
        return None
    try:
        resolve(host, port, type=socket.SOCK_STREAM)
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



class _Retryable(Exception):
    pass
