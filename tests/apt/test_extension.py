"""The registered `apt` sync extension loads the APT part only for a sync that has Debian packages
to mirror: a sync of Python apps alone does not pay its imports on the way to starting uv."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.builders.upstreams import clean_env

_PROBE = """
import json, sys
from pathlib import Path
from airgap_mirror.apps import load_app
from airgap_mirror.interfaces import QuietReporter, SyncContext, sync_extensions
from airgap_mirror.store import Store

store = Store(Path(sys.argv[1]) / "store").create()
app = load_app(Path(sys.argv[2]))
apt = next(e for e in sync_extensions() if e.name == "apt")
loaded_with_the_extension = "airgap_apt.sync" in sys.modules
out = apt.sync(SyncContext(store=store, apps=[app], previous=None, options={}, reporter=QuietReporter()))
print(json.dumps({"at_load": loaded_with_the_extension, "after_sync": "airgap_apt.sync" in sys.modules,
                  "section": out.section, "errors": out.app_errors}))
"""


def _probe(tmp_path, app):
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path), str(app)], capture_output=True, text=True,
                          env=clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_python_only_app_does_not_load_the_apt_part(tmp_path):
    app = tmp_path / "py-app"
    app.mkdir()
    (app / "requirements.txt").write_text("six==1.16.0\n")
    got = _probe(tmp_path, app)
    assert got == {"at_load": False, "after_sync": False, "section": {}, "errors": {}}


def test_an_app_with_an_aptfile_gets_the_apt_part(tmp_path):
    app = tmp_path / "deb-app"
    app.mkdir()
    (app / "Aptfile").write_text("no such line :: here\n")  # read by the APT part, refused with the line
    got = _probe(tmp_path, app)
    assert got["at_load"] is False and got["after_sync"] is True
    assert "Aptfile" in got["errors"]["deb-app"] and ":1" in got["errors"]["deb-app"]
