"""Read-only access control for the served tree: HTTP basic auth from an htpasswd file (bcrypt, as
nginx and pypiserver read it) and bearer tokens from a file, one realm for everything but /health.

Both files are re-read when they change (checked at most once a second). A bcrypt check costs tens
of milliseconds by design, so a password that checked is remembered (by a digest of user and
password, never the password) until a file changes. Nothing here logs or keeps a credential.

A client (by address) that sends `failure_limit` wrong passwords within a minute gets no more
bcrypt checks until the oldest of them is a minute old (the server answers 429 with Retry-After):
guessing is bounded, and the checks of one client no longer take the others' time. Credentials it
proved before and tokens still pass (they need no bcrypt): a site's machines behind one address
are not locked out by one misconfigured client.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import secrets
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

from airgap_mirror.errors import ConfigError

__all__ = ["Auth", "REALM", "FAILURE_LIMIT"]

REALM = "airgap-mirror"
FAILURE_LIMIT = 20  # wrong passwords per client per minute before it waits (0: no limit)
_WINDOW = 60.0
_CLIENTS = 10_000  # clients whose failures are remembered at once (the oldest forgotten first)


@dataclass(slots=True)
class _Loaded:
    stamp: tuple[tuple[int, int, int], ...] = ()
    users: dict[str, bytes] = field(default_factory=dict)
    tokens: dict[bytes, str] = field(default_factory=dict)  # sha256(token) → name
    checked: dict[bytes, str] = field(default_factory=dict)  # sha256(user \0 password) → user


class Auth:
    def __init__(self, htpasswd: Path | None = None, tokens: Path | None = None, *,
                 failure_limit: int = FAILURE_LIMIT) -> None:
        if htpasswd is None and tokens is None:
            raise ValueError("Auth needs an htpasswd file or a tokens file")
        self.htpasswd, self.tokens = htpasswd, tokens
        self.failure_limit = max(0, failure_limit)
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()  # client → times of its wrong passwords
        self._failures_lock = threading.Lock()
        self._lock = threading.Lock()
        self._loaded = _Loaded()
        self._next_check = 0.0
        self._reload(force=True)

    def _stamp(self) -> tuple[tuple[int, int, int], ...]:
        out = []
        for path in (self.htpasswd, self.tokens):
            if path is None:
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                out.append((0, 0, 0))
                continue
            out.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)

    def _reload(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_check:
            return
        with self._lock:
            self._next_check = now + 1.0
            stamp = self._stamp()
            if not force and stamp == self._loaded.stamp:
                return
            loaded = _Loaded(stamp=stamp)
            if self.htpasswd is not None:
                loaded.users = _read_htpasswd(self.htpasswd, strict=force)
            if self.tokens is not None:
                loaded.tokens = _read_tokens(self.tokens, strict=force)
            self._loaded = loaded

    def retry_after(self, client: str | None) -> int | None:
        """Seconds until `client` may have a password checked again, or None when it may now."""
        if not client or not self.failure_limit:
            return None
        with self._failures_lock:
            times = self._failures.get(client)
            if times is None:
                return None
            now = time.monotonic()
            while times and times[0] <= now - _WINDOW:
                times.popleft()
            if len(times) < self.failure_limit:
                return None
            return max(1, int(times[0] + _WINDOW - now + 0.999))

    def _failed(self, client: str | None) -> None:
        if not client or not self.failure_limit:
            return
        with self._failures_lock:
            times = self._failures.pop(client, None) or deque(maxlen=self.failure_limit)
            times.append(time.monotonic())
            self._failures[client] = times  # (the most recent last: the oldest are forgotten first)
            while len(self._failures) > _CLIENTS:
                self._failures.popitem(last=False)

    def check(self, authorization: str | None, client: str | None = None) -> str | None:
        """The user (or token name) the Authorization header proves, else None; `client` (its
        address) is counted for each wrong password, and one over its limit gets no bcrypt check."""
        if not authorization:
            return None
        self._reload()
        loaded = self._loaded
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and loaded.tokens:
            return loaded.tokens.get(hashlib.sha256(value.strip().encode()).digest())
        if scheme != "basic" or not loaded.users:
            return None
        try:
            user, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if not sep:
            return None
        # A bearer token sent as a basic-auth password (uv and pip speak only basic) counts too.
        if loaded.tokens and (name := loaded.tokens.get(hashlib.sha256(password.encode()).digest())):
            return name
        key = hashlib.sha256(user.encode() + b"\0" + password.encode()).digest()
        if loaded.checked.get(key) == user:
            return user
        stored = loaded.users.get(user)
        if self.retry_after(client) is not None:
            return None  # (no bcrypt for a client over its limit: the server says 429)
        import bcrypt

        if stored is None:
            # As long as a known user's wrong password takes: the answer's time does not tell which
            # user names exist (0.4 ms against 3-577 ms before).
            bcrypt.checkpw(password.encode(), _dummy_hash(next(iter(loaded.users.values()))))
            self._failed(client)
            return None
        try:
            ok = bcrypt.checkpw(password.encode(), stored)
        except ValueError:
            ok = False
        if ok:
            loaded.checked[key] = user
            return user
        self._failed(client)
        return None


@functools.lru_cache(maxsize=8)
def _dummy_hash(like: bytes) -> bytes:
    """A bcrypt hash of nothing anyone sends, at the cost of `like` (a real user's hash)."""
    import bcrypt

    try:
        rounds = int(like.split(b"$")[2])
    except (IndexError, ValueError):
        rounds = 12
    return bcrypt.hashpw(secrets.token_bytes(16).hex().encode(), bcrypt.gensalt(rounds=max(4, min(rounds, 31))))


def _lines(path: Path, what: str, *, strict: bool) -> list[tuple[int, str]]:
    """(line number, text) of a credentials file, blank lines and `#` comments left out. Unreadable:
    a ConfigError at start-up, else nothing (a file mid-rewrite denies until it is whole)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError) as exc:
        if strict:
            raise ConfigError(f"{what} {path}: {exc}") from exc
        return []
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.strip().startswith("#")]


def _read_htpasswd(path: Path, *, strict: bool) -> dict[str, bytes]:
    """`user:$2y$...` lines (bcrypt, as `htpasswd -B` writes); other hashes are refused at start-up
    (plain text, crypt, MD5 and SHA-1 are not safe to keep)."""
    users: dict[str, bytes] = {}
    for n, line in _lines(path, "htpasswd file", strict=strict):
        user, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith(("$2y$", "$2b$", "$2a$")):
            if strict:
                raise ConfigError(f"{path}:{n}: not a `user:bcrypt-hash` line; write it with `htpasswd -B {path} USER`")
            continue
        users[user] = hashed.encode()
    return users


def _read_tokens(path: Path, *, strict: bool) -> dict[bytes, str]:
    """One token per line, `NAME:TOKEN` or `TOKEN`; `#` starts a comment. Tokens are kept hashed."""
    tokens: dict[bytes, str] = {}
    for n, line in _lines(path, "tokens file", strict=strict):
        name, sep, token = line.rpartition(":")
        name = name if sep else f"token-{n}"
        if len(token) < 16:
            if strict:
                raise ConfigError(f"{path}:{n}: a token of {len(token)} characters is too easy to guess (16 at least)")
            continue
        tokens[hashlib.sha256(token.encode()).digest()] = name
    return tokens
