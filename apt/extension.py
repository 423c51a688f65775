"""The `apt` sync extension as registered: light to load, for most syncs have no Aptfile.

The APT part itself (airgap_apt.sync: archives, indexes, closures) is some 25 ms of imports, which a sync
of Python apps alone paid on its way to starting uv; it loads here only once an app has an Aptfile
or packages.txt.
"""

from __future__ import annotations

from airgap_mirror.interfaces import ExtensionOutcome, SyncContext

__all__ = ["AptSync"]


class AptSync:
    """The `apt` sync extension (airgap_apt.sync.AptSync, loaded when an app asks for Debian packages)."""

    name = "apt"

    def sync(self, ctx: SyncContext) -> ExtensionOutcome:
        if not any(app.apt_files for app in ctx.apps):
            return ExtensionOutcome()
        from airgap_apt.sync import AptSync as Part

        return Part().sync(ctx)
