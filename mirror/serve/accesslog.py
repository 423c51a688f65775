"""The access log's line (combined format), shared by both servers."""

from __future__ import annotations

import time

__all__ = ["access_line"]


def access_line(client: str, user: str, request: str, status: int, sent: int, referer: str | None,
                agent: str | None) -> str:
    """One access-log line in combined format; request fields cleaned (no quotes, no control
    characters: a forged line cannot be written), the user a name only, never a credential."""
    def clean(text: str) -> str:
        return "".join(c if c.isprintable() and c != '"' else f"\\x{ord(c):02x}" for c in text[:2000])

    return (f'{client} - {user} [{time.strftime("%d/%b/%Y:%H:%M:%S %z")}] "{clean(request)}" {status} {sent}'
            f' "{clean(referer or "-")}" "{clean(agent or "-")}"\n')
