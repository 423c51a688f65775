"""`mirror init` and `mirror sync`: a config to start from, and one sync of the apps with its summary."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from airgap_mirror.cli.app import app, progress_reporter
from airgap_mirror.cli.common import (
    ConfigOpt,
    JsonOpt,
    StoreOpt,
    cli_errors,
    config_and_store,
    console,
    escape,
    interactive,
)
from airgap_mirror.cli.config import EXAMPLE_CONFIG, Config
from airgap_mirror.errors import InputError
from airgap_mirror.store import open_store
from airgap_mirror.urls import redact_text

if TYPE_CHECKING:
    from airgap_mirror.resolve import IndexConfig
    from airgap_mirror.sync import SyncOptions


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


def _per_app(configured: dict[str, tuple[str, ...]], flags: list[str] | None, flag: str) -> dict[str, tuple[str, ...]]:
    """mirror.toml's per-app lists with `--extra APP:NAME` / `--group APP:NAME` added."""
    out = {a: tuple(v) for a, v in configured.items()}
    for value in flags or ():
        app_name, sep, name = value.partition(":")
        if not sep or not app_name.strip() or not name.strip():
            console.print(f"[red]error:[/] {flag} {value!r}: write it as APP:NAME, e.g. {flag} dash-app:worker")
            raise typer.Exit(2)
        out[app_name.strip()] = tuple(dict.fromkeys((*out.get(app_name.strip(), ()), name.strip())))
    return out


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
    exclude_newer: Annotated[str | None, typer.Option("--exclude-newer", help="A release-age cooldown: resolve as if nothing uploaded in this window existed (`7 days`, `36 hours`, `P7D`, or a date); [python] exclude-newer in mirror.toml.")] = None,
    extra: Annotated[list[str] | None, typer.Option("--extra", help="APP:EXTRA: the platform installs that app's lock with this extra too (uv sync --extra, poetry sync -E); repeatable; added to [apps.extras] in mirror.toml.")] = None,
    group: Annotated[list[str] | None, typer.Option("--group", help="APP:GROUP: the platform installs that app's lock with this dependency group (uv --group, poetry --with, a Pipfile category) too; repeatable; added to [apps.groups].")] = None,
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
        from airgap_mirror.resolve.cooldown import cutoff
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
            exclude_newer=cutoff(cooldown, where="--exclude-newer" if exclude_newer else "[python] exclude-newer")
            if (cooldown := exclude_newer or cfg.exclude_newer) else None,
            app_exclude_newer={a: cutoff(v, where=f"[apps.exclude-newer] {a}") for a, v in cfg.app_exclude_newer.items()},
            app_extras=_per_app(cfg.app_extras, extra, "--extra"),
            app_groups=_per_app(cfg.app_groups, group, "--group"),
        )
        _check_sync_input(opts, named_apps=tuple(apps or ()))
        st = open_store(root, create=True)
        with progress_reporter(interactive(as_json), lines=not as_json) as rep:
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
            how = ", ".join(filter(None, [a.package_manager, f"Python {a.python} from {a.python_from}" if a.python_from else None,
                                          f"extras {' '.join(a.extras)}" if a.extras else None,
                                          f"groups {' '.join(a.groups)}" if a.groups else None]))
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
        if opts.exclude_newer or opts.app_exclude_newer:
            per_app = "".join(f"; {a}: {c}" for a, c in sorted(opts.app_exclude_newer.items()))
            console.print(f"cooldown: nothing uploaded after {opts.exclude_newer or '-'} was taken{per_app}", highlight=False)
        failed = [a.name for a in result.apps if not a.ok]
        if failed:  # the last line: what a reader of a nightly's log must not miss
            console.print(f"[red]FAILED: {len(failed)} of {len(result.apps)} apps[/] ({', '.join(failed)})", highlight=False)
    if not result.ok:
        raise typer.Exit(1)
    raise typer.Exit((2 if result.changed else 0) if detailed_exit_code else 0)


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
