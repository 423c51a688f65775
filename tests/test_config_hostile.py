"""mirror.toml that is not one: a clear one-line error naming the file and the key, exit 2, never a
traceback (each of these was a TypeError, RecursionError or an unchecked port before)."""

from __future__ import annotations

import pytest

from tests.builders.cli import run_mirror

CASES = {
    "store-path-not-a-string": ("[store]\npath = 5\n", "`store.path` must be a string"),
    "port-out-of-range": ("[serve]\nport = 99999999\n", "`serve.port` must be a port number"),
    "port-not-a-number": ('[serve]\nport = "http"\n', "`serve.port` must be a port number"),
    "deep-nesting": ("a = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deep"),
    "huge": ('[store]\npath = "' + "x" * 2_000_000 + '"\n', "not a mirror.toml"),
    "table-not-a-table": ("python = 3\n", "`python` must be a table"),
    "not-utf8": (b"[store]\npath = \"\xff\xfe\"\n", "not valid TOML"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_bad_config_is_one_line_and_exit_2(tmp_path, case):
    text, message = CASES[case]
    config = tmp_path / "mirror.toml"
    config.write_bytes(text if isinstance(text, bytes) else text.encode())
    proc = run_mirror("snapshots", "--config", str(config), check=False)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "Traceback" not in proc.stderr and message in proc.stderr and str(config) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
