"""The `mirror` command line: flags and config merged, progress shown, errors mapped to exit codes.

The way in. Also here: config (mirror.toml).
"""

import importlib

from airgap_mirror.cli.app import app
from airgap_mirror.cli.main import main, run

# The core's commands, each module registering its own on `app`, in the order `mirror --help` lists them.
for _module in ("sync_cmd", "serve_cmd", "apps_cmd", "store_cmd"):
    importlib.import_module(f"airgap_mirror.cli.{_module}")

__all__ = ["app", "main", "run"]
