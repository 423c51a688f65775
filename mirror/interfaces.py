"""The interfaces the core defines and its plug-ins implement, and the one loader that finds them.

The core (`mirror/`) imports neither `apt/` nor `bundles/`: they plug in through entry points.

    airgap_mirror.sync            SyncExtension: `name`, `sync(SyncContext) -> ExtensionOutcome`
                                  (a snapshot keeps its section under `name`, per app under apps[APP][name])
    airgap_mirror.publishers      Publisher: `(store, Snapshot, tree)` writes its part of a published tree
    airgap_mirror.commands        CommandRegistrar: `register(app)` adds CLI commands to the typer app
    airgap_mirror.ledger          BundleLedger: what was exported and imported (bundles/ keeps the tables)
    airgap_mirror.client_config   ClientConfigHook: `(base_url, store, app=None, user=None) -> text or None` for `client-config`
    airgap_mirror.sync_options    SyncOptionHook: the flags a sync extension adds to `mirror sync`
    airgap_mirror.tree_layout     TreeLayout (airgap_mirror.publish.layout): what the paths a publisher writes are
                                  (cache lifetime, upload stage)

A plug-in that cannot be loaded is reported once on stderr (and by `plugin_errors()`), never
dropped without a word: a missing APT side must not look like an app without an Aptfile.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pathlib import Path  # noqa: F401  (in the Publisher alias)

    from airgap_mirror.apps import AppSpec
    from airgap_mirror.store import Store
    from airgap_mirror.store.model import SectionFile
    from airgap_mirror.store.snapshots import Snapshot

__all__ = ["Reporter", "QuietReporter", "SyncContext", "ExtensionOutcome", "SyncExtension", "Publisher",
           "BundleLedger", "ClientConfigHook", "SyncOptionHook", "SbomHook", "sbom_hooks", "plugins", "sync_option_hooks", "plugin_errors", "sync_extensions", "publishers", "tree_layouts",
           "command_registrars", "bundle_ledger", "client_config_hooks"]


class Reporter(Protocol):
    """Progress of long work: phases with a total, advances, notes; a lane for work alongside."""

    def phase(self, name: str, total: int | None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def note(self, message: str) -> None: ...
    def finished(self, what: str) -> None: ...  # one item of the work done (an app resolved): a log's line
    def lane(self) -> Reporter: ...


class QuietReporter:
    """A reporter that shows nothing (tests, --json, CI)."""

    def phase(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def finished(self, what: str) -> None:
        pass

    def lane(self) -> QuietReporter:
        return self


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncContext:
    store: Store
    apps: list[AppSpec]
    previous: Snapshot | None
    options: Mapping[str, Any]
    reporter: Reporter
    concurrency: int = 16
    # Each app's Python targets (python x platform), also for apps with no requirements.txt: an
    # extension that mirrors for a platform (conda's subdir) takes the app's platforms from here.
    app_targets: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


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


    def fetch(self, ctx: SyncContext, items: Iterable[Any], phase: str, credentials: Any = None,
              started: Callable[[], None] = lambda: None) -> None:
        """Download what is new of `items` (airgap_mirror.fetch.FetchItem) into the store, with a progress
        phase; count it, and fail every app whose entries name a file that could not be fetched.
        `started()` is called once every download is started (work to do while they run)."""
        from airgap_mirror.fetch import fetch_all

        items = list(items)
        total = sum(i.size or 0 for i in items)
        ctx.reporter.phase(phase, total or None)
        report = fetch_all(items, ctx.store, concurrency=ctx.concurrency, credentials=credentials,
                           on_bytes=lambda n: ctx.reporter.advance(n) if total else None, started=started)
        self.files_fetched, self.files_present, self.bytes_fetched = len(report.fetched), len(report.present), report.bytes_fetched
        bad = {item.sha256: str(exc) for item, exc in report.failed}
        self.errors.extend(bad.values())
        for name, per_target in list(self.app_entries.items()):
            missing = [bad[s] for t in per_target.values() for s in t["files"] if s in bad]
            if missing:
                self.app_errors[name] = missing[0]
                del self.app_entries[name]


class SyncExtension(Protocol):
    name: str

    def sync(self, ctx: SyncContext) -> ExtensionOutcome: ...


Publisher = Callable[["Store", "Snapshot", "Path"], None]
CommandRegistrar = Callable[[Any], None]
ClientConfigHook = Callable[..., "str | None"]  # (base_url, store, app=None, user=None): the app's own lines when given


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncOptionHook:
    """Flags a plug-in adds to `mirror sync` (typer-annotated keyword parameters), and how their values
    and the plug-in's table in mirror.toml become its extension's options."""

    extension: str
    parameters: tuple[Any, ...]  # inspect.Parameter, KEYWORD_ONLY, annotated for typer
    collect: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]  # (flag values, toml table) → options


@dataclass(frozen=True, slots=True, kw_only=True)
class SbomHook:
    """How a plug-in's snapshot section becomes SBOM components: `describe(file entry)` gives
    (name, version, purl) for one of the section's files."""

    section: str
    describe: Callable[[SectionFile], tuple[str, str, str]]


class BundleLedger(Protocol):
    """What the bundle side records, as the core's history and health checks need it."""

    def last_exported(self, store: Store, site: str | None = None) -> str | None:
        """The snapshot id a destination site has (the base of its next delta), if any; the default site if None."""

    def delta_bases(self, store: Store) -> list[str]:
        """Every snapshot the next delta of some site is based on (gc keeps them)."""

    def bundle_snapshot(self, path: Path) -> str | None:
        """The snapshot id a bundle file brings (its manifest, unverified), or None if `path` is not a bundle."""

    def imported(self, store: Store) -> list[tuple[str, str, str]]:
        """(bundle id, snapshot id, when) of every bundle imported, oldest first."""

    def last_import(self, store: Store) -> dict[str, Any] | None:
        """The last bundle imported: bundle_id, signer, sequence, snapshot, imported, site; None if none."""


_ERRORS: list[str] = []


@cache
def plugins(group: str) -> tuple[Any, ...]:
    """Every object registered under an entry-point group, loaded once; one that fails to load is
    reported on stderr and in `plugin_errors()`."""
    out = []
    for ep in sorted(_entry_points().select(group=group), key=lambda e: e.name):
        try:
            out.append(ep.load())
        except Exception as exc:  # noqa: BLE001  (a broken plug-in must not take the core down)
            message = (f"plug-in {ep.name!r} ({group}, {ep.value}) could not be loaded: {type(exc).__name__}: "
                       f"{str(exc)[:200]}; what it adds is missing (reinstall airgap-mirror)")
            _ERRORS.append(message)
            print(f"warning: {message}", file=sys.stderr)
    return tuple(out)


@cache
def _entry_points() -> Any:
    """Every installed distribution's entry points, read once: a command asks for three or four
    groups, and each `entry_points(group=)` reads them all again (7 ms a time here)."""
    from importlib.metadata import entry_points

    return entry_points()


def plugin_errors() -> list[str]:
    return list(_ERRORS)


def sync_extensions() -> tuple[SyncExtension, ...]:
    return tuple(obj() if isinstance(obj, type) else obj for obj in plugins("airgap_mirror.sync"))


def publishers() -> tuple[Publisher, ...]:
    return plugins("airgap_mirror.publishers")


def command_registrars() -> tuple[CommandRegistrar, ...]:
    return plugins("airgap_mirror.commands")


def client_config_hooks() -> tuple[ClientConfigHook, ...]:
    return plugins("airgap_mirror.client_config")


def sync_option_hooks() -> tuple[SyncOptionHook, ...]:
    return plugins("airgap_mirror.sync_options")


def sbom_hooks() -> tuple[SbomHook, ...]:
    return plugins("airgap_mirror.sbom")


def tree_layouts() -> tuple[Any, ...]:
    return plugins("airgap_mirror.tree_layout")


def bundle_ledger() -> BundleLedger | None:
    found = plugins("airgap_mirror.ledger")
    if not found:
        return None
    obj = found[0]
    ledger: BundleLedger = obj() if isinstance(obj, type) else obj
    return ledger
