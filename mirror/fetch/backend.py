"""Our network backend for httpcore: each read takes what the connection has already received, and
names are looked up through `dns.resolve` (one at a time per name, kept a minute).

httpcore reads a response 64 KiB at a time, and over TLS a read returns one TLS record (16 KiB at
most); each went through httpcore's and h11's events and httpx's stream, and each waited for the
interpreter lock: 3,300 times for the 53 MB of a small app's files, while pages were parsed and uv's
log read on other threads. A read here returns what arrived, up to 256 KiB (measured, 33 files:
0.39-0.47 s and 0.50-0.63 s of CPU to 0.31-0.34 s and 0.40-0.45 s; a cold sync 4% faster; 1 MiB was
no faster and kept 25 MB more in flight). Only a stream read straight from its own socket (TCP, or
TLS over TCP) is drained; TLS inside a proxy's TLS is read as httpcore reads it.

Imported by the client when the first one is made (httpcore is not loaded by a command that reads no
network)."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterable

import httpcore

from airgap_mirror.fetch.dns import resolve

COALESCE = 256 << 10


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
            while total < COALESCE:
                more = sock.recv(COALESCE - total)
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

_SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]

class Backend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[_SocketOption] | None = None,
                    ) -> httpcore.NetworkStream:
        # The name through our lookups (dns.resolve: one at a time per name, kept a minute), then
        # each address in turn, as socket.create_connection would.
        try:
            addresses = list(dict.fromkeys(str(info[4][0]) for info in resolve(host, port, type=socket.SOCK_STREAM)))
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        options = list(socket_options or ())
        last: Exception | None = None
        for address in addresses:
            try:
                return Stream(self._inner.connect_tcp(address, port, timeout, local_address, options), True)
            except httpcore.ConnectError as exc:
                last = exc
        raise last or httpcore.ConnectError(f"{host}: no address")

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[_SocketOption] | None = None,
                            ) -> httpcore.NetworkStream:
        return Stream(self._inner.connect_unix_socket(path, timeout, socket_options), True)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)
