"""What a sync is asked (SyncOptions) and what it answers (SyncResult, one AppResult per app).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap_mirror.apps.locks import MANAGER_FILES
from airgap_mirror.defaults import DEFAULT_INSTALLERS
from airgap_mirror.resolve import (
    IndexConfig,
)
from airgap_mirror.resolve.targets import DEFAULT_PLATFORM, DEFAULT_PYTHON
from airgap_mirror.urls import redact_text

SNAPSHOT_FORMAT = 1


MAX_BUILD_DEPTH = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncOptions:
    apps: tuple[Path, ...]
    pythons: tuple[str, ...] = ()
    platforms: tuple[str, ...] = (DEFAULT_PLATFORM,)
    # Explicit (python, platform) pairs; the pythons x platforms product is added when cross_product.
    targets: tuple[tuple[str, str], ...] = ()
    cross_product: bool = True
    default_python: str = DEFAULT_PYTHON
    index: IndexConfig = field(default_factory=IndexConfig)
    installers: tuple[str, ...] = DEFAULT_INSTALLERS
    concurrency: int = 16
    resolver_jobs: int = 4
    refresh: bool = False
    # Dependency confusion (a private index's project also on the public index with other files) fails the app.
    strict: bool = False
    # Requirements files read in each app besides the platform's own (requirements.txt, ...).
    requirement_files: tuple[str, ...] = ()
    # For every app, as pip's flags: wheels only for these projects (":all:" for every one), and
    # the newest version with a wheel for the target over a newer sdist.
    only_binary: tuple[str, ...] = ()
    prefer_binary: bool = False
    # Local paths and includes outside an app's own folder are mirrored (off: refused, naming the line).
    allow_outside: bool = False
    # Settings of sync extensions (the APT side), by extension name; see mirror.extensions.
    extensions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Apps of the store's current snapshot that this sync does not name: kept as they were (False),
    # or removed (True: `--prune`).
    prune: bool = False
    # This run names its targets (flags on the command line): the synced apps' other targets are
    # kept as they were, as apps not named are (unless prune).
    narrowed: bool = False
    # The package-manager files the platform reads, in its order, and whether the first present
    # wins over refusing several (mirror.toml [apps] package-managers, package-manager-first-wins).
    package_managers: tuple[str, ...] = tuple(MANAGER_FILES)
    package_manager_first_wins: bool = False
    # The release-age cooldown: files uploaded after this RFC 3339 time are left out of resolutions
    # (uv's exclude-newer), for every app and for installers and build requirements; an app's own
    # (by name) instead where it has one. A lock's pins are never changed by it: warned.
    exclude_newer: str | None = None
    app_exclude_newer: Mapping[str, str] = field(default_factory=dict)
    # By app name: what the platform installs of its lock besides the main dependencies
    # (mirror.toml [apps.extras], [apps.groups]; `sync --extra APP:X`, `--group APP:G`).
    app_extras: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    app_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class AppResult:
    name: str
    path: str
    ok: bool
    targets: list[str] = field(default_factory=list)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    kept_previous: bool = False
    conda_not_mirrored: list[str] = field(default_factory=list)
    # How the platform reads the app: its package-manager file, its Python and where that came from.
    package_manager: str | None = None
    python: str | None = None
    python_from: str | None = None
    extras: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class SyncResult:
    snapshot_id: str | None
    previous_id: str | None
    apps: list[AppResult]
    targets: list[str]
    files_total: int = 0
    files_fetched: int = 0
    files_present: int = 0
    bytes_fetched: int = 0
    fetch_errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    resolutions_run: int = 0  # by uv
    resolutions_reused: int = 0  # from the memo: nothing they read had changed
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (wall), in order
    # The store's apps this sync did not name: kept as they were, or removed with --prune.
    kept_apps: list[str] = field(default_factory=list)
    removed_apps: list[str] = field(default_factory=list)
    kept_targets: dict[str, list[str]] = field(default_factory=dict)  # app → its targets this run did not name

    @property
    def changed(self) -> bool:
        return self.snapshot_id is not None and self.snapshot_id != self.previous_id

    @property
    def ok(self) -> bool:
        return all(a.ok for a in self.apps) and not self.fetch_errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot_id, "previous": self.previous_id, "changed": self.changed, "ok": self.ok,
            "targets": self.targets,
            "files": {"total": self.files_total, "fetched": self.files_fetched, "present": self.files_present},
            "bytes_fetched": self.bytes_fetched, "fetch_errors": self.fetch_errors, "warnings": self.warnings,
            "resolutions": {"run": self.resolutions_run, "reused": self.resolutions_reused},
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "kept_apps": self.kept_apps, "removed_apps": self.removed_apps, "kept_targets": self.kept_targets,
            "apps": [
                {"name": a.name, "path": a.path, "ok": a.ok, "targets": a.targets,
                 "error": redact_text(a.error) if a.error else a.error, "warnings": [redact_text(w) for w in a.warnings], "kept_previous": a.kept_previous, "conda_not_mirrored": a.conda_not_mirrored,
                 "package_manager": a.package_manager, "python": a.python, "python_from": a.python_from,
                 "extras": a.extras, "groups": a.groups}
                for a in self.apps
            ],
        }
