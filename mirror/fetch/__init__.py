"""Downloading into the store: parallel, retried, streamed, hashed while written, renamed in when verified.

Step 3 of the flow.


All network I/O of the mirror passes through `pooled_client`, and its errors through `_transient`,
the one place where httpx errors are translated into our TransportError.

Files, index pages and APT indexes go over HTTP/1.1 from a pool of threads. httpx's HTTP/2 is pure
Python and handles a large response in 16 KiB frames, each through several layers of locks and
cancel scopes under asyncio, which made a fast link CPU-bound (measured on 36 files, 53 MB: 0.9 s
over HTTP/2 in asyncio, 0.4 s over HTTP/1.1 in threads, where hashing, writing and fsync also run
in parallel); index pages, up to megabytes for a project like numpy, fared the same.

The package's parts: `client` (the HTTP clients and pools), `dns` (name lookups, kept a minute),
`retry` (what is tried again), `downloads` (files into the store), `get` (single bounded GETs).
"""

from airgap_mirror.fetch.client import USER_AGENT, for_each_url, pooled_client
from airgap_mirror.fetch.downloads import Downloads, FetchItem, FetchReport, fetch_all
from airgap_mirror.fetch.get import get_bytes, get_streaming, get_to_file
from airgap_mirror.fetch.retry import unknown_host

__all__ = ["Downloads", "FetchItem", "FetchReport", "fetch_all", "for_each_url", "pooled_client", "USER_AGENT",
           "get_bytes", "get_streaming", "get_to_file", "unknown_host"]
