"""The `mirror` command line: flags and config merged, progress shown, errors mapped to exit codes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .config import EXAMPLE_CONFIG, Config, load_config
from .errors import ConfigError, MirrorError
from .store import open_store

app = typer.Typer(
    name="mirror",
    help="airgap-mirror: resolve, fetch, bundle and serve every dependency of your apps across an air gap.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
console = Console(stderr=True, soft_wrap=True)

StoreOpt = Annotated[Optional[Path], typer.Option("--store", help="Store folder [env: MIRROR_STORE; default ./mirror-store].")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="mirror.toml to read [default: ./mirror.toml if present].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary on stdout.")]


def _config(config: Path | None, store: Path | None) -> tuple[Config, Path]:
    cfg = load_config(config)
    root = store or (Path(os.environ["MIRROR_STORE"]) if os.environ.get("MIRROR_STORE") else cfg.store)
    return cfg, root


def fail_with(exc: MirrorError) -> typer.Exit:
    console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(exc.exit_code)


class _RichReporter:
    """Progress bars on a terminal; nothing otherwise (CI, --json, pipes)."""

    def __init__(self, enabled: bool) -> None:
        self.progress = Progress(
            TextColumn("{task.description:<30}"), BarColumn(), MofNCompleteColumn(), DownloadColumn(),
            TimeElapsedColumn(), console=console, transient=True, disable=not enabled,
        )
        self.task = None

    def __enter__(self) -> "_RichReporter":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def phase(self, name: str, total: int | None) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def note(self, message: str) -> None:
        self.progress.console.print(message)


def _apt_options(cfg: Config, distro: list[str] | None, arch: list[str] | None, with_recommends: bool,
                 base: str | None, base_status: Path | None, refresh: bool) -> dict[str, object]:
    t = cfg.extra.get("apt", {})
    if base is not None and base not in ("required", "none"):
        raise ConfigError(f"--apt-base {base!r}: use 'required' or 'none' (or --apt-base-status FILE)")
    return {
        "distros": list(distro or t.get("distros") or []),
        "architectures": list(arch or t.get("architectures") or []),
        "with_recommends": with_recommends or bool(t.get("with-recommends", False)),
        "base": str(base_status) if base_status else (base or t.get("base") or "required"),
        "sources": t.get("sources") or [],
        "refresh": refresh,
    }


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


@app.command()
def sync(
    apps: Annotated[Optional[list[Path]], typer.Argument(help="App folders (default: [apps] paths in mirror.toml).")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    python: Annotated[Optional[list[str]], typer.Option("--python", help="Target Python X.Y[.Z]; repeatable [default: runtime.txt, else 3.11].")] = None,
    platform: Annotated[Optional[list[str]], typer.Option("--platform", help="Target platform tag (pip's vocabulary); repeatable [default: manylinux_2_28_x86_64].")] = None,
    index_url: Annotated[Optional[str], typer.Option("--index-url", help="Upstream index [default: https://pypi.org/simple].")] = None,
    extra_index_url: Annotated[Optional[list[str]], typer.Option("--extra-index-url", help="Extra upstream index; repeatable.")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="Parallel downloads [default 16].")] = None,
    installers: Annotated[Optional[str], typer.Option("--installers", help="Comma-separated installer packages mirrored per target ('' for none) [default pip,setuptools,wheel].")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Revalidate every cached index page now (default: honour the index's cache headers).")] = False,
    distro: Annotated[Optional[list[str]], typer.Option("--distro", help="Target Debian suite for Aptfiles; repeatable [default: bookworm].")] = None,
    arch: Annotated[Optional[list[str]], typer.Option("--arch", help="Target Debian architecture; repeatable [default: amd64].")] = None,
    with_recommends: Annotated[bool, typer.Option("--with-recommends", help="Also mirror Recommends of APT packages.")] = False,
    apt_base: Annotated[Optional[str], typer.Option("--apt-base", help="What the target already has: 'required' (the suite's required packages) or 'none' (mirror the complete closure).")] = None,
    apt_base_status: Annotated[Optional[Path], typer.Option("--apt-base-status", help="A dpkg status file from the target image: its packages are not mirrored.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Resolve every app for every target, fetch what is missing into the store, record a snapshot.

    Example: `mirror sync apps/dash-app --python 3.11 --python 3.9 --platform manylinux_2_28_x86_64 --platform manylinux2014_aarch64 --distro bookworm --arch amd64`

    An app's Aptfile / packages.txt is mirrored for every --distro x --arch, with the packages the
    target already has (--apt-base) left out.

    Exit codes: 0 all apps mirrored; 1 some app or file failed (the others are recorded); 2 bad input.
    """
    try:
        cfg, root = _config(config, store)
        app_dirs = tuple(apps or cfg.apps)
        if not app_dirs:
            console.print("[red]error:[/] no app folders: name them, or list them under [apps] paths in mirror.toml")
            raise typer.Exit(2)
        from .resolve import IndexConfig
        from .sync import SyncOptions, run_sync

        opts = SyncOptions(
            apps=app_dirs,
            pythons=tuple(python or cfg.pythons),
            platforms=tuple(platform or cfg.platforms),
            index=IndexConfig(index_url=index_url or cfg.index_url,
                              extra_index_urls=tuple(extra_index_url or cfg.extra_index_urls)),
            installers=tuple(i for i in installers.split(",") if i) if installers is not None else cfg.installers,
            concurrency=concurrency or cfg.concurrency,
            resolver_jobs=cfg.resolver_jobs,
            refresh=refresh,
            extensions={"apt": _apt_options(cfg, distro, arch, with_recommends, apt_base, apt_base_status, refresh)},
        )
        st = open_store(root, create=True)
        with _RichReporter(enabled=console.is_terminal and not as_json and not os.environ.get("CI")) as rep:
            result = run_sync(st, opts, reporter=rep)
    except MirrorError as exc:
        raise fail_with(exc) from exc
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        for a in result.apps:
            mark = "[green]ok[/]" if a.ok else "[red]FAILED[/]"
            console.print(f"{mark} {a.name}: {', '.join(a.targets) or '-'}", highlight=False)
            for w in a.warnings:
                console.print(f"   [yellow]warning:[/] {w}", highlight=False)
            if a.error:
                console.print(f"   [red]{a.error}[/]" + (" (previous lock kept)" if a.kept_previous else ""),
                              highlight=False, markup=True)
        for e in result.fetch_errors:
            console.print(f"[red]fetch error:[/] {e}", highlight=False)
        console.print(
            f"{len(result.apps)} apps, {len(result.targets)} targets, {result.files_total} files: "
            f"{result.files_fetched} fetched ({result.bytes_fetched / 1e6:.1f} MB), {result.files_present} already present; "
            f"snapshot {(result.snapshot_id or '-')[:16]}" + (" (unchanged)" if not result.changed and result.snapshot_id else ""),
            highlight=False,
        )
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def publish(store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Build the static index tree for the newest snapshot and switch it in atomically.

    Example: `mirror publish --store /srv/mirror-store`
    """
    from .publish import publish as do_publish

    try:
        _, root = _config(config, store)
        st = open_store(root)
        tree = do_publish(st)
    except MirrorError as exc:
        raise fail_with(exc) from exc
    if as_json:
        print(json.dumps({"tree": str(tree), "snapshot": st.ref("current")}))
    else:
        console.print(f"published snapshot {st.ref('current')[:16]} at {st.published / 'current'}")


@app.command()
def serve(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    host: Annotated[Optional[str], typer.Option("--host", help="Address to bind [default 127.0.0.1].")] = None,
    port: Annotated[Optional[int], typer.Option("--port", help="Port [default 8080; 0 picks a free one].")] = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request to stderr.")] = False,
) -> None:
    """Serve the published tree (PEP 503/691 index, APT repository), publishing first if missing or stale.

    Example: `mirror serve --host 0.0.0.0 --port 8080`, then `pip install --index-url http://HOST:8080/simple/ ...`
    """
    from .publish import publish as do_publish
    from .publish import published_snapshot
    from .serve import make_server

    try:
        cfg, root = _config(config, store)
        st = open_store(root)
        if st.ref("current") and published_snapshot(st) != st.ref("current"):
            do_publish(st)
        server = make_server(st.published, host or cfg.host, cfg.port if port is None else port, access_log=access_log)
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


@app.command("client-config")
def client_config(
    url: Annotated[str, typer.Option("--url", help="The mirror's base URL as clients reach it.")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print how pip, uv, requirements files and apt point at the mirror.

    Example: `mirror client-config --url http://mirror.internal:8080`
    """
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
export UV_INDEX_URL={simple}   # uv ignores pip.conf
{"export PIP_TRUSTED_HOST=" + host if trusted else ""}
# uv: /etc/uv/uv.toml or ~/.config/uv/uv.toml
[[index]]
url = "{simple}"
default = true

# a requirements file: first line
--index-url {simple}
""".replace("\n\n\n", "\n\n"))
    _apt_client_config(base, config, store)


def _apt_client_config(base: str, config: Path | None, store: Path | None) -> None:
    """A deb822 .sources entry for every suite the published tree holds."""
    from .publish import current_tree
    from .store import Store

    try:
        _, root = _config(config, store)
    except MirrorError:
        return
    tree = current_tree(Store(root))
    dists = sorted(p.name for p in (tree / "debian" / "dists").iterdir()) if tree and (tree / "debian" / "dists").is_dir() else []
    if not dists:
        return
    print(f"""# apt: the signing key, then /etc/apt/sources.list.d/airgap-mirror.sources
#   curl -fsSL {base}/debian/airgap-mirror.asc -o /etc/apt/keyrings/airgap-mirror.asc
Types: deb
URIs: {base}/debian
Suites: {' '.join(dists)}
Components: main
Signed-By: /etc/apt/keyrings/airgap-mirror.asc
""")


def _register_extensions() -> None:
    from .extensions import command_registrars

    for register in command_registrars():
        register(app)


_register_extensions()


def main() -> None:
    try:
        app()
    except MirrorError as exc:  # pragma: no cover - commands catch their own
        console.print(f"[red]error:[/] {exc}")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
