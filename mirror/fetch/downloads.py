"""Downloading files into the store: parallel, retried, streamed, hashed while written, renamed in when
verified; large files a few at a time."""

import concurrent.futures as cf
import dataclasses
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airgap_mirror.credentials import Credentials
from airgap_mirror.errors import DiskFullError, MirrorError
from airgap_mirror.fetch.client import shard_client
from airgap_mirror.fetch.get import read_local
from airgap_mirror.fetch.retry import _check_status, _retrying
from airgap_mirror.store import Store

if TYPE_CHECKING:
    import httpx


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


def _copy_local(store: Store, item: FetchItem, on_bytes: Callable[[int], None]) -> tuple[int, str]:
    """A file:// source (an app's own package, a build): copied in with the same hash check."""
    from urllib.parse import unquote, urlsplit

    path = unquote(urlsplit(item.url).path)
    with store.ingest(expect=item.sha256 or None, max_size=item.size, what=item.filename,
                      source=f"{path} as resolved (it changed since?):") as blob:

        def take(chunk: bytes) -> None:
            blob.write(chunk)
            on_bytes(len(chunk))

        read_local(item.url, take, sys.maxsize, what=item.filename)  # (the store's ingest bounds the size)
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
                for chunk in resp.iter_raw():  # (as read: up to backend.COALESCE bytes at a time)
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

        client = shard_client(self._credentials or Credentials())  # the pool's lock was a download's longest wait
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
        # The largest first, where sizes are known: the longest downloads set the end (dash-app's lock
        # started numpy, pandas and plotly 0.1 s after the small files ahead of them by name).
        for item in sorted(items, key=lambda i: -(i.size or 0)):
            if item.sha256 in seen:
                continue
            seen.add(item.sha256)
            self.add(item, on_done)
            (mine if self.started(item) else report.present).append(item)
        started()
        try:
            for item in mine:
                outcome: int | MirrorError | str | None = self._outcome(item)
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
