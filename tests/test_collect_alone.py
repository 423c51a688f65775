"""The suite collects in a checkout with nothing beside it (no ../shared): a test that needs the
corpus skips when it runs, collection never stops on a missing file."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_suite_collects_without_shared_beside_it(tmp_path):
    alone = tmp_path / "main"  # tmp_path/shared does not exist
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "tests", "pyproject.toml"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    for rel in listed:
        if (ROOT / rel).is_file():
            (alone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, alone / rel)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-m", "network or not network"], cwd=alone, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " tests collected" in proc.stdout and "error" not in proc.stdout.splitlines()[-1]
