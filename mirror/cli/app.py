"""The `mirror` command: the Typer app every command module registers on, its global options, and how a
run reports progress."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from airgap_mirror.cli.common import (
    console,
)

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
    """No bars (CI, --json, pipes): what the work notes still reaches the console (stderr), and with
    `lines` (off a terminal, not --json) a line as each phase starts, so a nightly's log shows where
    a long run is."""

    enabled = False

    def __init__(self, lines: bool = False) -> None:
        import time

        self.lines, self._start = lines, time.monotonic()

    def __enter__(self) -> _PlainReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def lane(self) -> _PlainReporter:
        return self

    def phase(self, name: str, total: int | None) -> None:
        if self.lines:
            import time

            count = "" if not total else f" ({total / 1e6:,.1f} MB)" if "download" in name else f" ({total:,})"
            console.print(f"[{time.monotonic() - self._start:6.1f}s] {name}{count}", highlight=False, markup=False)

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, message: str) -> None:
        console.print(message)

    def finished(self, what: str) -> None:
        if self.lines:
            import time

            console.print(f"[{time.monotonic() - self._start:6.1f}s]   {what}", highlight=False, markup=False)


def progress_reporter(enabled: bool, *, lines: bool = False) -> Any:
    """Progress bars on a terminal (rich's, loaded only then: 13 ms); otherwise a line per phase and
    per finished app with `lines` (a log), else nothing."""
    if not enabled:
        return _PlainReporter(lines)
    from airgap_mirror.cli.progress import RichReporter

    return RichReporter()
