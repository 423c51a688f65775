"""A misspelt project name fails its app with the file and line that asked for it, before uv's own
text (uv names the project, never where the app wrote it)."""

from __future__ import annotations

from airgap_mirror.resolve import IndexConfig
from airgap_mirror.store import open_store
from airgap_mirror.sync import SyncOptions, run_sync
from tests.builders.upstreams import X86


def test_a_name_no_index_has_is_said_with_its_line(upstream, tmp_path):
    app = tmp_path / "shop"
    app.mkdir()
    (app / "requirements.txt").write_text("alpha==1.0\n# the next one is misspelt\nbetta>=1.0\n")
    store = open_store(tmp_path / "s", create=True)
    result = run_sync(store, SyncOptions(apps=(app,), pythons=("3.11",), platforms=(X86,), installers=(),
                                         index=IndexConfig(index_url=upstream.url + "/simple")))
    (a,) = result.apps
    assert not a.ok and a.error is not None
    first = a.error.splitlines()[0]
    assert first.startswith(f"{app / 'requirements.txt'}:3: betta is on none of the app's indexes"), a.error
    assert "uv could not resolve" in a.error  # uv's own words follow
