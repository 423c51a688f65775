"""The house rules the plan depends on: the core imports no plug-in and knows none of their tables or
layouts, and a plug-in that cannot load is reported, not dropped."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest

from mirror import interfaces

CORE = Path(__file__).resolve().parents[1] / "mirror"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("module", sorted(p.name for p in CORE.rglob("*.py")))
def test_the_core_imports_no_plugin_and_knows_none_of_their_tables(module):
    path = next(CORE.rglob(module))
    assert not _imports(path) & {"apt", "bundles"}, f"mirror/{module} imports a plug-in"
    text = path.read_text()
    for word in ("bundle_exports", "bundle_imports", "debian/dists", '"dists"', "apt_base", "with_recommends"):
        assert word not in text, f"mirror/{module} names {word}, which belongs to a plug-in"


def test_a_plugin_that_cannot_load_is_reported(monkeypatch, capsys):
    broken = importlib.metadata.EntryPoint(name="ghost", value="no_such_module_x:thing", group="airgap_mirror.test")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda: importlib.metadata.EntryPoints([broken]))
    interfaces.plugins.cache_clear()
    interfaces._entry_points.cache_clear()
    try:
        assert interfaces.plugins("airgap_mirror.test") == ()
    finally:
        interfaces.plugins.cache_clear()
        interfaces._entry_points.cache_clear()
    err = capsys.readouterr().err
    assert "plug-in 'ghost'" in err and "ModuleNotFoundError" in err
    assert any("ghost" in e for e in interfaces.plugin_errors())


def test_the_installed_plugins_load():
    interfaces.plugins.cache_clear()
    assert [e.name for e in interfaces.sync_extensions()] == ["apt", "conda"]
    assert interfaces.bundle_ledger() is not None and interfaces.publishers() and interfaces.client_config_hooks()
    assert len(interfaces.command_registrars()) == 2
    assert [h.extension for h in interfaces.sync_option_hooks()] == ["apt", "conda"]


@pytest.mark.parametrize("module", ["apt.cli", "bundles.cli", "apt.sync", "bundles.state", "mirror.cli"])
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    """No import cycle: a plug-in loaded before the core's CLI (as the entry-point loader may) works."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", f"import {module}; from mirror.interfaces import command_registrars;"
                           " assert len(command_registrars()) == 2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_tree_layout_puts_what_is_named_before_what_names_it():
    """The upload order to object storage and the cache lifetimes, with APT's rules from its plug-in."""
    from mirror.publish.layout import Stage, cache_control, classify, content_type

    sha = "ab" * 32
    assert classify(f"packages/ab/{sha}/alpha-1.0-py3-none-any.whl") == (Stage.FILES, True)
    assert classify(f"packages/ab/{sha}/alpha-1.0-py3-none-any.whl.metadata") == (Stage.SIDECARS, True)
    assert classify("simple/alpha/index.html") == (Stage.PAGES, False)
    assert classify("locks/shop/cp311/pylock.toml") == (Stage.PAGES, False)
    assert classify("simple/index.json") == (Stage.INDEXES, False)
    assert classify("find-links.html") == (Stage.INDEXES, False)
    assert classify(f"debian/pool/main/ab/{sha}/libfoo_1.0_amd64.deb") == (Stage.FILES, True)
    assert classify(f"debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/{sha}") == (Stage.SIDECARS, True)
    assert classify("debian/dists/bookworm/main/binary-amd64/Packages.xz") == (Stage.INDEXES, False)
    for name in ("InRelease", "Release", "Release.gpg"):
        assert classify(f"debian/dists/bookworm/{name}") == (Stage.ROOTS, False)
    assert classify("snapshot.json") == (Stage.STATUS, False)
    assert classify("debian/airgap-mirror.asc") == (Stage.PAGES, False)
    assert cache_control(f"debian/pool/main/ab/{sha}/x.deb") == "public, max-age=31536000, immutable"
    assert cache_control("simple/alpha/index.html") == "max-age=30, must-revalidate"
    assert content_type("simple/alpha/index.json") == "application/vnd.pypi.simple.v1+json"
