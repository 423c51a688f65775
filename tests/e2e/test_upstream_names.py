"""The mirror answers as the upstream the apps' locks name (pypi.org and files.pythonhosted.org),
so a site that points those names at it (its DNS, its CA) installs lock apps with their own tools
and their locks unchanged: `uv sync --locked`, `pip install -r pylock.toml` (pip >= 26.1), `poetry sync
--only main` and `pipenv install --deploy`, each the real tool from PyPI, in a network and mount namespace of the test's own (its own /etc/hosts)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders.upstreams import clean_env

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / ".cache" / "tools"  # Poetry and pipenv from PyPI (scripts/test set-up)


@pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("ip"), reason="needs unshare and ip (util-linux, iproute2)")
@pytest.mark.skipif(not (TOOLS / "bin" / "poetry").is_file(), reason="no Poetry and pipenv in .cache/tools (scripts/test set-up)")
def test_lock_apps_install_unchanged_from_the_mirror_under_the_upstreams_names(upstream, tmp_path):
    proc = subprocess.run(
        ["unshare", "--net", "--mount", "--", sys.executable, "-m", "tests.e2e.upstream_names_driver", str(tmp_path),
         str(Path(upstream.root) / "files"), sys.executable, str(TOOLS)],
        capture_output=True, text=True, env=clean_env(), cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    # each with its worker group (chosen with `sync --group APP:worker`; installed by the command
    # client-config prints: `uv sync ... --group worker`, `poetry sync --only main,worker`,
    # `pipenv install --deploy --categories 'packages worker'`)
    # uvapp is a packaged project: uv built it, with setuptools and wheel from the mirror alone
    assert seen["uv"] == {"alpha": "1.0", "beta": "2.0", "darwinonly": "1.0", "uvapp": "0.1"}
    assert {"alpha": "1.0", "beta": "2.0"}.items() <= seen["pip"].items()
    assert {"alpha": "1.0", "beta": "2.0", "armonly": "1.0"}.items() <= seen["poetry"].items()
    assert {"alpha": "1.0", "beta": "2.0", "darwinonly": "1.0"}.items() <= seen["pipenv"].items()
    assert seen["locks_unchanged"]
