"""Single bounded GETs: index pages, Release files and APT indexes (streamed to a parser), a package named by URL."""

import os
from collections.abc import Callable

from airgap_mirror.errors import IntegrityError
from airgap_mirror.fetch.client import pooled_client
from airgap_mirror.fetch.retry import _check_status, _retrying
from airgap_mirror.urls import redact


def get_bytes(url: str, *, headers: dict[str, str] | None = None, max_bytes: int = 64 << 20,
              timeout: float = 60.0, retries: int = 3) -> bytes:
    """One small bounded GET (index pages, Release files)."""
    buf = bytearray()

    def sink() -> Callable[[bytes], None]:
        buf.clear()  # (each attempt starts over)
        return buf.extend

    get_streaming(url, sink, headers=headers, max_bytes=max_bytes, timeout=timeout, retries=retries)
    return bytes(buf)


def read_local(url: str, consume: Callable[[bytes], None], max_bytes: int, *, what: str | None = None) -> int:
    """A `file://` URL (a path the admin named: an app's own package, an Aptfile's local .deb or
    repository), read in chunks with the same bound as a download; `what` names it in an error."""
    from urllib.parse import unquote, urlsplit

    from airgap_mirror.errors import TransportError

    path = unquote(urlsplit(url).path)
    size = 0
    try:
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                size += len(chunk)
                if size > max_bytes:
                    raise IntegrityError(f"{path}: larger than {max_bytes} bytes")
                consume(chunk)
    except OSError as exc:
        raise TransportError(f"{what + ': ' if what else ''}cannot read {path}: {exc.strerror or exc}") from exc
    return size


def get_streaming(url: str, sink: Callable[[], Callable[[bytes], None]], *, headers: dict[str, str] | None = None,
                  max_bytes: int = 64 << 20, timeout: float = 60.0, retries: int = 3) -> int:
    """One bounded GET whose body is handed on as it arrives: each attempt calls `sink()` for a fresh
    consumer and feeds it every chunk (a retry starts over with a new one); → the bytes received.
    For a large index that is decompressed and parsed while it downloads. A `file://` URL is read
    from the local disk (the caller has checked that the path is one the admin may name)."""
    if url.startswith("file://"):
        return read_local(url, sink(), max_bytes)
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
    from airgap_mirror.credentials import Credentials as _C
    from airgap_mirror.urls import strip_credentials

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
