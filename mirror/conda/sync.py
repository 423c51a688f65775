"""The `conda` sync extension: each app's environment.yml conda specs solved with py-rattler for each
of its targets (subdir + virtual packages, never the host's), the packages fetched and verified
into the store like any other blob.

Section `conda` of a snapshot:
    targets  {tid: {"subdir", "virtual": [[name, version], ...]}}
    files    {sha256: {"filename", "url", "channel", "subdir", "size", "name", "version", "build",
                       "record": the channel's repodata record as published upstream}}
and per app `apps[APP]["conda"][tid] = {"files": [...], "packages": [[name, version, build]], "specs",
"channels"}`.
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from airgap_mirror import logs
from airgap_mirror.apps import AppSpec
from airgap_mirror.conda import DEFAULT_ALIAS, CondaTarget, channel_url, conda_target
from airgap_mirror.credentials import Credentials, expand
from airgap_mirror.errors import InputError, MirrorError
from airgap_mirror.fetch import FetchItem
from airgap_mirror.interfaces import ExtensionOutcome, SyncContext
from airgap_mirror.store.model import Section
from airgap_mirror.urls import redact_text, strip_credentials

_log = logs.get(__name__)

__all__ = ["CondaSync", "SECTION_FORMAT"]

SECTION_FORMAT = 1
_RECORD_DROP = ("url", "channel", "fn", "file_name")


def _channels(app_channels: tuple[str, ...], alias: str) -> list[str]:
    names = [c for c in app_channels if c and c != "nodefaults"]
    if "nodefaults" not in app_channels:
        names.append("defaults")  # as conda does with no .condarc of its own
    out: list[str] = []
    for n in names:
        for url in channel_url(n, alias):
            if url not in out:
                out.append(url)
    return out


def _gateway(store: Any, channels: Iterable[str]) -> Any:
    """rattler's repodata gateway for these channels: rattler sees a private channel by its URL without
    credentials (its repodata cache writes the URL down); the Authorization header is added per request,
    for that channel's host and path only."""
    import rattler

    auth = _channel_auth(channels)
    client = rattler.Client([rattler.networking.middleware.AddHeadersMiddleware(auth)]) if auth.table else None
    return rattler.Gateway(cache_dir=store.cache / "conda" / "repodata", client=client)


# Solves of this process, by (channels, specs, target): a solve asked for an app's Python (to set its
# pip: list's target) is not run again by the sync.
_SOLVES: dict[tuple[Any, ...], list[Any]] = {}
_SOLVES_LOCK = threading.Lock()


def _specs(app: Any) -> tuple[str, ...]:
    """environment.yml's conda specs as the solver reads them: `conda env export` writes
    `name=version=build` (`ca-certificates=2020.10.14=0`), which rattler's solver refuses as written
    but its lenient reader takes (as conda does); a spec neither reads is the app's error, naming
    file and line."""
    import rattler

    out = []
    for spec in app.conda_specs:
        try:
            out.append(str(rattler.MatchSpec(spec)))
        except Exception as exc:  # noqa: BLE001 (rattler's InvalidMatchSpecError and kin)
            where = _spec_line(app.path, spec)
            raise InputError(f"{app.name} ({where}) → {spec!r}: not a conda package spec ({exc}); write it as "
                             "`name`, `name=1.2`, `name>=1.2` or `name=1.2.3=build`") from exc
    return tuple(out)


def _spec_line(folder: Path, spec: str) -> str:
    for name in ("environment.yml", "environment.yaml"):
        try:
            lines = (folder / name).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        for n, line in enumerate(lines, 1):
            if spec in line:
                return f"{name}:{n}"
        return name
    return "environment.yml"


def _solve(gateway: Any, channels: list[str], specs: tuple[str, ...], target: CondaTarget) -> list[Any]:
    import rattler

    key = (tuple(channels), specs, target)
    with _SOLVES_LOCK:
        if key in _SOLVES:
            return _SOLVES[key]
    virtual = [rattler.GenericVirtualPackage(rattler.PackageName(n), rattler.Version(v), rattler.BuildString("0"))
               for n, v in target.virtual]
    import asyncio  # (56 ms to import: only for an app with conda packages)

    records = asyncio.run(rattler.solve(
        sources=[strip_credentials(c) for c in channels], specs=list(specs), gateway=gateway,
        platforms=[rattler.Subdir(target.subdir), "noarch"], virtual_packages=virtual, channel_priority=rattler.ChannelPriority.Strict))
    with _SOLVES_LOCK:
        _SOLVES[key] = records
    return records


def _clean_host_config() -> None:
    """Nothing of the host's conda configuration reaches a solve (called after the ${VAR}s are read)."""
    for var in [v for v in os.environ if v.startswith(("CONDA_", "MAMBA_", "PIXI_")) or v in ("CONDARC", "MAMBARC")]:
        os.environ.pop(var, None)


class _channel_auth:  # noqa: N801 (a callable for rattler's AddHeadersMiddleware)
    """(host, path) → the basic-auth header of the channel whose URL carried credentials, if any."""

    def __init__(self, urls: Iterable[str]) -> None:
        self.table: list[tuple[str, str, dict[str, str]]] = []
        for url in urls:
            parts = urlsplit(url)
            if parts.username is None:
                continue
            token = base64.b64encode(f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()).decode()
            entry = ((parts.hostname or "").lower(), parts.path.rstrip("/") + "/", {"Authorization": f"Basic {token}"})
            if entry not in self.table:
                self.table.append(entry)

    def __call__(self, host: str, path: str) -> dict[str, str] | None:
        for h, prefix, headers in self.table:
            if host.lower() == h and path.startswith(prefix):
                return headers
        return None


class CondaSync:
    """The `conda` sync extension."""

    name = "conda"

    def app_python(self, app: Any, *, store: Any, platform: str, options: Any) -> str | None:
        """The Python (X.Y) the conda solve of `app` picks for `platform`: what its pip: list is
        resolved for when environment.yml leaves it open (`python>=3.10`, or no python at all). None
        when it cannot be told now (the sync reports why)."""
        if not app.conda_specs or not options.get("enabled", True):
            return None
        from airgap_mirror.resolve.targets import DEFAULT_PYTHON, PythonTarget

        try:
            channels = [expand(u, where=f"{app.name} (environment.yml)")
                        for u in _channels(app.conda_channels, str(options.get("channel-alias") or DEFAULT_ALIAS))]
            target = conda_target(PythonTarget.parse(DEFAULT_PYTHON, platform), str(options["cuda"]) if options.get("cuda") else None)
            _clean_host_config()
            records = _solve(_gateway(store, channels), channels, _specs(app), target)
        except Exception:  # noqa: BLE001 (MirrorError, ValueError, and rattler's own classes: the sync says it)
            _log.debug("the conda side's Python for %s is not known", app.name, exc_info=True)
            return None
        python = next((r for r in records if r.name.normalized == "python"), None)
        return ".".join(str(python.version).split(".")[:2]) if python is not None else None

    def sync(self, ctx: SyncContext) -> ExtensionOutcome:
        out = ExtensionOutcome()
        wanted = [a for a in ctx.apps if a.conda_specs]
        if not wanted or not ctx.options.get("enabled", True):
            return out
        opts = ctx.options
        cuda = opts.get("cuda")
        ctx.reporter.phase("conda solves", sum(len(ctx.app_targets.get(a.name, ())) or 1 for a in wanted))
        app_channels, credentials = _app_channels(wanted, str(opts.get("channel-alias") or DEFAULT_ALIAS), out)
        gateway = _gateway(ctx.store, [u for us in app_channels.values() for u in us])
        _clean_host_config()
        part = _Part()
        for app in wanted:
            if app.name not in app_channels:
                continue
            for target in _conda_targets(ctx.app_targets.get(app.name, ()), str(cuda) if cuda else None):
                ctx.reporter.advance()
                if not part.solve(out, gateway, app, app_channels[app.name], target):
                    break
        out.fetch(ctx, part.items.values(), "downloading conda packages", credentials)
        part.carry_failed(ctx, out)
        used = {s for e in out.app_entries.values() for t in e.values() for s in t["files"]}
        out.section = {"format_version": SECTION_FORMAT, "targets": part.section_targets,
                       "files": {s: part.files[s] for s in sorted(used) if s in part.files}}
        return out


def _app_channels(wanted: list[AppSpec], alias: str, out: ExtensionOutcome) -> tuple[dict[str, list[str]], Credentials]:
    """Each app's channel URLs (${VAR} from the environment, for this process only, as for pip
    indexes) and the credentials they carry; an app whose variable is missing fails."""
    credentials = Credentials.from_urls([])
    app_channels: dict[str, list[str]] = {}
    for app in wanted:
        try:
            app_channels[app.name] = [expand(u, where=f"{app.name} (environment.yml)")
                                      for u in _channels(app.conda_channels, alias)]
        except MirrorError as exc:
            out.app_errors[app.name] = str(exc)
            continue
        credentials = credentials.merged(Credentials.from_urls(app_channels[app.name]))
    return app_channels, credentials


def _conda_targets(python_targets: Iterable[Any], cuda: str | None) -> list[CondaTarget]:
    """The conda targets of an app's Python targets (each once; one with no conda subdir left out)."""
    targets: list[CondaTarget] = []
    for t in python_targets:
        try:
            ct = conda_target(t, cuda)
        except ValueError:
            continue
        if ct not in targets:
            targets.append(ct)
    return targets


class _Part:
    """The conda side's part of the snapshot in the making: its files, targets and downloads."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.section_targets: dict[str, Any] = {}
        self.items: dict[str, FetchItem] = {}

    def solve(self, out: ExtensionOutcome, gateway: Any, app: AppSpec, channels: list[str], target: CondaTarget) -> bool:
        """One app's solve for one target, its records kept and their files to fetch; False (the app
        failed, with its error in `out`) when it cannot be solved or a package cannot be verified."""
        try:
            records = _solve(gateway, channels, _specs(app), target)
        except InputError as exc:
            out.app_errors[app.name] = str(exc)
            return False
        except Exception as exc:  # noqa: BLE001 (rattler's solver and gateway raise their own classes)
            first = redact_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            out.app_errors[app.name] = (f"{app.name} (environment.yml) for conda {target.id}: {first}"
                                        f" (channels searched: {', '.join(redact_text(c) for c in channels)})")
            return False
        entry_files = []
        for rec in records:
            if rec.sha256 is None:
                out.app_errors[app.name] = (f"{app.name}: conda package {rec.file_name} has no sha256 in its "
                                            "channel's repodata, so it cannot be verified; not mirrored")
                return False
            sha = rec.sha256.hex()
            record = {k: v for k, v in json.loads(rec.to_json()).items() if k not in _RECORD_DROP}
            channel = strip_credentials(str(rec.channel or "")).rstrip("/")
            self.files[sha] = {"filename": rec.file_name, "url": strip_credentials(str(rec.url)),
                               "channel": channel, "subdir": rec.subdir, "size": rec.size, "name": rec.name.normalized,
                               "version": str(rec.version), "build": str(rec.build), "record": record}
            self.items.setdefault(sha, FetchItem(url=strip_credentials(str(rec.url)), sha256=sha, filename=rec.file_name,
                                                 size=rec.size))
            entry_files.append(sha)
        self.section_targets[target.id] = {"subdir": target.subdir, "virtual": [list(v) for v in target.virtual]}
        files = self.files
        out.app_entries.setdefault(app.name, {})[target.id] = {
            "files": sorted(entry_files), "specs": list(app.conda_specs), "channels": [redact_text(c) for c in channels],
            "packages": sorted([files[s]["name"], files[s]["version"], files[s]["build"]] for s in entry_files)}
        return True

    def carry_failed(self, ctx: SyncContext, out: ExtensionOutcome) -> None:
        """A failed app keeps its previous part, with its files and targets (Section.carry's rule)."""
        previous = ctx.previous.section("conda") if ctx.previous else Section()
        for name in out.app_errors:
            out.app_entries.pop(name, None)
            old = ctx.previous.app_part(name, "conda") if ctx.previous else {}
            kept = previous.carry(old)
            if kept is not None:
                out.kept_previous.add(name)
                out.app_entries[name] = {tid: t.to_dict() for tid, t in old.items()}
                self.files.update((s, f.to_dict()) for s, f in kept.files.items())
                self.section_targets.update((tid, t.to_dict()) for tid, t in kept.targets.items())
