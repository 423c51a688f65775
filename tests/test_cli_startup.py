"""A command loads what it uses: every nightly and every script pays a command's start-up, so the
heavy libraries (pydantic through typer >= 0.29, the server, the SBOM library, the HTTP client)
stay out of a command that does not need them."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.builders.upstreams import clean_env

HEAVY = ("pydantic", "granian", "cyclonedx", "httpx", "prometheus_client", "bcrypt", "debian")


def test_a_simple_command_imports_no_heavy_library(tmp_path):
    from mirror.store import Store

    Store(tmp_path / "s").create()
    code = ("import sys, json; sys.argv = ['mirror', 'snapshots', '--store', sys.argv[1], '--json'];"
            "from mirror.cli import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True,
                          env=clean_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"`mirror snapshots` imported {loaded}"
