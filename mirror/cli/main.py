"""Running the command: the commands of plug-ins registered, only the command asked for loaded, and the
way out of the process."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import typer

from airgap_mirror.cli.app import app
from airgap_mirror.cli.common import (
    console,
    escape,
)
from airgap_mirror.cli.sync_cmd import _add_plugin_sync_options
from airgap_mirror.errors import MirrorError


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
    `os._exit`. Skipping the teardown also skips its collection of every object the command made:
    measured on a no-op resync of examples/dash-app, 0.31 s against 0.38 s through the interpreter's
    own exit (five runs each), a fifth of the command. It uses the interpreter's private
    `threading._shutdown` and `atexit._run_exitfuncs`; a Python without either exits the usual way.
    """
    import atexit
    import threading

    if getattr(threading, "_shutdown", None) is None or getattr(atexit, "_run_exitfuncs", None) is None:
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
