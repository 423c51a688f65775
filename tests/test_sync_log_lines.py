"""Off a terminal (a nightly's log, CI) a sync says where it is: a line as each phase starts and as
each app is resolved, on stderr; with --json nothing but the JSON, on stdout."""

from __future__ import annotations

import json

from tests.builders.cli import run_mirror
from tests.builders.upstreams import DATA, X86


def test_a_sync_off_a_terminal_writes_a_line_per_phase_and_per_app(upstream, tmp_path):
    bad = tmp_path / "typo"
    bad.mkdir()
    (bad / "requirements.txt").write_text("alpah==1.0\n")
    args = ("sync", str(DATA / "apps" / "shop"), str(bad), "--store", str(tmp_path / "s"), "--python", "3.11",
            "--platform", X86, "--index-url", upstream.url + "/simple", "--installers", "")
    proc = run_mirror(*args, check=False)
    lines = proc.stderr.splitlines()
    assert any(line.endswith("resolving (2)") for line in lines), proc.stderr
    assert any(line.endswith("shop: resolved for 1 target") for line in lines), proc.stderr
    assert any("typo: FAILED to resolve:" in line and "alpah" in line for line in lines), proc.stderr
    assert any(line.endswith("] downloading") or "] downloading (" in line for line in lines), proc.stderr
    quiet = run_mirror(*args, "--json", check=False)
    assert "resolved for" not in quiet.stderr and "] resolving" not in quiet.stderr, quiet.stderr
    assert json.loads(quiet.stdout)["apps"]
