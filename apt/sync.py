"""The APT part of a sync: Aptfiles → verified suites → closure per target → .debs in the store.

Registered as the `apt` sync extension; the snapshot gets an `apt` section (targets, and every
.deb with its upstream stanza) and, per app, `apps[APP]["apt"][TARGET]` (what was asked for,
what the closure holds).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airgap_mirror import logs
from airgap_mirror.apps import AppSpec
from airgap_mirror.errors import ConfigError, InputError, IntegrityError, MirrorError, TransportError
from airgap_mirror.fetch import FetchItem, get_bytes
from airgap_mirror.interfaces import ExtensionOutcome, SyncContext
from airgap_mirror.store import atomic_write
from airgap_mirror.store.model import AppTarget, Section
from airgap_mirror.urls import redact, strip_credentials

from .aptfile import Aptfile, read_aptfile
from .archive import DEBIAN_KEYRING, Source, fetch_release, finish_cache_writes, load_suite, start_cache_writes
from .closure import Base, Request, Universe, minimal_system, resolve_closure
from .errors import UnsatisfiableError
from .index import PackagesIndex, ReleaseFile, Stanza, parse_packages

_log = logs.get(__name__)

__all__ = ["AptSync", "AptTarget", "DEFAULT_SOURCES", "SECTION_FORMAT"]

SECTION_FORMAT = 1
DEFAULT_DISTRO = "bookworm"
DEFAULT_ARCH = "amd64"
# The default and Debian's own: the release itself. Sites add {distro}-updates and the
# security archive in mirror.toml (`mirror init` writes them in).
DEFAULT_SOURCES: tuple[Mapping[str, Any], ...] = (
    {"url": "http://deb.debian.org/debian", "suites": ["{distro}"], "components": ["main"],
     "keyrings": [str(DEBIAN_KEYRING)]},
)


class _ArchiveFault(IntegrityError):
    """An upstream suite's index that cannot be read or does not match its signed Release."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AptTarget:
    distro: str
    arch: str

    @property
    def id(self) -> str:
        return f"{self.distro}-{self.arch}"


def _sources(options: Mapping[str, Any], distro: str) -> list[Source]:
    out = []
    for i, raw in enumerate(options.get("sources") or DEFAULT_SOURCES):
        try:
            rings = raw.get("keyrings") or ([raw["keyring"]] if raw.get("keyring") else [str(DEBIAN_KEYRING)])
            keyrings = tuple(Path(k) for k in rings)
            for suite in raw["suites"]:
                out.append(Source(url=str(raw["url"]).rstrip("/"), suite=suite.format(distro=distro),
                                  components=tuple(raw.get("components", ["main"])),
                                  keyrings=keyrings, trusted=bool(raw.get("trusted", False))))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"[[apt.sources]] entry {i + 1}: needs url, suites and components ({exc})") from exc
    return out


def _deb_stanza(path: Path, url: str, sha256: str, size: int) -> Stanza:
    """A Packages stanza for a .deb named by URL: its control fields plus where and what it is."""
    from debian.debfile import DebError, DebFile

    try:
        control = DebFile(str(path)).debcontrol()
    except (DebError, OSError, KeyError) as exc:
        raise InputError(f"{redact(url)} is not a readable .deb ({exc})") from exc
    md5 = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
    lines = [f"{k}: {v}" for k, v in control.items() if k not in ("Filename", "Size", "SHA256", "MD5sum")]
    lines += [f"Filename: {url.rsplit('/', 1)[-1]}", f"Size: {size}", f"MD5sum: {md5}", f"SHA256: {sha256}"]
    stanza = parse_packages("\n".join(lines) + "\n")[0]
    return Stanza(stanza.fields | {"X-Url": url}, stanza.raw)


class AptSync:
    """The `apt` sync extension."""

    name = "apt"

    def sync(self, ctx: SyncContext) -> ExtensionOutcome:
        wanted = [a for a in ctx.apps if a.apt_files]
        if not wanted:
            return ExtensionOutcome()
        run = _Run(self, ctx, wanted)
        run.read_aptfiles()
        run.closures()
        run.base_updates()
        # Download what is new; a failure fails the apps that need the file.
        run.out.fetch(ctx, run.items, "downloading .debs", started=start_cache_writes)  # (marshal holds the lock: after the starts)
        finish_cache_writes()
        run.carry_failed()
        return run.finish()

    # -- pieces --------------------------------------------------------------------------------
    def _deb(self, store: Any, url: str, prev_by_url: Mapping[str, tuple[str, Mapping[str, Any]]],
             refresh: bool) -> tuple[str, Stanza]:
        if url in prev_by_url and not refresh and store.has_blob(prev_by_url[url][0]):
            sha, meta = prev_by_url[url]
            stanza = parse_packages(meta["stanza"] + "\n")[0]
            return sha, Stanza(stanza.fields | {"X-Url": url}, stanza.raw)
        data = get_bytes(url, max_bytes=2 << 30)
        sha = store.put_bytes(data)
        return sha, _deb_stanza(store.blob_path(sha), url, sha, len(data))

    def _base(self, opts: Mapping[str, Any], universe: Any) -> Base:
        base = opts.get("base") or "required"
        if base == "none":
            return Base(label=_base_label(opts))
        if base == "required":
            return minimal_system(universe())
        path = Path(base)
        if not path.is_file():
            raise ConfigError(f"--apt-base-status {path}: no such file (copy /var/lib/dpkg/status from the target image)")
        return Base.from_status(path.read_text(encoding="utf-8", errors="replace"), label=_base_label(opts))

    def _app_target(self, app: str, aptfiles: Sequence[Aptfile], target: AptTarget, sources: list[Source],
                    debs: Mapping[str, tuple[str, Stanza]], opts: Mapping[str, Any], release: Any, universe: Any,
                    base: Any, cache: Path, *, cacheable: Callable[[], bool] = lambda: True,
                    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The closure of one app for one target, and what each of its files is.

        Cached under a key of everything it depends on (the signed Release of every suite, the
        Aptfiles, .deb URLs, base and options), so a nightly run over an unchanged archive neither
        loads nor parses a Packages index."""
        repos = [r for af in aptfiles for r in af.repos if not r.arch or target.arch in r.arch]
        app_debs = [debs[d.url] for af in aptfiles for d in af.debs if d.url in debs]
        extra_sources = [Source(url=r.url, suite=r.suite, components=r.components,
                                keyrings=(Path(r.signed_by),) if r.signed_by else sources[0].keyrings,
                                trusted=r.trusted) for r in repos]
        all_sources = [*sources, *extra_sources]
        third_party = {src.url for src in extra_sources} - {src.url for src in sources}
        for r, src in zip(repos, extra_sources, strict=False):
            try:
                release(src)
            except IntegrityError as exc:
                raise IntegrityError(
                    f"{app} ({Path(r.path).name}:{r.line}) → :repo: {r.url} {r.suite}: {exc}. Give the line the "
                    "repository's key, `:repo:deb [signed-by=/path/to/its-keyring.gpg] URL SUITE COMPONENT`, or "
                    "[trusted=yes] if it is verified by other means") from exc
        requests = [Request(name=p.name, version=p.version, arch=p.arch, origin=f"{app} ({Path(p.path).name}:{p.line})")
                    for af in aptfiles for p in af.packages]
        requests += [Request(name=st.package, version=st.version, origin=f"{app} ({redact(st.fields['X-Url'])})")
                     for _, st in app_debs if st.architecture in (target.arch, "all")]
        cached, data = _cached_closure(cache, opts, {
            "v": 3, "target": target.id, "requests": [[r.name, r.version, r.arch, r.origin] for r in requests],
            "releases": _release_keys(all_sources, release), "debs": sorted(sha for sha, _ in app_debs),
            "recommends": bool(opts.get("with_recommends"))})
        if data is not None and "error" in data:  # the same archive and requests fail the same way
            raise UnsatisfiableError(data["error"])
        if data is not None and "entry" in data and "files" in data:
            return data["entry"], data["files"]

        uni = universe(target, all_sources, tuple(st for _, st in app_debs))
        try:
            closure = resolve_closure(uni, requests, base(target, sources), with_recommends=bool(opts.get("with_recommends")))
        except UnsatisfiableError as exc:
            if cacheable():  # (not what a suite left out for this run decided)
                atomic_write(cached, json.dumps({"error": str(exc)}).encode())
            raise
        stanzas = sorted(closure.packages.values(), key=lambda s: s.package)
        metas = _file_metas(stanzas, third_party)
        entry = {
            "requested": sorted({r.name + (f"={r.version}" if r.version else "") for r in requests}),
            "packages": [[s.package, s.version, s.architecture] for s in stanzas],
            "files": sorted(metas),
        }
        if cacheable():
            atomic_write(cached, json.dumps({"entry": entry, "files": metas}).encode())
        return entry, metas



class _Run:
    """One APT sync: the apps' Aptfiles read, a closure per app and target, the base's updates, the
    downloads, and the section. The archives' Release files, suites, universes and bases are read
    once per run and shared by every app and target."""

    def __init__(self, ext: AptSync, ctx: SyncContext, wanted: list[AppSpec]) -> None:
        self.ext, self.ctx, self.wanted = ext, ctx, wanted
        self.out = ExtensionOutcome()
        self.store, self.opts = ctx.store, ctx.options
        self.targets = [AptTarget(distro=d, arch=a) for d in (self.opts.get("distros") or [DEFAULT_DISTRO])
                        for a in (self.opts.get("architectures") or [DEFAULT_ARCH])]
        self.cache = self.store.cache / "apt"
        self.prev_section = ctx.previous.section("apt") if ctx.previous else Section()
        self.parsed: dict[str, list[Aptfile]] = {}
        self.debs: dict[str, tuple[str, Stanza]] = {}
        self.files: dict[str, dict[str, Any]] = {}
        self.section_targets: dict[str, Any] = {}
        self.items: list[FetchItem] = []
        self._releases: dict[tuple[str, str], ReleaseFile] = {}
        self._suites: dict[tuple[str, str, str], list[PackagesIndex] | _ArchiveFault] = {}
        self._universes: dict[tuple[Any, ...], Universe] = {}
        self._bases: dict[str, Base] = {}
        # A suite whose index cannot be read is left out of the target's universe, as apt-get update
        # ignores it with a warning: one bad index never takes the other suites down.
        self.left_out: dict[str, dict[str, str]] = {}  # target id -> suite label -> why

    # -- the archives, read once per run ---------------------------------------------------------
    def release(self, src: Source) -> ReleaseFile:
        if (src.url, src.suite) not in self._releases:
            self._releases[(src.url, src.suite)] = fetch_release(src)
        return self._releases[(src.url, src.suite)]

    def suite(self, src: Source, arch: str) -> list[PackagesIndex]:
        key = (src.url, src.suite, arch)
        if key not in self._suites:
            if "debian.deb822" not in sys.modules:  # for the closures' relations: loads while the index downloads
                threading.Thread(target=importlib.import_module, args=("debian.deb822",), name="apt-imports",
                                 daemon=True).start()
            try:
                self._suites[key] = load_suite(src, [arch], self.cache, release=self.release(src)).indexes
            except (IntegrityError, TransportError) as exc:  # read once per sync, failed once
                self._suites[key] = _ArchiveFault(str(exc))
        got = self._suites[key]
        if isinstance(got, _ArchiveFault):
            raise got
        return got

    def universe(self, target: AptTarget, sources: Sequence[Source], extra: tuple[Stanza, ...] = ()) -> Universe:
        key = (target.id, *sources, *(st.fields.get("SHA256") for st in extra))
        if key not in self._universes:
            indexes: list[PackagesIndex] = []
            searched = []
            for src in sources:
                try:
                    indexes += self.suite(src, target.arch)
                    searched.append(src.label)
                except _ArchiveFault as exc:
                    self.left_out.setdefault(target.id, {})[src.label] = str(exc)
            if not searched:
                raise _ArchiveFault("; ".join(self.left_out[target.id].values()))
            self._universes[key] = Universe([*indexes, *extra], target.arch, searched=searched)
        return self._universes[key]

    def base(self, target: AptTarget, sources: Sequence[Source]) -> Base:
        if target.id not in self._bases:
            self._bases[target.id] = self.ext._base(self.opts, lambda: self.universe(target, sources))
        return self._bases[target.id]

    # -- what the previous snapshot had ------------------------------------------------------------
    def prev_part(self, app: str) -> Mapping[str, AppTarget]:
        return self.ctx.previous.app_part(app, "apt") if self.ctx.previous else {}

    def restore(self, app: str, tid: str, old: AppTarget, target_default: Mapping[str, Any]) -> None:
        """`app`'s previous closure for `tid` kept as it was, with its files and its target."""
        prev_targets = self.prev_section.targets
        self.out.app_entries.setdefault(app, {})[tid] = old.to_dict()
        self.files.update((s, f.to_dict()) for s, f in self.prev_section.files_of(old.files).items())
        self.section_targets.setdefault(tid, prev_targets[tid].to_dict() if tid in prev_targets else dict(target_default))

    def upstream_fault(self, app: str, target: AptTarget, exc: MirrorError) -> None:
        """An archive that fails verification fails only this app's target: it keeps its previous
        closure (with a warning naming suite and file), and the app's other targets go on."""
        old = self.prev_part(app).get(target.id)
        if old is None or not self.prev_section.has_files(old):
            self.out.app_errors.setdefault(app, f"apt {target.id}: {exc}")
            return
        self.restore(app, target.id, old, {"distro": target.distro, "arch": target.arch})
        self._warn(app, f"apt {target.id}: {exc}; the previous closure for {target.id} is kept")

    def suite_warning(self, app: str, target: AptTarget) -> None:
        for label, why in sorted(self.left_out.get(target.id, {}).items()):
            self._warn(app, f"apt {target.id}: {label} is left out ({why}); what it alone has (security updates, "
                            "say) is missing until a sync that reads it")

    def _warn(self, app: str, warning: str) -> None:
        self.out.app_warnings.setdefault(app, []).append(warning)
        if warning not in self.out.warnings:
            self.out.warnings.append(warning)

    # -- the phases ----------------------------------------------------------------------------------
    def read_aptfiles(self) -> None:
        """Aptfiles, and .debs named by URL (downloaded once; a URL is taken as immutable, like a pin)."""
        prev = self.prev_section.files
        prev_by_url = {str(m.get("url")): (sha, m.to_dict()) for sha, m in prev.items() if m.get("from_url")}
        for app in self.wanted:
            try:
                self.parsed[app.name] = [read_aptfile(p, root=None if self.opts.get("allow_outside") else True)
                                         for p in app.apt_files]
                for af in self.parsed[app.name]:
                    for d in af.debs:
                        if d.url not in self.debs:
                            self.debs[d.url] = self.ext._deb(self.store, d.url, prev_by_url, bool(self.opts.get("refresh")))
            except MirrorError as exc:
                self.out.app_errors[app.name] = str(exc)
            except Exception as exc:  # noqa: BLE001  (one app's Aptfile never stops the others)
                self.out.app_errors[app.name] = (
                    f"{app.name}: its Aptfile could not be read ({type(exc).__name__}); this is a "
                    "bug in airgap-mirror, please report it with the file's shape (not its content)")

    def closures(self) -> None:
        """Each app's closure for each target."""
        self.ctx.reporter.phase("apt closures", len(self.targets) * len(self.wanted))
        for target in self.targets:
            sources = self._verified_sources(target)
            if sources is not None:
                for app in self.wanted:
                    self.ctx.reporter.advance()
                    if app.name in self.parsed and app.name not in self.out.app_errors:
                        self._app_closure(app.name, target, sources)

    def _verified_sources(self, target: AptTarget) -> list[Source] | None:
        """The target's suites whose Release verifies (recorded in the section), or None when none
        does: each app then keeps its previous closure, or fails."""
        try:
            configured = _sources(self.opts, target.distro)
            sources = []
            for src in configured:
                try:
                    self.release(src)  # verified before anything else is read
                    sources.append(src)
                except (IntegrityError, TransportError) as exc:
                    self.left_out.setdefault(target.id, {})[src.label] = str(exc)
            if not sources:
                raise _ArchiveFault("; ".join(self.left_out[target.id].values()))
        except (IntegrityError, TransportError) as exc:
            for app in self.wanted:
                if app.name in self.parsed and app.name not in self.out.app_errors:
                    self.upstream_fault(app.name, target, exc)
            self.ctx.reporter.advance(len(self.wanted))
            return None
        except MirrorError as exc:
            for app in self.wanted:
                self.out.app_errors.setdefault(app.name, str(exc))
            self.out.errors.append(f"apt {target.id}: {exc}")
            self.ctx.reporter.advance(len(self.wanted))
            return None
        self.section_targets[target.id] = {"distro": target.distro, "arch": target.arch,
                                           "sources": [s.to_dict() for s in configured], "base": _base_label(self.opts)}
        return sources

    def _app_closure(self, app: str, target: AptTarget, sources: list[Source]) -> None:
        left_out = self.left_out
        try:
            entry, metas = self.ext._app_target(app, self.parsed[app], target, sources, self.debs, self.opts,
                                                self.release, self.universe, self.base, self.cache,
                                                cacheable=lambda: target.id not in left_out)
        except (_ArchiveFault, TransportError) as exc:
            self.upstream_fault(app, target, exc)
            return
        except MirrorError as exc:
            if target.id in left_out:  # perhaps only the suite left out has what it needs
                why = "; ".join(f"{k}: {v}" for k, v in sorted(left_out[target.id].items()))
                self.upstream_fault(app, target, _ArchiveFault(f"{exc} (with {why} left out)"))
            else:
                self.out.app_errors[app] = str(exc)
            return
        if target.id in left_out:
            old = self.prev_part(app).get(target.id)
            if old is not None and self.prev_section.has_files(old):
                # Never a closure older than the one mirrored, for want of a suite.
                self.upstream_fault(app, target, _ArchiveFault("; ".join(
                    f"{k}: {v}" for k, v in sorted(left_out[target.id].items()))))
                return
            self.suite_warning(app, target)
        self._add(metas)
        self.out.app_entries.setdefault(app, {})[target.id] = entry

    def _add(self, metas: Mapping[str, dict[str, Any]]) -> None:
        self.files.update(metas)
        self.items.extend(FetchItem(url=m["url"], sha256=sha, filename=m["filename"], size=m["size"])
                          for sha, m in metas.items())

    def base_updates(self) -> None:
        """The base's updates, per target (what `apt-get upgrade` inside takes from the mirror)."""
        opts = self.opts
        if not opts.get("patch_base", True) or str(opts.get("base") or "required") == "none":
            return
        for tid, t in list(self.section_targets.items()):
            target = AptTarget(distro=t["distro"], arch=t["arch"])
            if not any(tid in e for e in self.out.app_entries.values()) or "sources" not in t:
                continue
            sources = [src for src in _sources(opts, target.distro) if src.label not in self.left_out.get(tid, {})]
            try:
                entry, metas = _patch_closure(target, sources, opts, self.release, self.suite, self.universe, self.base,
                                              self.cache)
            except (MirrorError, KeyError) as exc:
                warning = f"apt {tid}: the base's updates are not mirrored ({exc})"
                if warning not in self.out.warnings:
                    self.out.warnings.append(warning)
                continue
            self.section_targets[tid] = {**t, "base_updates": entry}
            self._add(metas)

    def carry_failed(self) -> None:
        """Failed apps keep what the previous snapshot had for them (each target whose files it still
        has); a target's base updates whose files are not all here are left out, with a warning."""
        out, prev_section = self.out, self.prev_section
        for name in out.app_errors:
            out.app_entries.pop(name, None)
            kept = {tid: t for tid, t in self.prev_part(name).items() if prev_section.has_files(t)}
            if kept:
                out.kept_previous.add(name)
                for tid, old in kept.items():
                    self.restore(name, tid, old, {})
        prev = prev_section.files
        bad = {s for s in (i.sha256 for i in self.items) if not self.store.has_blob(s)}
        for tid, t in list(self.section_targets.items()):
            shas = (t.get("base_updates") or {}).get("files", [])
            self.files.update((s, prev[s].to_dict()) for s in shas if s not in self.files and s in prev)  # kept as it was
            if bad & set(shas) or any(s not in self.files for s in shas):  # left out, with a warning
                self.section_targets[tid] = {k: v for k, v in t.items() if k != "base_updates"}
                out.warnings.append(f"apt {tid}: the base's updates are not mirrored (a file could not be fetched)")

    def finish(self) -> ExtensionOutcome:
        """The section: its targets and the files the apps' closures and the targets' updates use."""
        out = self.out
        used = {s for e in out.app_entries.values() for t in e.values() for s in t["files"]}
        used |= {s for t in self.section_targets.values() for s in (t.get("base_updates") or {}).get("files", [])}
        out.section = {"format_version": SECTION_FORMAT, "targets": self.section_targets,
                       "files": {s: self.files[s] for s in sorted(used) if s in self.files}}
        return out


def _patch_closure(target: AptTarget, sources: Sequence[Source], opts: Mapping[str, Any], release: Any,
                   suite: Callable[[Source, str], list[PackagesIndex]], universe: Callable[..., Universe],
                   base: Callable[..., Base], cache: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The base's updates for one target: the newer versions the suites have of the packages the
    target's base has (the image's own, from its dpkg status, or those of a minimal system of the
    first suite, as released), with what they need: what `apt-get upgrade` inside takes from the
    mirror. Cached under the signed Releases and the base, as the closures are."""
    from debian.debian_support import version_compare

    cached, data = _cached_closure(cache, opts, {"v": 1, "patch": target.id, "releases": _release_keys(sources, release)})
    if data is not None and "entry" in data and "files" in data:
        return data["entry"], data["files"]
    uni = universe(target, sources)
    have = base(target, sources)
    if not have.exact:  # the versions a minimal system of the suite had as released
        have = minimal_system(Universe(suite(sources[0], target.arch), target.arch, searched=[sources[0].label]))
    newer = [n for n, v in sorted(have.versions.items())
             if (c := uni.candidate(n)) is not None and version_compare(c.version, v) > 0]
    closure = resolve_closure(uni, [Request(name=n, origin=f"base updates of {target.id}") for n in newer], have)
    stanzas = sorted(closure.packages.values(), key=lambda s: s.package)
    metas = _file_metas(stanzas, set())
    entry = {"packages": [[s.package, s.version, s.architecture] for s in stanzas], "files": sorted(metas)}
    atomic_write(cached, json.dumps({"entry": entry, "files": metas}).encode())
    return entry, metas


def _release_keys(sources: Sequence[Source], release: Callable[[Source], ReleaseFile]) -> list[list[Any]]:
    """Each suite of a closure by its signed Release (a new Release is a new closure)."""
    return [[s.url, s.suite, list(s.components), hashlib.sha256(release(s).raw.encode()).hexdigest()] for s in sources]


def _cached_closure(cache: Path, opts: Mapping[str, Any], key_doc: dict[str, Any]) -> tuple[Path, dict[str, Any] | None]:
    """Where a closure of everything in `key_doc` (and the base) is cached, and what is cached there:
    None when nothing is, when `--refresh` says to compute it again, or when it does not read (then
    removed)."""
    base_opt = str(opts.get("base") or "required")
    base = (base_opt if base_opt in ("required", "none") or not Path(base_opt).is_file()
            else hashlib.sha256(Path(base_opt).read_bytes()).hexdigest())
    key = hashlib.sha256(json.dumps({**key_doc, "base": base}, sort_keys=True).encode()).hexdigest()
    cached = cache / "closures" / f"{key}.json"
    if not cached.is_file() or opts.get("refresh"):
        return cached, None
    try:
        data = json.loads(cached.read_text())
        if isinstance(data, dict):
            return cached, data
    except (OSError, ValueError) as exc:
        _log.debug("cache entry %s unreadable (%s): made again", cached.name, exc)
    cached.unlink(missing_ok=True)
    return cached, None


def _file_metas(stanzas: Sequence[Stanza], third_party: set[str]) -> dict[str, dict[str, Any]]:
    """What the snapshot says of each .deb of a closure, by sha256."""
    metas: dict[str, dict[str, Any]] = {}
    for s in stanzas:
        sha = s.fields.get("SHA256")
        if not sha:
            raise IntegrityError(f"{s.package} {s.version}: its index gives no SHA256, so it cannot be verified")
        url = s.fields.get("X-Url") or f"{s.fields['X-Origin']}/{s.fields['Filename']}"
        metas[sha] = {"package": s.package, "version": s.version, "architecture": s.architecture,
                      "size": int(s.fields.get("Size", 0)), "filename": s.fields["Filename"].rsplit("/", 1)[-1],
                      "url": strip_credentials(url), "stanza": s.raw}
        if "X-Url" in s.fields:
            metas[sha]["from_url"] = True
        if "X-Url" in s.fields or s.fields.get("X-Origin") in third_party:
            # The app's own :repo: or .deb URL: published in the app's own component, never
            # where another app's machines could take it for a Debian package.
            metas[sha]["third_party"] = True
    return metas


def _base_label(opts: Mapping[str, Any]) -> str:
    base = str(opts.get("base") or "required")
    if base == "none":
        return "nothing (complete closure)"
    if base == "required":
        return "the suite's required packages"
    return f"dpkg status {Path(base).name}"
