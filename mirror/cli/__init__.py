"""The `mirror` command line: flags and config merged, progress shown, errors mapped to exit codes.

The way in. Also here: config (mirror.toml).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from airgap_mirror.cli.common import (
    ConfigOpt,
    JsonOpt,
    StoreOpt,
    cli_errors,
    config_and_store,
    console,
    escape,
    fail_with,
    interactive,
)
from airgap_mirror.cli.config import EXAMPLE_CONFIG, Config
from airgap_mirror.errors import ConfigError, InputError, MirrorError, StoreError
from airgap_mirror.store import open_store
from airgap_mirror.store.model import PythonFile
from airgap_mirror.urls import redact_text

if TYPE_CHECKING:
    from airgap_mirror.resolve import IndexConfig
    from airgap_mirror.sync import SyncOptions

app = typer.Typer(
    name="mirror",
    help="airgap-mirror: resolve, fetch, bundle and serve every dependency of your apps across an air gap.\n\n"
         "Exit codes: 0 done; 1 some app or file failed (the rest is recorded); 2 bad input; 3 no resolution; "
         "4 network; 5 integrity (a hash or signature); 6 store missing or busy; 7 disk full.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            print(f"airgap-mirror {version('airgap-mirror')}")
        except PackageNotFoundError:
            print("airgap-mirror (not installed)")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
    verbose: Annotated[int, typer.Option("--verbose", "-v", count=True,
                                         help="Log what the run passes over on stderr (-v: info, -vv: debug).")] = 0,
    log_file: Annotated[Path | None, typer.Option("--log-file", help="Append a debug log to this file.",
                                                  dir_okay=False)] = None,
) -> None:
    """airgap-mirror: resolve, fetch, bundle and serve every dependency of your apps across an air gap.

    Example: `mirror -v sync apps/dash-app` (what a quiet run passes over, on stderr);
    `mirror --log-file /var/log/airgap-mirror.log sync` for the nightly.
    """
    from airgap_mirror import logs

    logs.configure(verbose, log_file)


class _PlainReporter:
    """No bars (CI, --json, pipes): what the work notes still reaches the console."""

    enabled = False

    def __enter__(self) -> _PlainReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def lane(self) -> _PlainReporter:
        return self

    def phase(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        console.print(message)


def _reporter(enabled: bool) -> Any:
    """Progress bars on a terminal (rich's, loaded only then: 13 ms); nothing otherwise."""
    if not enabled:
        return _PlainReporter()
    from airgap_mirror.cli.progress import RichReporter

    return RichReporter()


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path("mirror.toml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented example mirror.toml.

    Example: `mirror init && $EDITOR mirror.toml`
    """
    if path.exists() and not force:
        console.print(f"[red]error:[/] {path} exists (use --force to overwrite)")
        raise typer.Exit(2)
    path.write_text(EXAMPLE_CONFIG, encoding="utf-8")
    console.print(f"wrote {path}")


def _base_index(index_url: str | None, extra: list[str] | None, cfg: Config, pip_env: bool) -> IndexConfig:
    """The site's upstream indexes: flags, else PIP_* (with --pip-env), else mirror.toml; ${VAR} expanded."""
    from airgap_mirror.credentials import expand
    from airgap_mirror.resolve import IndexConfig

    env_index = os.environ.get("PIP_INDEX_URL") if pip_env else None
    env_extra = os.environ.get("PIP_EXTRA_INDEX_URL", "").split() if pip_env else []
    chosen = index_url or env_index or cfg.index_url
    extras = tuple(extra or env_extra or cfg.extra_index_urls)
    return IndexConfig(index_url=expand(chosen, where="upstream index"),
                       extra_index_urls=tuple(expand(u, where="extra upstream index") for u in extras),
                       trusted_hosts=tuple(os.environ.get("PIP_TRUSTED_HOST", "").split()) if pip_env else ())


def _warnings_seen(st: Any) -> set[str]:
    """The warnings the last sync printed (keys of them), kept beside the store's state."""
    try:
        data = json.loads((st.base / "warnings-seen.json").read_text())
        return {k for k in data if isinstance(k, str)} if isinstance(data, list) else set()
    except (OSError, ValueError):
        return set()


def _remember_warnings(st: Any, keys: set[str]) -> None:
    from airgap_mirror.store import atomic_write

    try:
        atomic_write(st.base / "warnings-seen.json", json.dumps(sorted(keys)).encode())
    except OSError:  # (only what is printed next time depends on it)
        pass


def _check_sync_input(opts: SyncOptions, *, named_apps: tuple[Path, ...]) -> None:
    """Bad input is exit 2 before anything runs: app folders named on the command line that do not
    exist (with the closest names beside them), and target versions and platforms."""
    import difflib

    from airgap_mirror.errors import InputError
    from airgap_mirror.resolve.targets import PythonTarget

    for folder in named_apps:
        if not Path(folder).is_dir():
            parent = Path(folder).parent if Path(folder).parent.is_dir() else Path(".")
            near = difflib.get_close_matches(Path(folder).name, [p.name for p in parent.iterdir() if p.is_dir()], n=3)
            raise InputError(f"app folder {folder} does not exist"
                             + (f": did you mean {', '.join(str(parent / n) for n in near)}?" if near else ""))
    for py in opts.pythons:
        for plat in opts.platforms:
            PythonTarget.parse(py, plat)
    if not opts.pythons:
        for plat in opts.platforms:
            PythonTarget.parse("3.11", plat)


@app.command()
def sync(
    apps: Annotated[list[Path] | None, typer.Argument(help="App folders to sync; the store's other apps are kept as they were (default: [apps] paths in mirror.toml, else the folders earlier syncs named).")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    python: Annotated[list[str] | None, typer.Option("--python", help="Target Python X.Y[.Z]; repeatable [default: runtime.txt, else 3.11].")] = None,
    platform: Annotated[list[str] | None, typer.Option("--platform", help="Target platform tag (pip's vocabulary); repeatable [default: manylinux_2_28_x86_64].")] = None,
    target: Annotated[list[str] | None, typer.Option("--target", help="One target as PYTHON:PLATFORM (3.12:manylinux2014_aarch64); repeatable; two give two targets, not the --python x --platform product.")] = None,
    index_url: Annotated[str | None, typer.Option("--index-url", help="Upstream index [default: https://pypi.org/simple].")] = None,
    extra_index_url: Annotated[list[str] | None, typer.Option("--extra-index-url", help="Extra upstream index; repeatable.")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", help="Parallel downloads [default 16; files of 4 MiB or more: 4 at a time].")] = None,
    installers: Annotated[str | None, typer.Option("--installers", help="Comma-separated installer packages mirrored per target ('' for none) [default pip,setuptools,wheel].")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Re-resolve every app with uv and revalidate every cached page and Release (default: reuse a resolution none of whose index pages changed).")] = False,
    detailed_exit_code: Annotated[bool, typer.Option("--detailed-exit-code", help="Exit 0 unchanged, 2 changed, 1 failed (for nightly jobs).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail an app whose private-index project also exists on the public index with other files (dependency confusion).")] = False,
    pip_env: Annotated[bool, typer.Option("--pip-env", help="Take the upstream index from PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, as pip on this machine would.")] = False,
    only_binary: Annotated[list[str] | None, typer.Option("--only-binary", help="Wheels only for these projects (comma-separated, ':all:' for every one), as pip's flag: a target with no wheel fails instead of getting an sdist to build inside.")] = None,
    allow_outside_app: Annotated[bool, typer.Option("--allow-outside-app", help="Let apps name files outside their own folder (-r ../shared.txt, /opt/wheels/x.whl); off, such a line is refused.")] = False,
    prefer_binary: Annotated[bool, typer.Option("--prefer-binary", help="Where a target would get an sdist, take the newest version that has a wheel for it (pip's flag).")] = False,
    requirements_file: Annotated[list[str] | None, typer.Option("--requirements-file", help="Also read this requirements file in each app that has it (e.g. requirements-predeploy.txt); repeatable.")] = None,
    prune: Annotated[bool, typer.Option("--prune", help="Remove the store's apps that this sync does not name (without it they are kept as they were, and the summary lists them).")] = False,
    all_warnings: Annotated[bool, typer.Option("--all-warnings", help="Print every warning, also those the last sync printed (by default they are counted).")] = False,
    as_json: JsonOpt = False,
    **plugin_options: Any,
) -> None:
    """Resolve every app for every target, fetch what is missing into the store, record a snapshot.

    Example: `mirror sync apps/dash-app --python 3.11 --python 3.9 --platform manylinux_2_28_x86_64 --platform manylinux2014_aarch64 --distro bookworm --arch amd64`

    Targets as pairs: `mirror sync apps/dash-app --target 3.12:manylinux2014_aarch64 --target 3.10:manylinux_2_28_x86_64`
    (with --python or --platform as well, their product is added).

    Apps belong to the store: `mirror sync apps/new-app` adds or updates that app and keeps every
    other app as it was; `--prune` (or `mirror apps remove NAME`) removes what is no longer named.
    Targets too: a run with --python / --platform / --target / --distro / --arch keeps the apps'
    other targets as they were (unless --prune).

    An app's Aptfile / packages.txt is mirrored for every --distro x --arch, with the packages the
    target already has (--apt-base) left out.

    Exit codes: 0 all apps mirrored; 1 some app or file failed (the others are recorded); 2 bad input.
    """
    with cli_errors():
        cfg, root = config_and_store(config, store)
        app_dirs = tuple(apps or cfg.apps)
        if not app_dirs and (root / "store-v1").is_dir():
            app_dirs = tuple(Path(p) for p in open_store(root).app_folders().values() if Path(p).is_dir())
        if not app_dirs:
            console.print("[red]error:[/] no app folders: name them, or list them under \\[apps] paths in mirror.toml")
            raise typer.Exit(2)
        from airgap_mirror.apps.locks import MANAGER_FILES
        from airgap_mirror.resolve.targets import parse_target_pair
        from airgap_mirror.sync import SyncOptions, run_sync

        # --target pairs (else [[targets]]) are the targets; --python / --platform add their product,
        # and given alone they replace the config's pairs.
        pairs = tuple(dict.fromkeys(parse_target_pair(t) for t in target)) if target else cfg.targets
        if (python or platform) and not target:
            pairs = ()
        opts = SyncOptions(
            apps=app_dirs,
            pythons=tuple(python or cfg.pythons),
            platforms=tuple(platform or cfg.platforms),
            targets=pairs,
            cross_product=not pairs or bool(python or platform),
            index=_base_index(index_url, extra_index_url, cfg, pip_env or cfg.pip_env),
            strict=strict or cfg.strict,
            requirement_files=tuple(dict.fromkeys((*cfg.requirement_files, *(requirements_file or ())))),
            only_binary=tuple(dict.fromkeys(n.strip() for v in (only_binary or cfg.only_binary) for n in v.split(",") if n.strip())),
            prefer_binary=prefer_binary or cfg.prefer_binary,
            allow_outside=allow_outside_app or cfg.allow_outside,
            installers=tuple(i for i in installers.split(",") if i) if installers is not None else cfg.installers,
            concurrency=concurrency or cfg.concurrency,
            resolver_jobs=cfg.resolver_jobs,
            refresh=refresh,
            extensions=_extension_options(cfg, plugin_options, refresh=refresh,
                                          allow_outside=allow_outside_app or cfg.allow_outside),
            prune=prune,
            narrowed=bool(python or platform or target
                          or any(plugin_options.get(k) for k in ("distro", "arch"))),
            package_managers=cfg.package_managers or tuple(MANAGER_FILES),
            package_manager_first_wins=cfg.package_manager_first_wins,
        )
        _check_sync_input(opts, named_apps=tuple(apps or ()))
        st = open_store(root, create=True)
        with _reporter(interactive(as_json)) as rep:
            with st.lock("sync"):
                result = run_sync(st, opts, reporter=rep)
                if result.snapshot_id:
                    st.remember_app_folders({a.name: str(Path(a.path).absolute()) for a in result.apps},
                                            forget=result.removed_apps)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        # Each warning once per change: what the last sync already said is counted, not said again
        # (a nightly printed the same 23 long warnings every night, and its one failure drowned);
        # failures come last, counted.
        seen = _warnings_seen(st)
        said: set[str] = set()
        quiet = 0

        def warn(prefix: str, where: str, text: str) -> None:
            nonlocal quiet
            key = hashlib.sha256(f"{where}\0{text}".encode()).hexdigest()[:24]
            said.add(key)
            if key in seen and not all_warnings:
                quiet += 1
            else:
                console.print(f"{prefix}[yellow]warning:[/] {escape(redact_text(text))}", highlight=False)

        for a in sorted(result.apps, key=lambda a: not a.ok):
            mark = "[green]ok[/]" if a.ok else "[red]FAILED[/]"
            how = ", ".join(filter(None, [a.package_manager, f"Python {a.python} from {a.python_from}" if a.python_from else None]))
            console.print(f"{mark} {a.name}: {', '.join(a.targets) or '-'}" + (f" ({how})" if how else ""), highlight=False)
            for w in a.warnings:
                warn("   ", a.name, w)
            if a.error:
                console.print(f"   [red]{escape(redact_text(a.error))}[/]" + (" (previous lock kept)" if a.kept_previous else ""),
                              highlight=False, markup=True)
        for w in result.warnings:
            warn("", "", w)
        for e in result.fetch_errors:
            console.print(f"[red]fetch error:[/] {e}", highlight=False)
        if quiet:
            console.print(f"{quiet} warnings unchanged since the last sync (`mirror sync --all-warnings` shows them)",
                          highlight=False)
        _remember_warnings(st, said)
        if result.kept_apps:
            console.print(f"kept as they were (not named by this sync): {', '.join(result.kept_apps)}; "
                          "`mirror sync --prune` or `mirror apps remove NAME` removes an app", highlight=False)
        if result.removed_apps:
            console.print(f"removed (--prune): {', '.join(result.removed_apps)}", highlight=False)
        for name, tids in result.kept_targets.items():
            console.print(f"{name}: targets kept as they were (not named by this sync; --prune removes them): "
                          f"{', '.join(tids)}", highlight=False)
        console.print(
            f"{len(result.apps)} apps, {len(result.targets)} targets, {result.files_total} files: "
            f"{result.files_fetched} fetched ({result.bytes_fetched / 1e6:.1f} MB), {result.files_present} already present; "
            f"{result.resolutions_run} resolutions by uv, {result.resolutions_reused} unchanged since the last sync; "
            f"snapshot {(result.snapshot_id or '-')[:16]}" + (" (unchanged)" if not result.changed and result.snapshot_id else ""),
            highlight=False,
        )
        failed = [a.name for a in result.apps if not a.ok]
        if failed:  # the last line: what a reader of a nightly's log must not miss
            console.print(f"[red]FAILED: {len(failed)} of {len(result.apps)} apps[/] ({', '.join(failed)})", highlight=False)
    if not result.ok:
        raise typer.Exit(1)
    raise typer.Exit((2 if result.changed else 0) if detailed_exit_code else 0)


@app.command()
def publish(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="The URL clients reach the mirror at (default: [serve] url, else the last one given); published pylock.toml files point there.")] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="Also upload the tree to object storage, s3://BUCKET/PREFIX (repeatable) [default: [publish] targets]. Endpoint, region and credentials from AWS_* variables or ~/.aws.")] = None,
    grace: Annotated[str | None, typer.Option("--grace", help="How long an object the new tree no longer has stays in the bucket before it is deleted (1d, 12h, 0) [default: [publish] grace, else 1d].")] = None,
    local_only: Annotated[bool, typer.Option("--local-only", help="Publish the local tree only, not to [publish] targets.")] = False,
    check: Annotated[bool, typer.Option("--check", help="With --to: list the bucket instead of trusting the last publish's record of it (puts back objects removed behind our back).")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=256, help="With --to: uploads at once.")] = 32,
    as_json: JsonOpt = False,
) -> None:
    """Build the static index tree for the newest snapshot and switch it in atomically; then upload
    it to object storage when asked (--to, or [publish] targets in mirror.toml). With --to and the
    local tree already of the current snapshot, that tree is uploaded as it is.

    Example: `mirror publish --store /srv/mirror-store --base-url https://pypi.internal.example`;
    `AWS_ENDPOINT_URL=https://s3.internal:9000 mirror publish --to s3://pypi-mirror/prod`
    """
    from airgap_mirror.cli.common import push_to_buckets
    from airgap_mirror.publish import current_tree, published_snapshot
    from airgap_mirror.publish import publish as do_publish

    with cli_errors():
        cfg, root = config_and_store(config, store)
        targets = list(to or ([] if local_only else cfg.publish_targets))
        st = open_store(root)
        with st.lock("publish", wait=60):
            tree = current_tree(st)
            if tree is None or not (to and base_url is None and published_snapshot(st) == st.ref("current")):
                tree = do_publish(st, url=base_url or cfg.serve_url)
                if not as_json:
                    console.print(f"published snapshot {(st.ref('current') or '')[:16]} at {st.published / 'current'}")
            buckets = push_to_buckets(tree, targets, grace or cfg.publish_grace, shown=interactive(as_json), check=check,
                                      concurrency=jobs)
    if as_json:
        print(json.dumps({"tree": str(tree), "snapshot": st.ref("current"), "buckets": buckets}))


@app.command()
def status(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="Also say what this bucket holds, s3://BUCKET/PREFIX (repeatable) [default: [publish] targets].")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Which snapshot is current, which is published, and which each object-storage target holds.

    Example: `mirror status`; `mirror status --to s3://pypi-mirror/prod --json`
    """
    from airgap_mirror.publish import published_snapshot
    from airgap_mirror.publish.s3 import Target, bucket_state

    with cli_errors():
        cfg, root = config_and_store(config, store)
        st = open_store(root)
        current, published = st.ref("current"), published_snapshot(st)
        buckets = []
        for t in to or cfg.publish_targets:
            target = Target.parse(t)
            state = bucket_state(target)
            entry: dict[str, Any] = {"target": str(target), "snapshot": None}
            if state is not None:
                objects = state["objects"].values()
                entry.update(snapshot=state.get("snapshot"), published=state.get("published"), objects=len(objects),
                             bytes=sum(o[1] for o in objects), retired=len(state.get("retired", {})))
            entry["up_to_date"] = entry["snapshot"] is not None and entry["snapshot"] == current
            buckets.append(entry)
    if as_json:
        print(json.dumps({"store": str(root), "current": current, "published": published, "buckets": buckets}, indent=2))
        return
    console.print(f"current snapshot:   {current[:16] if current else 'none (run `mirror sync`)'}", highlight=False)
    console.print(f"published locally:  {published[:16] if published else 'nothing'}"
                  + ("" if not current or published == current else "  (behind: run `mirror publish`)"), highlight=False)
    for b in buckets:
        if b["snapshot"] is None:
            console.print(f"{b['target']}: holds nothing published (run `mirror publish --to {b['target']}`)", highlight=False)
            continue
        console.print(f"{b['target']}: snapshot {b['snapshot'][:16]}, published {b['published']}, {b['objects']} objects, "
                      f"{b['bytes'] / 1e6:.1f} MB, {b['retired']} retired awaiting deletion"
                      + ("" if b["up_to_date"] else f"  (behind: run `mirror publish --to {b['target']}`)"), highlight=False)


@app.command()
def serve(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to bind [default 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port [default 8080; 0 picks a free one].")] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="TLS certificate (PEM, with its chain); serves HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="TLS private key (PEM).")] = None,
    htpasswd: Annotated[Path | None, typer.Option("--htpasswd", help="Require HTTP basic auth from this htpasswd file (bcrypt: `htpasswd -B`).")] = None,
    tokens: Annotated[Path | None, typer.Option("--tokens", help="Accept bearer tokens from this file (NAME:TOKEN per line).")] = None,
    access_log: Annotated[str | None, typer.Option("--access-log", help="Log every request in combined format to this file, or - for stdout.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes [default: one per core]; 0 serves from one process with Python's own HTTP server (for debugging).")] = None,
) -> None:
    """Serve the published tree (PEP 503/691 index, APT repository, /health, /metrics, a front page),
    publishing first if missing or stale.

    Example: `mirror serve --host 0.0.0.0 --port 443 --tls-cert fullchain.pem --tls-key key.pem --htpasswd /etc/airgap-mirror/htpasswd`,
    then `pip install --index-url https://USER:PASSWORD@HOST/simple/ ...`

    Auth is off by default and read-only always; /health answers without it. The htpasswd and
    tokens files are re-read when they change.
    """
    from airgap_mirror.publish import publish as do_publish
    from airgap_mirror.publish import published_snapshot
    from airgap_mirror.serve import make_server, tls_context
    from airgap_mirror.serve.auth import Auth

    log = None
    try:
        cfg, root = config_and_store(config, store)
        st = open_store(root)
        cert, key = tls_cert or cfg.tls_cert, tls_key or cfg.tls_key
        if (cert is None) != (key is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key (or tls-cert and tls-key under [serve])")
        tls = tls_context(cert, key) if cert is not None and key is not None else None
        pw, tok = htpasswd or cfg.htpasswd, tokens or cfg.tokens
        auth = Auth(pw, tok) if pw or tok else None
        where = access_log or cfg.access_log
        if where == "-":
            log = sys.stdout
        elif where:
            log = open(where, "a", encoding="utf-8")  # noqa: SIM115  (open for the server's life)
        if st.ref("current") and published_snapshot(st) != st.ref("current"):
            try:
                with st.lock("publish"):
                    do_publish(st, url=cfg.serve_url)
            except StoreError as exc:  # a sync or import is running: serve what is published
                console.print(f"[yellow]warning:[/] not republishing now: {exc}")
            except OSError as exc:  # a read-only store (the hardened unit): serve what is published
                console.print(f"[yellow]warning:[/] not republishing (the store is not writable here: {exc.strerror})")
        bind_host, bind_port = host or cfg.host, cfg.port if port is None else port
        n_workers = (os.cpu_count() or 1) if workers is None else workers
        if n_workers > 0:
            from airgap_mirror.serve.rsgi import serve as serve_rsgi

            if log is not None and log is not sys.stdout:
                log.close()
                log = None
            settings = {"htpasswd": str(pw) if pw else None, "tokens": str(tok) if tok else None, "url": cfg.serve_url,
                        "access_log": os.path.abspath(where) if where and where != "-" else where}
            serve_rsgi(st.published, bind_host, bind_port, workers=n_workers, settings=settings,
                       tls=(cert, key) if cert is not None and key is not None else None,
                       on_ready=lambda url: print(f"serving {st.published / 'current'} at {url}/simple/", flush=True))
            return
        server = make_server(st.published, bind_host, bind_port, access_log=log, tls=tls, auth=auth, url=cfg.serve_url)
    except MirrorError as exc:
        raise fail_with(exc) from exc
    except OSError as exc:
        console.print(f"[red]error:[/] cannot listen on {host or cfg.host}:{port if port is not None else cfg.port}: {exc}")
        raise typer.Exit(2) from exc
    print(f"serving {st.published / 'current'} at {server.url}/simple/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if log is not None and log is not sys.stdout:
            log.close()


@app.command()
def lock(
    app_dir: Annotated[Path, typer.Argument(help="The app folder (its name is the app's name in the mirror).")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    python: Annotated[str | None, typer.Option("--python", help="Target Python X.Y (needed when the app has several targets).")] = None,
    platform: Annotated[str | None, typer.Option("--platform", help="Target platform tag (needed when the app has several).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the lock here [default: stdout].")] = None,
    snapshot: Annotated[str, typer.Option("--snapshot", help="Snapshot: an id or unique prefix, current, previous, last-exported[:SITE] or a bundle file.")] = "current",
) -> None:
    """Write the app's air-gap requirements: every package pinned with --hash, git / path / URL lines as name==version.

    Example: `mirror lock apps/dash-app --python 3.11 -o requirements.lock`, then inside the gap
    `pip install --require-hashes -r requirements.lock --index-url http://mirror.internal:8080/simple/`
    """
    from airgap_mirror.maintenance.history import resolve_snapshot
    from airgap_mirror.publish.lockview import choose_target

    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        snap = st.snapshot(resolve_snapshot(st, snapshot))
        tid, part = choose_target(snap, app_dir, python, platform)
        if not part.requirements_lock:
            raise InputError(f"{tid}: the snapshot has no requirements lock for this target")
        data = st.blob_path(part.requirements_lock).read_bytes()
    if output is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        output.write_bytes(data)
        console.print(f"wrote {output} ({tid})", highlight=False)


@app.command("client-config")
def client_config(
    url: Annotated[str, typer.Option("--url", help="The mirror's base URL as clients reach it.")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    app_dir: Annotated[Path | None, typer.Option("--app", help="Also say what, if anything, to change in this app folder.")] = None,
    ca_cert: Annotated[str, typer.Option("--ca-cert", help="Where clients keep the CA certificate of an https:// mirror.")] = "/etc/ssl/certs/airgap-mirror-ca.pem",
    user: Annotated[str | None, typer.Option("--user", help="The mirror asks for credentials: show how each client passes them for this user.")] = None,
) -> None:
    """Print how pip, uv, requirements files and apt point at the mirror (and, for https:// or
    --user, how each trusts its CA and passes credentials).

    Example: `mirror client-config --url https://mirror.internal --user ci --app apps/dash-app`
    """
    if app_dir is not None:
        from airgap_mirror.publish.lockview import app_advice

        with cli_errors():
            cfg, root = config_and_store(config, store)
            print(app_advice(open_store(root), app_dir, url, extra_files=cfg.requirement_files))
        if any((app_dir / n).is_file() for n in ("Aptfile", "packages.txt", "environment.yml", "environment.yaml")):
            _plugin_client_config(url.rstrip("/").removesuffix("/simple"), config, store, app=app_dir.resolve().name)
        return
    base = url.rstrip("/")
    if base.endswith("/simple"):
        base = base[: -len("/simple")]
    simple = f"{base}/simple/"
    host = base.split("://", 1)[-1].split("/", 1)[0].split(":")[0]
    trusted = f"trusted-host = {host}\n" if base.startswith("http://") else ""
    print(f"""# pip: /etc/pip.conf (system), ~/.config/pip/pip.conf (user) or $VIRTUAL_ENV/pip.conf
[global]
index-url = {simple}
{trusted}
# pip or uv through the environment
export PIP_INDEX_URL={simple}
export UV_DEFAULT_INDEX={simple}   # uv ignores pip.conf (uv before 0.4.23: UV_INDEX_URL)
{"export PIP_TRUSTED_HOST=" + host if trusted else ""}
# uv: /etc/uv/uv.toml or ~/.config/uv/uv.toml
[[index]]
url = "{simple}"
default = true

# a requirements file: first line
--index-url {simple}
""".replace("\n\n\n", "\n\n"))
    if base.startswith("https://"):
        print(f"""# TLS: the mirror's certificate comes from your CA; copy the CA certificate to {ca_cert}
#   (or add it to the system store: cp CA.pem /usr/local/share/ca-certificates/airgap-mirror.crt && update-ca-certificates)
# pip: in pip.conf [global]  cert = {ca_cert}   (or export PIP_CERT={ca_cert}; where REQUESTS_CA_BUNDLE
#      is set, as on many managed machines, pip takes that instead: point it at the same file)
# uv:  export SSL_CERT_FILE={ca_cert}   (or, with the CA in the system store, uv --native-tls / UV_NATIVE_TLS=1)
""")
    if user:
        cred_host = base.split("://", 1)[-1].split("/", 1)[0]
        scheme = base.split("://", 1)[0]
        print(f"""# credentials for {user} (the password, or a token from the mirror's tokens file)
# pip: the index URL carries them:  index-url = {scheme}://{user}:PASSWORD@{cred_host}/simple/
#      or ~/.netrc:  machine {cred_host.split(':')[0]} login {user} password PASSWORD
# uv:  name the index, and give its credentials in the environment:
#      [[index]] name = "mirror", url = "{simple}", default = true
#      export UV_INDEX_MIRROR_USERNAME={user} UV_INDEX_MIRROR_PASSWORD=PASSWORD
# apt: /etc/apt/auth.conf.d/airgap-mirror.conf (mode 600):  machine {cred_host} login {user} password PASSWORD
# anything else: Authorization: Bearer TOKEN
""")
    _plugin_client_config(base, config, store)


def _plugin_client_config(base: str, config: Path | None, store: Path | None, app: str | None = None) -> None:
    """What each plug-in adds to `client-config` (the APT side: a deb822 .sources entry)."""
    from airgap_mirror.interfaces import client_config_hooks
    from airgap_mirror.store import Store

    try:
        _, root = config_and_store(config, store)
    except MirrorError:
        return
    for hook in client_config_hooks():
        text = hook(base, Store(root), app=app) if app is not None else hook(base, Store(root))
        if text:
            print(text)


apps_app = typer.Typer(name="apps", help="The store's apps: list them, remove one.\n\nExample: `mirror apps`; `mirror apps remove old-dashboard`",
                       invoke_without_command=True, rich_markup_mode="markdown")
app.add_typer(apps_app)


@apps_app.callback()
def apps_list(ctx: typer.Context, store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List the apps of the store's current snapshot: name, targets, files, and the folder a sync reads it from.

    Example: `mirror apps --store /srv/mirror-store`
    """
    if ctx.invoked_subcommand:
        return
    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        sid = st.ref("current")
        snap = st.snapshot(sid) if sid else None
        folders = st.app_folders()
    rows: list[dict[str, Any]] = []
    for name, entry in sorted((snap.apps if snap else {}).items()):
        targets = sorted(tid for tid, _t in entry.all_targets())
        rows.append({"name": name, "targets": targets, "files": len(entry.files()), "folder": folders.get(name)})
    if as_json:
        print(json.dumps({"snapshot": sid, "apps": rows}, indent=2))
        return
    if not rows:
        print("no apps: `mirror sync APP_FOLDER` adds one")
    for r in rows:
        print(f"{r['name']:<32} {r['files']:>5} files  {', '.join(r['targets']) or '-'}  ({r['folder'] or 'folder not known here'})")


@apps_app.command("remove")
def apps_remove(
    names: Annotated[list[str], typer.Argument(help="App names, as `mirror apps` lists them.")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove apps from the store: a new snapshot without them and what only they used (their
    blobs go at the next `mirror gc`); `mirror diff` and the next bundle show them removed.

    Example: `mirror apps remove old-dashboard && mirror publish`
    """
    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        with st.lock("apps remove"):
            sid = st.ref("current")
            snap = st.snapshot(sid) if sid else None
            unknown = [n for n in names if snap is None or n not in snap.apps]
            if unknown:
                known = ", ".join(sorted(snap.apps)) if snap else "none"
                raise InputError(f"no app named {', '.join(unknown)} in the current snapshot (its apps: {known})")
            assert snap is not None
            kept = snap.restricted_to(sorted(set(snap.apps) - set(names)))
            files, nbytes = kept.counts()
            new = st.put_snapshot(kept.to_dict(), origin="sync", summary={
                "apps": len(kept.apps), "targets": len(kept.target_ids()), "files": files, "bytes": nbytes})
            st.remember_app_folders({}, forget=names)
    if as_json:
        print(json.dumps({"snapshot": new, "previous": sid, "removed_apps": sorted(names)}, indent=2))
        return
    console.print(f"removed {', '.join(sorted(names))}: snapshot {new[:16]} ({files} files); "
                  "`mirror publish` serves it, `mirror gc` frees what only they used", highlight=False)


@app.command()
def snapshots(store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List the store's snapshots: id, time, how it came (sync or import), apps, targets, files, bytes.

    Example: `mirror snapshots --store /srv/mirror-store`
    """
    from airgap_mirror.maintenance.history import list_snapshots

    with cli_errors():
        _, root = config_and_store(config, store)
        rows = list_snapshots(open_store(root))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{'*' if r['current'] else ' '} {r['id'][:16]}  {r['created']}  {r['origin']:<6}  apps {r.get('apps', '-'):>3}"
              f"  targets {r.get('targets', '-'):>2}  files {r.get('files', '-'):>5}  {r.get('bytes', 0) / 1e6:8.1f} MB")


@app.command()
def sbom(
    snapshot: Annotated[str, typer.Argument(help="Snapshot: an id or unique prefix, current, previous, last-exported[:SITE] or a bundle file.")] = "current",
    store: StoreOpt = None, config: ConfigOpt = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the SBOM here [default: stdout].")] = None,
) -> None:
    """Print the CycloneDX 1.6 SBOM of a snapshot: every Python distribution and Debian package with
    purl, version, sha256, licence where its metadata names one, and the apps and targets that need it.

    Example: `mirror sbom current -o mirror.cdx.json` (the same bytes every bundle of it carries)
    """
    from airgap_mirror.maintenance.history import resolve_snapshot
    from airgap_mirror.sbom import build_sbom

    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        sid = resolve_snapshot(st, snapshot)
        data = build_sbom(st, st.snapshot(sid), created=st.snapshot_created(sid))
    if output is None:
        sys.stdout.write(data.decode("utf-8") + "\n")
    else:
        output.write_bytes(data)
        console.print(f"wrote {output} (snapshot {sid[:16]})", highlight=False)


@app.command()
def diff(
    old: Annotated[str, typer.Argument(help="Snapshot: an id or unique prefix, current, previous, last-exported[:SITE] or a bundle file.")] = "previous",
    new: Annotated[str, typer.Argument(help="Snapshot, named as OLD is.")] = "current",
    store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Show what changed between two snapshots, per app and target, and the bytes a delta would carry.

    Example: `mirror diff last-exported current` (review before `mirror bundle create --since last-exported`)
    """
    from airgap_mirror.maintenance.history import diff_snapshots, resolve_snapshot

    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        d = diff_snapshots(st, resolve_snapshot(st, old), resolve_snapshot(st, new))
    if as_json:
        print(json.dumps(d.to_dict(), indent=2))
        return
    print(f"{d.old[:16]} → {d.new[:16]}")
    for label, names in (("apps added", d.apps_added), ("apps removed", d.apps_removed),
                         ("targets added", d.targets_added), ("targets removed", d.targets_removed)):
        if names:
            print(f"{label}: {', '.join(names)}")
    for app_name, per in d.changes.items():
        print(f"{app_name}:")
        for tid, c in per.items():
            print(f"  {tid}:")
            for n, v in c.get("added", []):
                print(f"    + {n} {v}")
            for n, v in c.get("removed", []):
                print(f"    - {n} {v}")
            for n, a, b in c.get("changed", []):
                print(f"    ~ {n} {a} → {b}")
    if d.empty:
        print("no changes")
    print(f"a delta bundle carries {d.files_to_carry} files, {d.bytes_to_carry / 1e6:.1f} MB (with locks and metadata)")


@app.command()
def verify(
    store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
    repair: Annotated[bool, typer.Option("--repair", help="Re-fetch corrupt or missing files from upstream (outside), or say which bundle to re-import (inside).")] = False,
    to: Annotated[list[str] | None, typer.Option("--to", help="Check this object-storage target instead of the store, s3://BUCKET/PREFIX (repeatable): every object there, re-hashed, against its snapshot.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="With --to: compare sizes from one listing, do not download and re-hash.")] = False,
) -> None:
    """Re-hash every blob (in parallel) and check catalog, snapshots and the published tree agree.

    Example: `mirror verify --store /srv/mirror-store` (exit 0 only if the store is whole);
    `mirror verify --repair` puts back what it can and verifies again;
    `mirror verify --to s3://pypi-mirror/prod` checks what the bucket serves.
    """
    from airgap_mirror.maintenance.health import repair_store, verify_store

    if to:
        _verify_buckets(store, config, to, quick=quick, as_json=as_json)
        return
    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        with st.db() as db:
            total = db.execute("SELECT COALESCE(SUM(size), 0) FROM blobs").fetchone()[0]
        rep = _reporter(interactive(as_json))
        with rep:
            rep.phase("verifying", total or None)
            report = verify_store(st, on_bytes=rep.advance)
        fixed = None
        if repair and not report.ok:
            with st.lock("verify --repair", wait=60):
                fixed = repair_store(st, report)
            for line in fixed.removed_corrupt:
                console.print(f"removed corrupt blob {line}", highlight=False)
            for name in fixed.refetched + fixed.restored_from_cache:
                console.print(f"[green]restored[/] {name}", highlight=False)
            for name in fixed.relinked:
                console.print(f"[green]put back in the published tree[/] {name}", highlight=False)
            again = _reporter(rep.enabled)
            with again:
                again.phase("verifying again", total or None)
                report = verify_store(st, on_bytes=again.advance)
    if as_json:
        print(json.dumps({**report.to_dict(), **({"repair": fixed.to_dict()} if fixed else {})}, indent=2))
    else:
        for line in (fixed.advice if fixed else []):
            console.print(f"[yellow]to do:[/] {line}", highlight=False)
        for sha in report.corrupt:
            console.print(f"[red]corrupt blob[/] {sha} (its content does not match its name)", highlight=False)
        for sha, users in report.missing.items():
            console.print(f"[red]missing blob[/] {sha}, needed by snapshot {'; '.join(users)}", highlight=False)
        for sid in report.bad_snapshots:
            console.print(f"[red]damaged snapshot[/] {sid}", highlight=False)
        for p in report.problems:
            console.print(f"[yellow]{p}[/]", highlight=False)
        console.print(f"{report.blobs_checked} blobs, {report.bytes_checked / 1e6:.1f} MB checked: "
                      + ("store is whole" if report.ok else "PROBLEMS FOUND (`mirror verify --repair` re-fetches them"
                         " outside and names the bundle to re-import inside)"), highlight=False)
    raise typer.Exit(0 if report.ok else 5)


def _verify_buckets(store: Path | None, config: Path | None, targets: list[str], *, quick: bool, as_json: bool) -> None:
    from airgap_mirror.cli.common import byte_progress
    from airgap_mirror.errors import StoreError
    from airgap_mirror.publish.s3 import Target, verify_bucket

    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)

        def blobs(sid: str) -> dict[str, int | None] | None:
            """The files a client installs (distributions, .debs, .metadata); locks are published rewritten."""
            try:
                files = st.snapshot(sid).files()
            except (StoreError, FileNotFoundError, ValueError):
                return None
            out: dict[str, int | None] = {sha: m.size for sha, m in files.items()}
            out.update((m.metadata_sha256, None) for m in files.values()
                       if isinstance(m, PythonFile) and m.metadata_sha256)
            return out

        reports = []
        for t in targets:
            target = Target.parse(t)
            progress, advance, _ = byte_progress(interactive(as_json) and not quick, None, f"checking {target}")
            with progress:
                reports.append(verify_bucket(target, blobs, quick=quick, on_bytes=advance))
    ok = all(r.ok for r in reports)
    if as_json:
        print(json.dumps({"ok": ok, "buckets": [r.to_dict() for r in reports]}, indent=2))
    else:
        for r in reports:
            for rel in r.missing:
                console.print(f"[red]missing[/] {r.target}/{rel}", highlight=False)
            for rel in r.mismatched:
                console.print(f"[red]wrong content[/] {r.target}/{rel} (not the bytes published)", highlight=False)
            for sha in r.not_carried:
                console.print(f"[red]not in the bucket[/] blob {sha} of snapshot {str(r.snapshot)[:16]}", highlight=False)
            for p in r.problems:
                console.print(f"[yellow]{p}[/]", highlight=False)
            how = "sizes listed" if quick else f"{r.bytes_checked / 1e6:.1f} MB re-hashed"
            console.print(f"{r.target}: snapshot {str(r.snapshot)[:16]}, {r.objects} objects, {how}: "
                          + ("whole" if r.ok else "PROBLEMS FOUND (`mirror publish --to` puts back what is missing)"),
                          highlight=False)
    raise typer.Exit(0 if ok else 5)


@app.command()
def gc(
    keep: Annotated[int, typer.Option("--keep", help="Keep this many newest snapshots (and the current, published and last exported ones).")] = 5,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Remove snapshots beyond --keep and every blob no kept snapshot needs.

    Example: `mirror gc --keep 10 --dry-run`
    """
    from airgap_mirror.maintenance.health import collect_garbage

    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        with st.lock("gc"):
            report = collect_garbage(st, keep=keep, dry_run=dry_run)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        verb = "would remove" if dry_run else "removed"
        console.print(f"{verb} {len(report.removed_snapshots)} snapshots, {report.removed_blobs} blobs"
                      f" ({report.removed_bytes / 1e6:.1f} MB), {report.removed_temp} temp files, {report.removed_records} expired resolution records;"
                      f" kept {len(report.kept_snapshots)} snapshots", highlight=False)


def _extension_options(cfg: Config, values: dict[str, Any], *, refresh: bool, allow_outside: bool) -> dict[str, Any]:
    """Each sync extension's options: its plug-in's flags and mirror.toml table, plus the core's own."""
    from airgap_mirror.interfaces import sync_option_hooks

    out: dict[str, Any] = {}
    for hook in sync_option_hooks():
        mine = {p.name: values.get(p.name, p.default) for p in hook.parameters}
        out[hook.extension] = {**hook.collect(mine, cfg.extra.get(hook.extension, {})),
                               "refresh": refresh, "allow_outside": allow_outside}
    return out


def _add_plugin_sync_options() -> None:
    """`mirror sync` takes the flags plug-ins declare (the APT side's --distro, --arch, ...)."""
    import inspect

    from airgap_mirror.interfaces import sync_option_hooks

    sig = inspect.signature(sync, eval_str=True)  # typer reads a set __signature__ as it is
    extra = [p for hook in sync_option_hooks() for p in hook.parameters]
    base = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    sync.__signature__ = sig.replace(parameters=[*base, *extra])  # type: ignore[attr-defined]
    sync.__annotations__.update({p.name: p.annotation for p in extra})


def _register_extensions() -> None:
    """Plug-in commands (bundle, trust, keygen, apt-key), added when the command line runs, not when
    this module is imported: a plug-in's CLI imports airgap_mirror.cli.common, which imports this package."""
    from airgap_mirror.interfaces import command_registrars

    for register in command_registrars():
        register(app)


def run() -> None:
    """The command line, in this process: raises SystemExit as typer does (what `main` ends with)."""
    _add_plugin_sync_options()
    _register_extensions()
    try:
        _this_command(sys.argv[1:2])()
    except MirrorError as exc:  # pragma: no cover - commands catch their own
        console.print(f"[red]error:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)


def _this_command(first: list[str]) -> typer.Typer:
    """The command line holding only the command (or group) named first, when one is: typer makes
    every command's options from its signature on each run (40 ms for all, 12 ms for `sync` alone).
    `mirror --help`, `mirror --version` and a name that is no command get the whole of it."""
    import copy

    from typer.main import get_command_name

    if not first or first[0].startswith("-"):
        return app
    commands = [c for c in app.registered_commands
                if (c.name or get_command_name(c.callback.__name__ if c.callback else "")) == first[0]]
    groups = [g for g in app.registered_groups
              if (g.name or (g.typer_instance.info.name if g.typer_instance else None)) == first[0]]
    if not commands and not groups:
        return app
    one = copy.copy(app)
    one.registered_commands, one.registered_groups = commands, groups
    return one


def main() -> None:
    """The `mirror` command: `run`, then leave without the interpreter's teardown (`_leave`)."""
    try:
        run()
    except SystemExit as exc:
        _leave(exc.code)
    _leave(0)


def _leave(code: object) -> NoReturn:
    """End the process once the command is done, as the interpreter would but without its teardown.

    The Rust libraries we call (obstore for buckets, py-rattler for conda) answer asyncio from their
    own tokio threads. Such a thread can still be handing a finished result to the event loop when
    the interpreter starts to finalize; it then waits for the interpreter lock, is ended by the
    interpreter, and the forced unwind through Rust frames aborts the process: SIGABRT (or SIGBUS)
    after the command printed its answer, about one `mirror status --to s3://...` in thirty here, and
    an exit status a nightly's monitoring reads as a failure. So: what the interpreter's own exit does
    for us (wait for non-daemon threads, run atexit handlers, flush stdout and stderr), then
    `os._exit`. Only a run that loaded one of those libraries leaves that way (it needs the
    interpreter's private `threading._shutdown` and `atexit._run_exitfuncs`); every other run exits
    as any Python program does.
    """
    import atexit
    import threading

    if not {"obstore", "rattler"} & sys.modules.keys():
        raise SystemExit(code)
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # sys.exit("message"): printed, status 1, as the interpreter does
        print(code, file=sys.stderr)
        status = 1
    try:
        shutdown = getattr(threading, "_shutdown", None)  # executors' exit hooks, then joins non-daemon threads
        if shutdown is not None:
            shutdown()
        atexit._run_exitfuncs()  # noqa: SLF001 (logging, temporary directories, our own handlers)
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe: nothing more can be said on it
                pass
        os._exit(status)
