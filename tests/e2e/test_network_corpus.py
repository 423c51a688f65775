"""Network: corpus apps synced from PyPI, installed from our index alone, compared with the online install.

The whole corpus runs with `scripts/corpus-run` (long); this test runs the same code on a few apps
so `scripts/test --network` keeps the path honest.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus" / "apps"

pytestmark = pytest.mark.network


def test_corpus_apps_install_from_our_index_alone(tmp_path):
    if not CORPUS.is_dir():
        pytest.fail(f"{CORPUS} is missing: the corpus ships in ../shared")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "corpus_run.py"), "--work", str(tmp_path),
         "--only", "^(apt-pdf-manipulator|apt-nixpdf-utf16)$", "--jobs", "2", "--timeout", "900"],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("apt-")]
    assert len(rows) == 2, proc.stdout
    classes = {r[0]: r[1] for r in rows}
    assert "mirror" not in classes.values(), proc.stdout  # installs online but not from us: our bug
    assert list(classes.values()).count("ok") >= 1, proc.stdout
    assert "fidelity" in proc.stdout
