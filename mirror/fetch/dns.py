"""Name lookups of our HTTP clients: one at a time per host name, each answer kept for a minute.

A run opens dozens of connections to the same few hosts at once (pages, files), and so asked the
resolver the same name dozens of times at once: a burst a site's resolver may drop. This machine's
did (40 lookups at once failed, 24 waited out glibc's 5 s retry), which read as pages that could not
be read, so resolutions that were unchanged ran again. Used by our network backend (every connection
of our clients, direct or to a proxy) and by `unknown_host`; nothing else in the process is changed:
`socket.getaddrinfo` stays the interpreter's."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

TTL = 60.0
_CACHE: dict[tuple[object, ...], tuple[float, list[Any]]] = {}
_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def resolve(host: str, port: int, family: int = 0, type: int = 0) -> list[Any]:  # noqa: A002
    """`socket.getaddrinfo(host, port, family, type)`, shared by the threads asking at the same time
    and kept for `TTL` seconds. Errors (socket.gaierror) are not kept: the next caller asks again."""
    key = (host, port, family, type)
    hit = _CACHE.get(key)
    if hit is not None and time.monotonic() - hit[0] < TTL:
        return hit[1]
    with _LOCKS_LOCK:
        lock = _LOCKS.setdefault(host, threading.Lock())
    with lock:
        hit = _CACHE.get(key)
        if hit is not None and time.monotonic() - hit[0] < TTL:
            return hit[1]
        found = socket.getaddrinfo(host, port, family, type)
        _CACHE[key] = (time.monotonic(), found)
        return found
