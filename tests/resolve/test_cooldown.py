"""A release-age cooldown (`exclude-newer`): what is mirrored is what the index held before the
window, for every app, its installers and build requirements; a lock's pins are kept and warned;
the published pages list only what was mirrored. The upstream here is a PEP 691 JSON index with PEP
700 upload times, as pypi.org serves them."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airgap_mirror.errors import ConfigError
from airgap_mirror.resolve import uv_binary
from airgap_mirror.resolve.cooldown import cutoff
from tests.builders import make_wheel
from tests.builders.cli import run_mirror
from tests.builders.upstreams import X86, StaticServer, clean_env, write_json_index


@pytest.fixture(scope="module")
def young_upstream(tmp_path_factory: pytest.TempPathFactory):
    """alpha 1.0 (needs beta) and beta 1.0 a month old; beta 2.0 two days old."""
    root = tmp_path_factory.mktemp("young")
    files = root / "files"
    now = datetime.now(UTC)
    old, young = (now - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ"), (now - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    times = {make_wheel(files, "alpha", "1.0", requires=["beta>=1.0"]).name: old,
             make_wheel(files, "beta", "1.0").name: old, make_wheel(files, "beta", "2.0").name: young}
    write_json_index(files, root / "simple", times)
    server = StaticServer(root, json_pages=True)
    yield server
    server.stop()


def _sync(app: Path, store: Path, upstream, *extra: str) -> tuple[dict, dict]:
    proc = run_mirror("sync", str(app), "--store", str(store), "--python", "3.11", "--platform", X86,
                      "--index-url", upstream.url + "/simple", "--installers", "", "--json", *extra, check=False)
    result = json.loads(proc.stdout)
    snap = json.loads((store / "store-v1" / "snapshots" / f"{result['snapshot']}.json").read_text()) \
        if result.get("snapshot") else {}
    return result, snap


def _packages(snap: dict, app: str) -> dict[str, str]:
    (target,) = snap["apps"][app]["targets"].values()
    return dict(map(tuple, target["packages"]))


def test_the_cooldown_leaves_out_what_was_uploaded_inside_it(young_upstream, tmp_path):
    app = tmp_path / "shop"
    app.mkdir()
    (app / "requirements.txt").write_text("alpha\n")
    _, now = _sync(app, tmp_path / "s1", young_upstream)
    assert _packages(now, "shop") == {"alpha": "1.0", "beta": "2.0"}  # without: the newest
    result, cooled = _sync(app, tmp_path / "s2", young_upstream, "--exclude-newer", "7 days")
    assert result["ok"] and _packages(cooled, "shop") == {"alpha": "1.0", "beta": "1.0"}
    names = {m["filename"] for m in cooled["python"]["files"].values()}
    assert not any(n.startswith("beta-2.0") for n in names)
    # The cooldown changes what is mirrored, not what is served: the published page lists beta 1.0 alone.
    run_mirror("publish", "--store", str(tmp_path / "s2"))
    page = json.loads((tmp_path / "s2" / "published" / "current" / "simple" / "beta" / "index.json").read_text())
    assert [f["filename"] for f in page["files"]] == ["beta-1.0-py3-none-any.whl"]


def test_a_requirement_only_a_young_release_meets_says_the_cooldown(young_upstream, tmp_path):
    app = tmp_path / "pinned"
    app.mkdir()
    (app / "requirements.txt").write_text("beta==2.0\n")
    result, _ = _sync(app, tmp_path / "s", young_upstream, "--exclude-newer", "7 days")
    (a,) = result["apps"]
    assert not a["ok"] and "the cooldown leaves out every file uploaded after" in a["error"]


def test_a_locks_pins_are_kept_and_warned(young_upstream, tmp_path):
    app = tmp_path / "locked"
    app.mkdir()
    (app / "pyproject.toml").write_text('[project]\nname = "locked"\nversion = "0.1"\nrequires-python = ">=3.10"\n'
                                        'dependencies = ["alpha"]\n[tool.uv]\npackage = false\n')
    subprocess.run([uv_binary(), "lock", "--no-config", "--default-index", young_upstream.url + "/simple", "-q"],
                   cwd=app, check=True, env=clean_env())
    result, snap = _sync(app, tmp_path / "s", young_upstream, "--exclude-newer", "7 days")
    (a,) = result["apps"]
    assert a["ok"] and _packages(snap, "locked") == {"alpha": "1.0", "beta": "2.0"}  # the lock is the truth
    assert any("beta 2.0" in w and "cooldown" in w for w in a["warnings"]), a["warnings"]


def test_a_cooldown_that_is_no_duration_is_refused_with_the_forms(tmp_path):
    with pytest.raises(ConfigError, match="7 days"):
        cutoff("7 dayz")
    (tmp_path / "mirror.toml").write_text('[python]\nexclude-newer = "a week ago"\n')
    proc = run_mirror("sync", str(tmp_path), "--config", str(tmp_path / "mirror.toml"), check=False)
    assert proc.returncode == 2 and "exclude-newer" in (proc.stdout + proc.stderr)
    assert "Traceback" not in proc.stderr


def test_an_index_without_upload_times_is_not_cooled_and_the_app_says_so(upstream, tmp_path):
    """A plain PEP 503 index (HTML, no upload times): uv would take each of its files for a young
    one and find nothing; the cooldown is not applied to what resolves from it, and that is said."""
    app = tmp_path / "plain"
    app.mkdir()
    (app / "requirements.txt").write_text("alpha==1.0\n")
    result, snap = _sync(app, tmp_path / "s", upstream, "--exclude-newer", "7 days")
    (a,) = result["apps"]
    assert a["ok"] and _packages(snap, "plain")["alpha"] == "1.0"
    assert any("cooldown" in w and "gives no upload times" in w for w in a["warnings"]), a["warnings"]
