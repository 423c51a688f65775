"""Against the real PyPI (marked `network`; run with scripts/test --network)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders.cli import Served, run_mirror
from tests.builders.upstreams import X86, clean_env

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "apps"

pytestmark = pytest.mark.network


@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not beside the checkout")
def test_corpus_app_from_pypi_installs_from_mirror_alone(tmp_path: Path):
    app = CORPUS / "dsa-cytoscape-editor"
    store = tmp_path / "store"
    proc = run_mirror("sync", str(app), "--store", str(store), "--python", "3.11", "--platform", X86, "--json")
    summary = json.loads(proc.stdout)
    assert summary["ok"], summary
    run_mirror("publish", "--store", str(store))
    served = Served(store)
    try:
        venv = tmp_path / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        inst = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "--isolated", "--no-cache-dir", "--index-url", served.simple,
             "-r", str(app / "requirements.txt")],
            capture_output=True, text=True, env=clean_env(),
        )
        assert inst.returncode == 0, inst.stdout[-3000:] + inst.stderr[-3000:]
        check = subprocess.run([str(venv / "bin" / "python"), "-c", "import dash, dash_cytoscape, Bio, colour"],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    finally:
        served.stop()
