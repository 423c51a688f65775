"""A published tree on S3-compatible object storage, for a fleet of static servers or a CDN.

    mirror publish --to s3://BUCKET/PREFIX

uploads the tree `mirror publish` built, in stages (airgap_mirror.publish.layout): distributions and
.debs first (content-named, never overwritten), then .metadata and by-hash files, then project
pages and locks, then the /simple/ root and APT Packages, then the signed Release files, and
snapshot.json last. A client never reads a page before every file it names is there. Only what
changed is sent; an object the new tree no longer has is retired, and deleted only once it has been
retired for the grace period (a client mid-install keeps its files).

    PREFIX/...                          the tree (pages as index.html / index.json: a bucket does not
                                        negotiate), plus find-links.html for pip/uv on a bare bucket
    PREFIX/.airgap-mirror/state.json    what the last complete publish left: every object's sha256,
                                        size and ETag; retired objects and since when

What changed is found from that state alone when the last publish completed (no request per object,
no listing); a publish marks the state `interrupted` before it changes anything, so after one was cut
off (or with --check) the prefix is listed in full: pages it may have half-written are sent again,
content-named files already there are skipped, and strays are retired like any other object.

Transfers: obstore (Rust's object_store: async, no GIL, parallel multipart uploads). Endpoint,
region and credentials: boto3's own resolution (AWS_* variables, ~/.aws/config and credentials,
profiles, SSO, instance roles), handed to obstore; nothing of them is written anywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airgap_mirror.errors import ConfigError, IntegrityError, TransportError
from airgap_mirror.publish.layout import Stage, cache_control, classify, content_type

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

__all__ = ["Target", "parse_grace", "publish_tree", "bucket_state", "verify_bucket", "PublishReport",
           "BucketReport", "STATE_KEY"]

STATE_KEY = ".airgap-mirror/state.json"
_STATE_FORMAT = 1
_HEX64 = re.compile(r"[0-9a-f]{64}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_MULTIPART = 64 << 20  # a file larger than this goes up in parts, in parallel (smaller: one PUT, as rclone does)
_CHUNK = 16 << 20
_IN_FLIGHT = 256 << 20  # a single PUT is read into memory first: at most this much at once


@dataclass(frozen=True, slots=True)
class Target:
    bucket: str
    prefix: str = ""  # no leading or trailing slash

    @classmethod
    def parse(cls, url: str) -> Target:
        m = re.fullmatch(r"s3://([^/]+)(?:/(.*))?", url.strip())
        if not m or not _BUCKET.fullmatch(m[1]):
            raise ConfigError(f"publish target {url!r}: write it as s3://BUCKET or s3://BUCKET/PREFIX "
                              "(a bucket name: 3-63 lower-case letters, digits, dots, hyphens)")
        prefix = (m[2] or "").strip("/")
        if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
            raise ConfigError(f"publish target {url!r}: the prefix must be plain path segments (no //, . or ..)")
        return cls(m[1], prefix)

    def key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def parse_grace(text: str) -> timedelta:
    """`1d`, `12h`, `30m`, `45s`, `0`: how long a retired object stays before it is deleted."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*", str(text))
    if not m:
        raise ConfigError(f"grace period {text!r}: write it as a number with d, h, m or s (e.g. 1d, 12h)")
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}[m[2]]
    return timedelta(seconds=float(m[1]) * unit)


def _store(target: Target, *, need_credentials: bool, timeout: str = "300s", retry_for: float = 180.0) -> Any:
    """An obstore S3Store for the bucket, configured by boto3's resolution of the environment and AWS
    config; anonymous (unsigned) when there are no credentials and none are needed. `timeout`: of a
    whole request (a large file's upload needs minutes on a slow link; a state read does not);
    `retry_for`: seconds after a request's first try that obstore stops retrying it."""
    import boto3
    import botocore.exceptions
    from botocore.configprovider import ConfiguredEndpointProvider
    from obstore.store import S3Store

    try:
        session = boto3.session.Session()
        core = session._session  # noqa: SLF001 (botocore's session: the resolution boto3 itself uses)
        scoped = core.get_scoped_config()
        # AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, endpoint_url in the profile or its s3 section; without
        # building an S3 client (loading its model costs a second on a small machine).
        endpoint = ConfiguredEndpointProvider(full_config=core.full_config, scoped_config=scoped, client_name="s3").provide()
        credentials = session.get_credentials()
    except botocore.exceptions.BotoCoreError as exc:
        raise ConfigError(f"{target}: the AWS configuration is not usable: {exc}") from exc
    config: S3Config = {"region": session.region_name or "us-east-1"}
    style = (scoped.get("s3") or {}).get("addressing_style")
    if endpoint:  # S3-compatible servers are reached path-style unless the profile says virtual
        config["endpoint"] = endpoint
        config["virtual_hosted_style_request"] = style == "virtual"
    else:  # AWS itself: virtual-hosted, as boto3 does for a DNS-safe bucket name
        config["virtual_hosted_style_request"] = style != "path"
    client_options: ClientConfig = {"allow_http": str(endpoint or "").startswith("http://"), "timeout": timeout,
                                      "connect_timeout": "10s"}
    ca_bundle = core.get_config_variable("ca_bundle")  # AWS_CA_BUNDLE or ca_bundle in ~/.aws/config, as boto3 reads it
    if ca_bundle and not str(endpoint or "").startswith("http://"):
        try:
            client_options["root_certificate"] = Path(ca_bundle).read_bytes()  # added to the system's roots
        except OSError as exc:
            raise ConfigError(f"{target}: the CA bundle {ca_bundle} cannot be read ({exc.strerror})") from exc
    from datetime import timedelta

    retry: RetryConfig = {"retry_timeout": timedelta(seconds=retry_for)}
    if credentials is None:
        if need_credentials:
            raise ConfigError(f"{target}: no AWS credentials found (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                              "or AWS_PROFILE with ~/.aws/credentials; AWS_ENDPOINT_URL for a server that is not AWS)")
        return S3Store(target.bucket, config={**config, "skip_signature": True}, client_options=client_options,
                       retry_config=retry)
    from obstore.auth.boto3 import Boto3CredentialProvider

    return S3Store(target.bucket, config=config, client_options=client_options, retry_config=retry,
                   credential_provider=Boto3CredentialProvider(session))


def _transport(target: Target, exc: Exception) -> TransportError:
    """One line for a fault of the object store, with what to do where the cause is known (obstore's
    message names it only in its debug part)."""
    full = str(exc) or type(exc).__name__
    # Never the endpoint's response body (one that echoes the request's headers would print the
    # session token), and never a credential of this process, wherever it shows.
    text = re.split(r"(?i)\b(?:response\s+)?body\b\s*[:=]", full.splitlines()[0])[0].rstrip(" ,:(")[:300]
    for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID"):
        secret = os.environ.get(name)
        if secret and len(secret) >= 8:
            text = text.replace(secret, f"<{name}>")
    if m := re.search(r"InvalidCertificate\(\s*(\w+)", full):
        text += (f"; the server's TLS certificate is not trusted ({m[1]}): set AWS_CA_BUNDLE to the PEM file of "
                 "the CA that signed it")
    elif re.search(r"ConnectionRefused|Connection refused", full):
        text += "; nothing answers at the endpoint (AWS_ENDPOINT_URL, or endpoint_url in ~/.aws/config)"
    elif re.search(r"SignatureDoesNotMatch|InvalidAccessKeyId|AccessDenied|403 Forbidden", full):
        text += "; the credentials were refused (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the profile)"
    elif re.search(r"NoSuchBucket", full):
        text += f"; the bucket {target.bucket} does not exist (create it first)"
    return TransportError(f"{target}: {text}")


# -- the tree on disk -------------------------------------------------------------------------------

@dataclass(slots=True)
class _Local:
    rel: str
    path: str
    size: int
    stage: Stage
    immutable: bool
    sha256: str | None = None


def _skipped(rel: str) -> bool:
    # Precompressed pages serve `Accept-Encoding: gzip` from a file server; a bucket cannot choose them.
    return rel.endswith((".html.gz", ".json.gz")) and (rel.startswith("simple/") or "/" not in rel)


def _walk(tree: Path) -> dict[str, _Local]:
    out: dict[str, _Local] = {}
    stack = [(str(tree), "")]
    while stack:
        folder, rel_dir = stack.pop()
        with os.scandir(folder) as it:
            for entry in it:
                rel = rel_dir + entry.name
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, rel + "/"))
                elif entry.is_file() and not _skipped(rel):
                    stage, immutable = classify(rel)
                    out[rel] = _Local(rel, entry.path, entry.stat().st_size, stage, immutable)
    return out


def _sha256(entry: _Local) -> str:
    """The content's sha256: from its name where the tree is content-addressed by it (a file under
    a directory named by its hash, a by-hash file), else read."""
    if entry.sha256 is None:
        parent, _, name = entry.path.rpartition("/")
        parent = parent.rpartition("/")[2]
        if entry.immutable and _HEX64.fullmatch(parent) and not name.endswith(".metadata"):
            entry.sha256 = parent
        elif entry.immutable and parent == "SHA256" and _HEX64.fullmatch(name):
            entry.sha256 = name
        else:
            with open(entry.path, "rb") as fh:
                entry.sha256 = hashlib.file_digest(fh, "sha256").hexdigest()
    return entry.sha256


def _hash_all(entries: list[_Local]) -> None:
    for e in entries:
        _sha256(e)


# -- the state in the bucket ------------------------------------------------------------------------

def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def _read_state(store: Any, target: Target) -> dict[str, Any] | None:
    import obstore
    from obstore.exceptions import NotFoundError

    try:
        got = await obstore.get_async(store, target.key(STATE_KEY))
        data = bytes(await got.bytes_async())
    except (NotFoundError, FileNotFoundError):
        return None
    try:
        state: dict[str, Any] = json.loads(data)
        if state.get("format") != _STATE_FORMAT or not isinstance(state.get("objects"), dict):
            raise ValueError("unknown format")
        return state
    except (ValueError, AttributeError) as exc:
        raise IntegrityError(f"{target}: {STATE_KEY} is not a state this version writes ({exc}); "
                             "another tool owns this prefix, or remove it to publish anew") from exc


async def _listing(store: Any, target: Target) -> dict[str, tuple[int, str | None]]:
    """Every object under the prefix: tree-relative key → (size, ETag). Read with obstore's blocking
    iterator on a worker thread: its async stream, even read to the end, made about one process in
    fifteen abort at exit (SIGABRT once the work was done; obstore 0.12)."""
    import obstore

    prefix = target.key("") if target.prefix else ""

    def read() -> dict[str, tuple[int, str | None]]:
        out: dict[str, tuple[int, str | None]] = {}
        for batch in obstore.list(store, prefix=prefix or None, chunk_size=1000):
            for meta in batch:
                out[meta["path"][len(prefix):]] = (meta["size"], meta.get("e_tag"))
        return out

    return await asyncio.get_running_loop().run_in_executor(None, read)


async def _write_state(store: Any, target: Target, state: dict[str, Any]) -> None:
    import obstore

    body = json.dumps(state, separators=(",", ":")).encode()
    try:
        await obstore.put_async(store, target.key(STATE_KEY), body,
                                attributes={"Content-Type": "application/json", "Cache-Control": "no-store"})
    except Exception as exc:  # noqa: BLE001
        raise _transport(target, exc) from exc


# -- publishing -------------------------------------------------------------------------------------

@dataclass(slots=True, kw_only=True)
class PublishReport:
    target: str
    snapshot: str
    objects: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    unchanged: int = 0
    retired: int = 0
    deleted: int = 0
    listed: bool = False  # the prefix was listed (first publish, one cut off, or --check)
    seconds: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def publish_tree(tree: Path, target: Target, *, grace: timedelta = timedelta(days=1), concurrency: int = 32,
                 check: bool = False, on_bytes: Callable[[int], None] | None = None,
                 on_total: Callable[[int], None] | None = None, now: datetime | None = None) -> PublishReport:
    """Upload a published tree to `target`, stage by stage; retire and (after `grace`) delete what
    the tree no longer has. `check`: list the bucket rather than trust the last complete publish's
    state (finds objects removed behind our back). `on_total(bytes to send)` once the plan is known,
    `on_bytes(n)` as files go up."""
    return asyncio.run(_publish(tree, target, grace=grace, concurrency=concurrency, check=check,
                                on_bytes=on_bytes, on_total=on_total, now=now or _now()))


async def _publish(tree: Path, target: Target, *, grace: timedelta, concurrency: int, check: bool,
                   on_bytes: Callable[[int], None] | None, on_total: Callable[[int], None] | None,
                   now: datetime) -> PublishReport:
    started = time.monotonic()
    try:
        snapshot = json.loads((tree / "snapshot.json").read_text())["id"]
    except (OSError, ValueError, KeyError) as exc:
        raise IntegrityError(f"{tree} is not a published tree (no snapshot.json): run `mirror publish` first") from exc
    up = _Upload(tree, target, snapshot, concurrency=concurrency, on_bytes=on_bytes, now=now)
    await up.plan(check)
    up.report.stages["plan"] = round(time.monotonic() - started, 3)
    # The first stage's files (content-named, new) need no page read: they go up while the pages are
    # hashed (a publish of one changed app: its wheels are most of the time).
    first = next(iter(Stage))
    early = [e for e in up.todo if e.stage == first]
    t_first = time.monotonic()
    if early:
        await up.mark()
    sending = up.put_all(early)
    await up.sort_hashed()
    if on_total:
        on_total(sum(e.size for e in up.todo))
    if up.todo or up.report.listed or set(up.remote) - set(up.local):
        await up.mark()
    sent_early = {id(e) for e in early}
    for stage in Stage:
        t0 = t_first if stage == first and early else time.monotonic()
        if stage == first:
            await sending
        batch = [e for e in up.todo if e.stage == stage and id(e) not in sent_early]
        if batch:
            await up.put_all(batch)
        up.report.stages[stage.name.lower()] = round(time.monotonic() - t0, 3)
    await up.finish(grace)
    up.report.seconds = round(time.monotonic() - started, 3)
    return up.report


class _Upload:
    """One publish to a bucket: what is there (the last complete publish's state, else a listing),
    the uploads stage by stage, and the state written last."""

    def __init__(self, tree: Path, target: Target, snapshot: str, *, concurrency: int,
                 on_bytes: Callable[[int], None] | None, now: datetime) -> None:
        self.target, self.snapshot, self.on_bytes, self.now = target, snapshot, on_bytes, now
        self.local = _walk(tree)
        self.store = _store(target, need_credentials=True)
        # The state, the listing and deletes are small requests: an endpoint that accepts and never
        # answers fails the publish in 30 s (times obstore's retries), not 300 s a request.
        self.small = _store(target, need_credentials=True, timeout="30s", retry_for=45.0)
        self.report = PublishReport(target=str(target), snapshot=snapshot, objects=len(self.local))
        self.state: dict[str, Any] | None = None
        self.remote: dict[str, tuple[int, str | None]] = {}
        self.todo: list[_Local] = []
        self.hashing: list[_Local] = []
        self.records: dict[str, list[Any]] = {}
        self._sem = asyncio.Semaphore(concurrency)
        self._budget = _Budget(_IN_FLIGHT)
        self._marked = False

    async def plan(self, check: bool) -> None:
        """What the bucket holds, and which files go up for sure (content-named and not there)."""
        try:
            self.state = state = await _read_state(self.small, self.target)
            # The state of a publish that completed is what is there; anything else (a first publish, one
            # cut off, --check) is found out by listing the prefix.
            self.report.listed = check or state is None or bool(state.get("interrupted"))
            if self.report.listed or state is None:
                self.remote = await _listing(self.small, self.target)
            else:
                self.remote = {rel: (rec[1], rec[2]) for rel, rec in state["objects"].items()}
                self.remote.update((rel, (-1, None)) for rel in state.get("retired", {}) if rel not in self.remote)
        except (IntegrityError, ConfigError):
            raise
        except Exception as exc:  # noqa: BLE001 (obstore raises its own classes for every transport fault)
            raise _transport(self.target, exc) from exc
        self.remote.pop(STATE_KEY, None)
        for rel, entry in self.local.items():
            there = self.remote.get(rel)
            if entry.immutable and (there is None or there[0] != entry.size):
                self.todo.append(entry)  # content-named and not there yet (a size that differs: a cut-off upload)
            else:
                self.hashing.append(entry)

    async def sort_hashed(self) -> None:
        """The rest: known by name for content-named files, read for the others (pages are small: in
        one thread, as four were slower by their switching); what changed joins `todo`."""
        await asyncio.get_running_loop().run_in_executor(None, _hash_all, self.hashing)
        known: dict[str, list[Any]] = (self.state or {}).get("objects", {})
        for entry in self.hashing:
            rel = entry.rel
            there, before = self.remote[rel] if rel in self.remote else None, known.get(rel)
            if entry.immutable:  # there with its size: the same content, under its own name
                self.records[rel] = [entry.sha256, entry.size, there[1] if there else None]
            elif (there is not None and before is not None and before[0] == entry.sha256 and there[0] == entry.size
                  and (before[2] is None or before[2] == there[1])):
                self.records[rel] = before
            else:
                self.todo.append(entry)
        self.report.unchanged = len(self.local) - len(self.todo)

    async def mark(self) -> None:
        """Marked before anything changes: a publish cut off after this is listed in full next time."""
        if not self._marked:
            self._marked = True
            await _write_state(self.small, self.target, {
                **(self.state or {"format": _STATE_FORMAT, "snapshot": None, "objects": {}, "retired": {}}),
                "interrupted": self.now.isoformat()})

    async def put(self, entry: _Local) -> None:
        import obstore

        loop = asyncio.get_running_loop()
        sha = await loop.run_in_executor(None, _sha256, entry) if entry.sha256 is None else entry.sha256
        attributes = {"Content-Type": content_type(entry.rel), "Cache-Control": cache_control(entry.rel), "sha256": sha}
        held = min(entry.size, _CHUNK * 8 if entry.size > _MULTIPART else entry.size)
        async with self._sem, self._budget.hold(held):
            try:
                result = await obstore.put_async(self.store, self.target.key(entry.rel), Path(entry.path),
                                                 attributes=attributes, use_multipart=entry.size > _MULTIPART,
                                                 chunk_size=_CHUNK, max_concurrency=8)
            except Exception as exc:  # noqa: BLE001
                raise _transport(self.target, exc) from exc
        self.records[entry.rel] = [sha, entry.size, result.get("e_tag")]
        self.report.uploaded += 1
        self.report.uploaded_bytes += entry.size
        if self.on_bytes:
            self.on_bytes(entry.size)

    def put_all(self, batch: list[_Local]) -> asyncio.Future[list[None]]:
        return asyncio.gather(*(self.put(e) for e in sorted(batch, key=lambda e: -e.size)))  # the long ones first

    async def finish(self, grace: timedelta) -> None:
        """Retire what the tree no longer has; delete what has been retired for the grace period; the
        new state written."""
        import obstore

        retired: dict[str, str] = {}
        due: list[str] = []
        for rel in self.remote:
            if rel in self.local:
                continue
            since = (self.state or {}).get("retired", {}).get(rel) or self.now.isoformat()
            if self.now - datetime.fromisoformat(since) >= grace:
                due.append(rel)
            else:
                retired[rel] = since
        self.report.retired = len(retired)
        new_state = {"format": _STATE_FORMAT, "snapshot": self.snapshot, "published": self.now.isoformat(),
                     "objects": dict(sorted(self.records.items())), "retired": dict(sorted(retired.items()))}
        try:
            await _write_state(self.small, self.target, new_state)
            for i in range(0, len(due), 1000):
                await obstore.delete_async(self.small, [self.target.key(rel) for rel in due[i:i + 1000]])
                self.report.deleted += len(due[i:i + 1000])
        except Exception as exc:  # noqa: BLE001
            raise _transport(self.target, exc) from exc


class _Budget:
    """Bytes held in memory by uploads in flight, capped (one larger than the cap runs alone)."""

    def __init__(self, cap: int) -> None:
        self.cap, self.used = cap, 0
        self.cond = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def hold(self, n: int) -> AsyncIterator[None]:
        n = min(n, self.cap)
        async with self.cond:
            await self.cond.wait_for(lambda: self.used + n <= self.cap)
            self.used += n
        try:
            yield
        finally:
            async with self.cond:
                self.used -= n
                self.cond.notify_all()


# -- status and verification ------------------------------------------------------------------------

def bucket_state(target: Target) -> dict[str, Any] | None:
    """The state of the last complete publish to `target` (snapshot, published, objects, retired), or None."""

    async def run() -> dict[str, Any] | None:
        store = _store(target, need_credentials=False)
        try:
            return await _read_state(store, target)
        except IntegrityError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _transport(target, exc) from exc

    return asyncio.run(run())


@dataclass(slots=True, kw_only=True)
class BucketReport:
    target: str
    snapshot: str | None = None
    objects: int = 0
    bytes_checked: int = 0
    missing: list[str] = field(default_factory=list)       # in the state, not in the bucket
    mismatched: list[str] = field(default_factory=list)    # there, but not the bytes the state names
    not_carried: list[str] = field(default_factory=list)   # blobs of the snapshot no object holds
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.mismatched or self.not_carried or self.problems)

    def to_dict(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}, "ok": self.ok}


def verify_bucket(target: Target, expected_blobs: Callable[[str], dict[str, int | None] | None], *,
                  quick: bool = False, concurrency: int = 16,
                  on_bytes: Callable[[int], None] | None = None) -> BucketReport:
    """Check the bucket against its state and the state against the snapshot: every object the state
    lists is there with its size (and, unless `quick`, its bytes hash to the recorded sha256), and
    every blob of the snapshot (`expected_blobs(snapshot id)`; None if the store lacks it) is held."""

    async def run() -> BucketReport:
        import obstore

        store = _store(target, need_credentials=False)
        report = BucketReport(target=str(target))
        try:
            state = await _read_state(store, target)
            remote = await _listing(store, target)
        except IntegrityError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise _transport(target, exc) from exc
        if state is None:
            report.problems.append(f"{target} holds no publish (no {STATE_KEY})")
            return report
        report.snapshot = state.get("snapshot")
        objects: dict[str, list[Any]] = state["objects"]
        report.objects = len(objects)
        blobs = expected_blobs(report.snapshot or "")
        if blobs is None:
            report.problems.append(f"snapshot {str(report.snapshot)[:16]} is not in this store: the bucket cannot be "
                                   "checked against it (import its bundle first)")
        else:
            held = {rec[0] for rec in objects.values()}
            report.not_carried = sorted(sha for sha in blobs if sha not in held)
        for rel, (_sha, size, _etag) in objects.items():
            there = remote.get(rel)
            if there is None:
                report.missing.append(rel)
            elif there[0] != size:
                report.mismatched.append(rel)
        if quick:
            return report
        sem = asyncio.Semaphore(concurrency)
        skip = set(report.missing) | set(report.mismatched)

        async def check(rel: str, sha: str) -> None:
            async with sem:
                h = hashlib.sha256()
                try:
                    got = await obstore.get_async(store, target.key(rel))
                    async for chunk in got.stream(min_chunk_size=1 << 20):
                        h.update(chunk)
                        report.bytes_checked += len(chunk)
                        if on_bytes:
                            on_bytes(len(chunk))
                except Exception as exc:  # noqa: BLE001
                    report.problems.append(f"{rel}: could not be read ({_transport(target, exc)})")
                    return
            if h.hexdigest() != sha:
                report.mismatched.append(rel)

        await asyncio.gather(*(check(rel, rec[0]) for rel, rec in objects.items() if rel not in skip))
        report.mismatched.sort()
        return report

    return asyncio.run(run())
