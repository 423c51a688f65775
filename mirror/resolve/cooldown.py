"""A release-age cooldown: resolve as if the index held nothing uploaded in the last N days, the
defence against a hijacked release caught within days (uv's `exclude-newer` does the resolving;
files' PEP 700 `upload-time` says their age).

`[python] exclude-newer = "7 days"` in mirror.toml (or per app under `[apps.exclude-newer]`, or
`mirror sync --exclude-newer`) takes a duration (`7 days`, `36 hours`, `2 weeks`, ISO 8601 `P7D`,
`PT36H`) or a date or time (`2026-11-30`, `2026-11-30T12:00:00Z`). A duration's cutoff is taken back
to the start of its UTC day, so every sync of one day resolves alike (and the resolution memo keeps
its records for that day): a release is left out for at least N days, at most N+1."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from airgap_mirror.errors import ConfigError

__all__ = ["cutoff", "uploaded_after"]

_UNITS = {"h": 1, "hour": 1, "hours": 1, "d": 24, "day": 24, "days": 24, "w": 168, "week": 168, "weeks": 168}
_FRIENDLY = re.compile(r"(\d+)\s*([a-z]+)")
_ISO = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(\d+)H)?")


def cutoff(value: str, *, where: str = "exclude-newer", now: datetime | None = None) -> str:
    """The RFC 3339 time (UTC, `...Z`) before which a file must have been uploaded to be taken."""
    text = value.strip()
    now = now or datetime.now(UTC)
    hours: int | None = None
    if m := _FRIENDLY.fullmatch(text.lower()):
        if m.group(2) in _UNITS:
            hours = int(m.group(1)) * _UNITS[m.group(2)]
    elif (m := _ISO.fullmatch(text.upper())) and any(m.groups()):
        weeks, days, hrs = (int(g or 0) for g in m.groups())
        hours = weeks * 168 + days * 24 + hrs
    if hours is not None:
        start = now - timedelta(hours=hours)
        day = datetime(start.year, start.month, start.day, tzinfo=UTC)
        return day.strftime("%Y-%m-%dT%H:%M:%SZ")
    try:
        when = (datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC) if len(text) == 10
                else datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ConfigError(f"{where} = {value!r}: write a duration (`7 days`, `36 hours`, `2 weeks`, `P7D`) or a "
                          "date or UTC time (`2026-11-30`, `2026-11-30T12:00:00Z`)")
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def uploaded_after(upload_time: str | None, cut: str) -> bool:
    """Whether a file's upload time (as an index or a lock says it) is after the cutoff."""
    if not upload_time:
        return False
    try:
        when = datetime.fromisoformat(upload_time.replace("Z", "+00:00"))
    except ValueError:
        return False
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when > datetime.fromisoformat(cut.replace("Z", "+00:00"))
