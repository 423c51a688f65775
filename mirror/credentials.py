"""Credentials for private indexes and repositories: read from the environment, never kept.

Requirements files name credentials as `${VAR}` (pip's syntax) or leave them to a netrc file.
`expand` puts the values in for the one process that needs them; `Credentials` answers "what
authorises this URL" by host, as pip and uv do, so file URLs on an index's host get the index's
credentials without the file URL ever carrying them. Anything recorded or printed goes through
`airgap_mirror.urls.strip_credentials` / `redact` first.
"""

from __future__ import annotations

import netrc
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from airgap_mirror.errors import InputError
from airgap_mirror.urls import redact, remember_secrets

__all__ = ["expand", "Credentials", "ENV_VAR", "secret_values"]

ENV_VAR = re.compile(r"\$\{([A-Za-z0-9_]+)\}")
_URL_PARTS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<authority>[^/?#]*)(?P<rest>.*)\Z", re.S)


def expand(template: str, *, where: str = "", env: Mapping[str, str] | None = None) -> str:
    """`template` with every ${VAR} replaced from the environment; a missing variable is an error naming it."""
    env = os.environ if env is None else env
    missing = [name for name in ENV_VAR.findall(template) if name not in env]
    if missing:
        names = ", ".join(dict.fromkeys(missing))
        raise InputError(
            f"{where + ': ' if where else ''}environment variable{'s' if len(set(missing)) > 1 else ''} {names} "
            f"not set (used in {redact(template)}): export {' and '.join(dict.fromkeys(missing))} before the sync; "
            "credentials are read from the environment only"
        )
    remember_secrets(env[name] for name in ENV_VAR.findall(template))
    # In a URL's user:password@ part a value is percent-encoded, so `/`, `@`, `#` or `:` in a password
    # neither break the URL nor end up in an "invalid URL" message. The parts are found on the
    # template, where a ${VAR} holds none of those characters.
    url = _URL_PARTS.match(template)
    if url and "@" in url["authority"]:
        userinfo, _, host = url["authority"].rpartition("@")
        userinfo = ENV_VAR.sub(lambda m: quote(env[m.group(1)], safe=""), userinfo)
        return _plain(url["scheme"], env) + userinfo + "@" + _plain(host + url["rest"], env)
    return _plain(template, env)


def _plain(text: str, env: Mapping[str, str]) -> str:
    return ENV_VAR.sub(lambda m: env[m.group(1)], text)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return (parts.scheme, (parts.hostname or "").lower(), port)


@dataclass(slots=True)
class Credentials:
    """user/password by origin (scheme, host, port), from expanded URLs, then the netrc."""

    by_origin: dict[tuple[str, str, int | None], tuple[str, str]] = field(default_factory=dict)
    use_netrc: bool = True

    @classmethod
    def from_urls(cls, urls: Iterable[str]) -> Credentials:
        creds = cls()
        for url in urls:
            parts = urlsplit(url)
            if parts.username is not None:
                creds.by_origin.setdefault(_origin(url), (unquote(parts.username), unquote(parts.password or "")))
        return creds

    def merged(self, other: Credentials) -> Credentials:
        out = Credentials(dict(other.by_origin), self.use_netrc and other.use_netrc)
        out.by_origin.update(self.by_origin)
        return out

    def for_url(self, url: str) -> tuple[str, str] | None:
        parts = urlsplit(url)
        if parts.username is not None:
            return unquote(parts.username), unquote(parts.password or "")
        found = self.by_origin.get(_origin(url))
        if found is not None or not self.use_netrc or not parts.hostname:
            return found
        return _netrc_lookup(parts.hostname)

    def secrets(self) -> set[str]:
        return {v for pair in self.by_origin.values() for v in pair if len(v) >= 4}


def _netrc_lookup(host: str) -> tuple[str, str] | None:
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        auth = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    if not auth:
        return None
    login, _, password = auth
    return login or "", password or ""


def secret_values(urls: Iterable[str]) -> set[str]:
    """The credential strings in some expanded URLs (to keep out of messages)."""
    return Credentials.from_urls(urls).secrets()
