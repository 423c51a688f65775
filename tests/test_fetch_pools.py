"""The process's shared HTTP clients: worker threads are spread over a few pools, so that no one
pool's lock is waited on by every download and page read at once."""

from __future__ import annotations

import concurrent.futures as cf
import threading

from airgap_mirror.credentials import Credentials
from airgap_mirror.fetch.client import SHARDS, shard_client


def test_worker_threads_are_dealt_every_shard_and_keep_theirs():
    creds = Credentials()
    barrier = threading.Barrier(2 * SHARDS)  # every thread alive at once: no ident reused

    def clients() -> tuple[int, int]:
        barrier.wait()
        return id(shard_client(creds)), id(shard_client(creds))

    with cf.ThreadPoolExecutor(max_workers=2 * SHARDS) as pool:
        got = list(pool.map(lambda _: clients(), range(2 * SHARDS)))
    assert all(first == again for first, again in got)  # a thread keeps its client
    assert len({first for first, _ in got}) == SHARDS   # and the threads use all of them
