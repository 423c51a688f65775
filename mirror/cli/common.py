"""What every command of every CLI shares (the core's and the plug-ins'): the console, the common
options, config and store lookup, and the one wrapper that maps errors to exit codes and messages.

Plug-in CLIs (bundles/, apt/) import this module, never `airgap_mirror.cli` itself, so no import cycle
runs through the command line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from airgap_mirror.cli.config import Config, load_config
from airgap_mirror.errors import MirrorError
from airgap_mirror.urls import redact_text

__all__ = ["console", "escape", "StoreOpt", "ConfigOpt", "JsonOpt", "fail_with", "cli_errors", "config_and_store", "interactive",
           "push_to_buckets", "byte_progress"]

if TYPE_CHECKING:
    from rich.console import Console

    from airgap_mirror.store import Store


class _LazyConsole:
    """rich's Console on stderr, made at its first use: rich's console and markup modules are some
    30 ms of every start, and a command run with --json, in CI or in a pipe may print nothing
    through it. Attributes are the Console's; `real` is the Console itself (for rich's own classes)."""

    __slots__ = ("_real",)

    def __init__(self) -> None:
        self._real: Console | None = None

    @property
    def real(self) -> Console:
        if self._real is None:
            from rich.console import Console

            self._real = Console(stderr=True, soft_wrap=True)
        return self._real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


_LAZY = _LazyConsole()
console: Console = _LAZY  # type: ignore[assignment]  # (it is one, made on first use)


def rich_console() -> Console:
    """The Console itself, for rich's own classes (a Progress takes the real one)."""
    return _LAZY.real


def escape(text: str) -> str:
    """rich markup escaped (rich's `escape`, loaded when first needed)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


StoreOpt = Annotated[Path | None, typer.Option("--store", help="Store folder [env: MIRROR_STORE; else [store] path in mirror.toml; default ./mirror-store].")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="mirror.toml to read [default: ./mirror.toml if present].")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable result on stdout.")]


def fail_with(exc: MirrorError) -> typer.Exit:
    """Print one actionable line (secrets scrubbed, markup escaped); the exit for the error's class."""
    console.print(f"[bold red]error:[/] {escape(redact_text(str(exc)))}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(exc.exit_code)


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Wrap a command's work: a MirrorError becomes its message and exit code, and so does a full
    disk wherever it is met (exit 7, as a store write's own says it), nothing else changes."""
    import errno

    try:
        yield
    except MirrorError as exc:
        raise fail_with(exc) from exc
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        from airgap_mirror.errors import DiskFullError

        where = f" writing {exc.filename}" if exc.filename else ""
        raise fail_with(DiskFullError(f"no space left on the device{where}: free space (`mirror gc` removes what no "
                                      "kept snapshot needs) and run the command again")) from exc


def config_and_store(config: Path | None = None, store: Path | None = None) -> tuple[Config, Path]:
    """mirror.toml (the one named, else ./mirror.toml) and the store root: --store, else MIRROR_STORE,
    else the config's [store] path, else ./mirror-store."""
    cfg = load_config(config)
    return cfg, store or cfg.store  # load_config puts MIRROR_STORE before the file's [store] path


def interactive(as_json: bool = False) -> bool:
    """Progress bars only on a terminal, never with --json or in CI."""
    return not as_json and not os.environ.get("CI") and console.is_terminal


def byte_progress(enabled: bool, total: int | None, label: str):  # type: ignore[no-untyped-def]
    """A transient bytes bar (size, rate, time) on stderr: (progress, advance(n), set_total(n))."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn

    progress = Progress(TextColumn(label), BarColumn(), DownloadColumn(), TransferSpeedColumn(), TimeElapsedColumn(),
                        console=rich_console(), transient=True, disable=not enabled)
    task = progress.add_task(label, total=total)
    return progress, lambda n: progress.advance(task, n), lambda n: progress.update(task, total=n)


def push_to_buckets(tree: Path, targets: list[str] | tuple[str, ...], grace: str, *, shown: bool,
                    concurrency: int = 32, check: bool = False, store: Store | None = None) -> list[dict[str, Any]]:
    """Upload a published tree to each object-storage target (airgap_mirror.publish.s3), with a progress bar
    on a terminal; one line each on stderr; the reports as dicts. With `store`, one upload to a bucket
    at a time (a lock of that bucket's own: the store's is not held while the network is waited on)."""
    import hashlib

    from airgap_mirror.publish.s3 import Target, parse_grace, publish_tree

    parsed = [Target.parse(t) for t in targets]
    keep = parse_grace(grace)
    reports = []
    for target in parsed:
        progress, advance, set_total = byte_progress(shown, None, f"uploading to {target}")
        one_at_a_time = (store.lock(f"publish --to {target}", wait=600,
                                    name=f"upload-{hashlib.sha256(str(target).encode()).hexdigest()[:16]}.lock")
                         if store is not None else contextlib.nullcontext())
        with one_at_a_time, progress:
            report = publish_tree(tree, target, grace=keep, concurrency=concurrency, check=check,
                                  on_total=set_total, on_bytes=advance)
        console.print(f"{target}: snapshot {report.snapshot[:16]} up; {report.uploaded} objects sent "
                      f"({report.uploaded_bytes / 1e6:.1f} MB), {report.unchanged} unchanged, {report.retired} retired "
                      f"(deleted after {grace}), {report.deleted} deleted, {report.seconds:.1f} s", highlight=False)
        reports.append(report.to_dict())
    return reports
