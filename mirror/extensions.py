"""Where other parts of the product plug into the core without the core importing them.

Three entry-point groups, each loaded on first use:
    airgap_mirror.sync        objects with `name` and `sync(SyncContext) -> ExtensionOutcome`
    airgap_mirror.commands    callables `register(app: typer.Typer)` adding CLI commands
    airgap_mirror.publishers  callables `(store, snapshot, tree)` (see mirror.publish)
A snapshot keeps each sync extension's section under its name, and per app under
`apps[APP][name]`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .apps import AppSpec
    from .store import Store
    from .sync import Reporter

__all__ = ["SyncContext", "ExtensionOutcome", "SyncExtension", "sync_extensions", "command_registrars"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncContext:
    store: "Store"
    apps: list["AppSpec"]
    previous: Mapping[str, Any] | None
    options: Mapping[str, Any]
    reporter: "Reporter"
    concurrency: int = 16


@dataclass(slots=True, kw_only=True)
class ExtensionOutcome:
    section: dict[str, Any] = field(default_factory=dict)
    app_entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    app_errors: dict[str, str] = field(default_factory=dict)
    app_warnings: dict[str, list[str]] = field(default_factory=dict)
    kept_previous: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    # Faults that cost nothing already mirrored (an upstream that failed, the previous closure kept).
    warnings: list[str] = field(default_factory=list)
    files_fetched: int = 0
    files_present: int = 0
    bytes_fetched: int = 0
    summary: dict[str, Any] = field(default_factory=dict)


class SyncExtension(Protocol):
    name: str

    def sync(self, ctx: SyncContext) -> ExtensionOutcome: ...


def _load(group: str) -> list[Any]:
    from importlib.metadata import entry_points

    out = []
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        with contextlib.suppress(ImportError):
            out.append(ep.load())
    return out


@cache
def sync_extensions() -> tuple[SyncExtension, ...]:
    return tuple(obj() if isinstance(obj, type) else obj for obj in _load("airgap_mirror.sync"))


@cache
def command_registrars() -> tuple[Callable[[Any], None], ...]:
    return tuple(_load("airgap_mirror.commands"))
