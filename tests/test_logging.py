"""Logging: quiet by default; `-v`/`-vv` on stderr and `--log-file` say what a run did and passed over,
and never a credential (an index URL's password, here)."""

from __future__ import annotations

from tests.builders.cli import run_mirror
from tests.builders.upstreams import DATA, X86


def test_verbose_and_log_file_say_the_steps_and_never_the_password(upstream, tmp_path):
    secret = "s3cret-pass-word"
    index = upstream.url.replace("://", f"://builder:{secret}@", 1) + "/simple"
    log = tmp_path / "sync.log"
    args = ("sync", str(DATA / "apps" / "shop"), "--python", "3.11", "--platform", X86, "--index-url", index,
            "--installers", "")
    quiet = run_mirror(*args, "--store", str(tmp_path / "s1"))
    assert "sync step" not in quiet.stderr and "INFO" not in quiet.stderr  # quiet by default
    loud = run_mirror("-vv", "--log-file", str(log), *args, "--store", str(tmp_path / "s2"))
    text = log.read_text()
    for out in (loud.stderr, text):
        assert "sync step resolve" in out and "airgap_mirror.sync.run" in out
        assert "***@127.0.0.1" in out  # the URL is there, its credentials are not
        assert secret not in out
    assert secret not in loud.stdout
