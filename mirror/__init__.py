"""airgap-mirror: resolve, fetch, bundle and serve app dependencies across an air gap."""

import sys as _sys
import types as _types

__version__ = "0.1.0"


def _no_httpx_cli() -> None:
    """httpx's package imports its command-line tool whenever click is installed (granian, our
    server, brings it), and with it pygments' lexers and rich's syntax module: 0.1 s of every
    command that downloads, for a tool the mirror never runs. Its place is taken by this stub."""
    if "httpx" in _sys.modules or "httpx._main" in _sys.modules:
        return
    stub = _types.ModuleType("httpx._main", "httpx's command line, not loaded by airgap-mirror")

    def main() -> None:
        raise SystemExit("httpx's command line is not loaded inside airgap-mirror")

    stub.main = main  # type: ignore[attr-defined]
    _sys.modules["httpx._main"] = stub


_no_httpx_cli()
