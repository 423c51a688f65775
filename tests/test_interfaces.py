"""The house rules the plan depends on: the core imports no plug-in and knows none of their tables or
layouts, and a plug-in that cannot load is reported, not dropped."""

from __future__ import annotations

import ast
import importlib.metadata
from pathlib import Path

import pytest

from airgap_mirror import interfaces

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "mirror"
CORE_FILES = sorted(str(p.relative_to(ROOT)) for p in CORE.rglob("*.py"))
PLUGIN_NAMES = {"airgap_apt", "airgap_bundles", "apt", "bundles"}  # the old names too: `apt` is Debian's python3-apt


def _imports(path: Path, *, top_only: bool = False) -> set[str]:
    """The absolute module names `path` imports (with each `from M import N` as M and M.N); with
    `top_only`, only those run when the module is imported (module level, `if`/`try` blocks included,
    `if TYPE_CHECKING:` left out), not those inside functions."""
    tree = ast.parse(path.read_text())
    nodes: list[ast.AST] = []
    if top_only:
        todo: list[ast.stmt] = list(tree.body)
        while todo:
            node = todo.pop()
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            nodes.append(node)
            if isinstance(node, (ast.If, ast.Try)):
                todo.extend([*node.body, *node.orelse, *getattr(node, "finalbody", []),
                             *(s for h in getattr(node, "handlers", []) for s in h.body)])
    else:
        nodes = list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("rel", CORE_FILES)
def test_the_core_imports_no_plugin_and_knows_none_of_their_tables(rel):
    path = ROOT / rel
    assert not {m.split(".")[0] for m in _imports(path)} & PLUGIN_NAMES, f"{rel} imports a plug-in"
    text = path.read_text()
    for word in ("bundle_exports", "bundle_imports", "debian/dists", '"dists"', "apt_base", "with_recommends"):
        assert word not in text, f"{rel} names {word}, which belongs to a plug-in"


# The core's packages from the ground up. A package may import one below it (or beside it on the same
# rung) when it is imported; never one above. Inside a function, an import may reach up only where the
# loop it would close is the point (the CLI's lazy loading is at the top anyway).
LAYERS = [
    {"errors", "urls", "defaults"},
    {"credentials", "logs"},
    {"store"},
    {"fetch"},
    {"resolve"},
    {"apps"},
    {"interfaces"},
    {"publish", "sbom"},
    {"maintenance", "sync", "conda"},
    {"serve"},
    {"cli", "__init__", "__main__"},
]
RANK = {name: i for i, rung in enumerate(LAYERS) for name in rung}


def _package(rel: str) -> str:
    parts = Path(rel).relative_to("mirror").parts
    return "__init__" if parts == ("__init__.py",) else parts[0].removesuffix(".py")


def test_every_core_package_has_a_rung():
    assert {_package(rel) for rel in CORE_FILES} <= set(RANK), "a new package: give it a rung in LAYERS"


@pytest.mark.parametrize("rel", CORE_FILES)
def test_no_core_package_imports_a_higher_one(rel):
    """Storage at the ground: store imports nothing of fetch, resolve, publish (verify, gc and repair
    live in maintenance, above all three); no package imports a higher one, at import time or later."""
    mine = _package(rel)
    above = []
    for name in _imports(ROOT / rel):
        parts = name.split(".")
        if parts[0] == "airgap_mirror" and len(parts) > 1 and parts[1] in RANK:
            if RANK[parts[1]] > RANK[mine]:
                above.append(name)
    assert not above, f"{rel} ({mine}) imports higher packages: {sorted(above)}"


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


def test_the_wheel_lists_every_package():
    """pyproject lists the packages (the import names differ from the folders); a folder left out would
    be missing from the installed wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    names = {"mirror": "airgap_mirror", "apt": "airgap_apt", "bundles": "airgap_bundles"}
    found = {".".join((names[p.parts[0]], *p.parts[1:-1])) for folder in names
             for p in (q.relative_to(ROOT) for q in (ROOT / folder).rglob("__init__.py"))}
    assert found == listed


@pytest.mark.parametrize("module", ["airgap_apt.cli", "airgap_bundles.cli", "airgap_apt.sync", "airgap_bundles.state", "airgap_mirror.cli"])
def test_each_module_imports_first_in_a_fresh_interpreter(module):
    """No import cycle: a plug-in loaded before the core's CLI (as the entry-point loader may) works."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", f"import {module}; from airgap_mirror.interfaces import command_registrars;"
                           " assert len(command_registrars()) == 2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_the_tree_layout_puts_what_is_named_before_what_names_it():
    """The upload order to object storage and the cache lifetimes, with APT's rules from its plug-in."""
    from airgap_mirror.publish.layout import Stage, cache_control, classify, content_type

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
