"""One sync's state, handed from step to step (`run` fills it in order): what each step reads of
the ones before, named, instead of a dozen loose values passed along."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airgap_mirror.credentials import Credentials
from airgap_mirror.interfaces import Reporter
from airgap_mirror.store import Store
from airgap_mirror.store.snapshots import Snapshot
from airgap_mirror.sync.options import AppResult, SyncOptions

if TYPE_CHECKING:
    from airgap_mirror.apps import AppSpec
    from airgap_mirror.apps.direct import DirectDist
    from airgap_mirror.resolve import IndexConfig
    from airgap_mirror.resolve.targets import PythonTarget
    from airgap_mirror.sync.downloads import Fetched
    from airgap_mirror.sync.jobs import Job, MemoRecord, Verdict


@dataclass(slots=True, kw_only=True)
class SyncRun:
    store: Store
    opts: SyncOptions
    reporter: Reporter
    on_bytes: Callable[[int], None]
    previous: Snapshot | None  # the store's current snapshot when the run began
    # 1. The apps read: each app's result so far, and the apps that go on with their targets.
    results: dict[str, AppResult] = field(default_factory=dict)
    apps: list[tuple[AppSpec, list[PythonTarget]]] = field(default_factory=list)
    all_targets: list[PythonTarget] = field(default_factory=list)
    # 2. Each app's indexes and the direct packages built; the resolutions to make, with credentials.
    prepared: dict[str, tuple[IndexConfig, dict[int, DirectDist]]] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    credentials: Credentials = field(default_factory=Credentials)
    # 3. Each job's verdict, and what the memo is to record of the resolutions uv ran.
    resolved: dict[tuple[str, str], Verdict] = field(default_factory=dict)
    records: list[MemoRecord] = field(default_factory=list)
    # Whether each index (by URL, no credentials) gives upload times, for the cooldown (asked once).
    upload_times: dict[str, bool] = field(default_factory=dict)
    # 4. What was fetched (and what could not be).
    got: Fetched | None = None

    def fetched(self) -> Fetched:
        """Step 4's result (a step after it asks)."""
        if self.got is None:
            raise RuntimeError("the files are not fetched yet")  # (an order of steps this module never takes)
        return self.got
