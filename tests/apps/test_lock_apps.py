"""Apps as platforms ship them: one package-manager file decides the app, the Python comes from
runtime.txt, .python-version or Pipfile.lock, and a lock's pins are mirrored exactly (markers
evaluated per target, hashes checked, dev groups left out, nothing re-resolved)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from airgap_mirror.apps import load_app
from airgap_mirror.errors import InputError, RequirementsError
from airgap_mirror.resolve import IndexConfig, uv_binary
from airgap_mirror.store import open_store
from airgap_mirror.sync import SyncOptions, run_sync
from tests.builders.upstreams import X86, clean_env


def _opts(app: Path, upstream, **kw) -> SyncOptions:
    return SyncOptions(apps=(app,), platforms=(X86,), index=IndexConfig(index_url=upstream.url + "/simple"),
                       installers=(), **kw)


def _packages(store, result, app: str) -> dict[str, dict[str, str]]:
    snap = store.load_snapshot(result.snapshot_id)
    return {tid: dict(map(tuple, t["packages"])) for tid, t in snap["apps"][app]["targets"].items()}


def _sha(upstream, filename: str) -> str:
    return hashlib.sha256((Path(upstream.root) / "files" / filename).read_bytes()).hexdigest()


def _uv_project(folder: Path, upstream, deps: list[str], dev: list[str] = ()) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "lockapp"\nversion = "0.1"\nrequires-python = ">=3.10"\n'
        f"dependencies = {json.dumps(deps)}\n[dependency-groups]\ndev = {json.dumps(list(dev))}\n"
        "[tool.uv]\npackage = false\n")
    subprocess.run([uv_binary(), "lock", "--no-config", "--default-index", upstream.url + "/simple", "-q"],
                   cwd=folder, check=True, env=clean_env())


def test_a_uv_lock_is_mirrored_exactly_main_dependencies_only(upstream, tmp_path):
    app = tmp_path / "uvapp"
    _uv_project(app, upstream, ["alpha==1.0", "beta<2", "darwinonly ; sys_platform == 'darwin'"], dev=["delta"])
    (app / ".python-version").write_text("3.12\n")
    store = open_store(tmp_path / "s", create=True)
    result = run_sync(store, _opts(app, upstream))
    assert result.ok, result.apps
    (a,) = result.apps
    assert (a.package_manager, a.python, a.python_from) == ("uv.lock", "3.12", ".python-version")
    # beta 1.0 as locked (beta 2.0 is newer); the darwin-only package and the dev group left out
    assert _packages(store, result, "uvapp") == {f"cp312-{X86}": {"alpha": "1.0", "beta": "1.0"}}


def test_a_stale_uv_lock_fails_as_uv_sync_locked_would(upstream, tmp_path):
    app = tmp_path / "uvapp"
    _uv_project(app, upstream, ["alpha==1.0", "beta<2"])
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"beta<2"', '"beta>=2"'))  # changed since locking
    result = run_sync(open_store(tmp_path / "s", create=True), _opts(app, upstream))
    (a,) = result.apps
    assert not a.ok and "uv.lock" in a.error and "run `uv lock`" in a.error, a.error


def test_a_file_whose_hash_the_lock_does_not_list_fails_the_app(upstream, tmp_path):
    app = tmp_path / "uvapp"
    _uv_project(app, upstream, ["beta==1.0"])
    lock = app / "uv.lock"
    real = _sha(upstream, "beta-1.0-py3-none-any.whl")
    lock.write_text(lock.read_text().replace(real, "0" * 64))  # the index now serves another file
    store = open_store(tmp_path / "s", create=True)
    result = run_sync(store, _opts(app, upstream))
    (a,) = result.apps
    assert not a.ok, a
    # the lock's files are fetched by the lock's own hashes: the index's bytes are refused
    assert any(real in e and "0" * 64 in e for e in result.fetch_errors), result.fetch_errors
    assert result.snapshot_id is None and not store.has_blob("0" * 64)  # nothing recorded, served under no name


def test_a_pylock_made_by_pip_lock_is_mirrored(upstream, tmp_path):
    app = tmp_path / "pylockapp"
    app.mkdir()
    subprocess.run([str(Path(__import__("sys").executable).parent / "pip"), "lock", "--isolated", "--index-url",
                    upstream.url + "/simple", "alpha==1.0", "-o", str(app / "pylock.toml")],
                   check=True, env=clean_env(), capture_output=True)
    store = open_store(tmp_path / "s", create=True)
    result = run_sync(store, _opts(app, upstream, pythons=("3.11",)))
    assert result.ok, result.apps
    assert result.apps[0].package_manager == "pylock.toml"
    assert _packages(store, result, "pylockapp") == {f"cp311-{X86}": {"alpha": "1.0", "beta": "2.0"}}


def test_a_pipfile_lock_gives_its_python_markers_and_hashes(upstream, tmp_path):
    """The shape `pipenv lock` writes (written here by hand: pipenv is not installed by the tests)."""
    app = tmp_path / "pipenvapp"
    app.mkdir()
    (app / "Pipfile").write_text('[packages]\nalpha = "==1.0"\n')
    lock = {
        "_meta": {"hash": {"sha256": "x"}, "pipfile-spec": 6, "requires": {"python_version": "3.12"},
                  "sources": [{"name": "pypi", "url": upstream.url + "/simple", "verify_ssl": False}]},
        "default": {
            "alpha": {"hashes": [f"sha256:{_sha(upstream, 'alpha-1.0-py3-none-any.whl')}"], "index": "pypi",
                      "version": "==1.0"},
            "beta": {"hashes": [f"sha256:{_sha(upstream, 'beta-1.0-py3-none-any.whl')}"], "index": "pypi",
                     "markers": "python_version >= '3.8'", "version": "==1.0"},
            "darwinonly": {"hashes": [f"sha256:{_sha(upstream, 'darwinonly-1.0-py3-none-any.whl')}"],
                           "markers": "sys_platform == 'darwin'", "version": "==1.0"},
        },
        "develop": {"delta": {"hashes": [], "version": "==1.0"}},
    }
    (app / "Pipfile.lock").write_text(json.dumps(lock, indent=4, sort_keys=True) + "\n")
    store = open_store(tmp_path / "s", create=True)
    result = run_sync(store, _opts(app, upstream))
    assert result.ok, result.apps
    assert (result.apps[0].python, result.apps[0].python_from) == ("3.12", "Pipfile.lock (python_version)")
    assert _packages(store, result, "pipenvapp") == {f"cp312-{X86}": {"alpha": "1.0", "beta": "1.0"}}
    # A file whose hash the lock does not list (a lock that names no files: the index's are checked)
    real = _sha(upstream, "beta-1.0-py3-none-any.whl")
    (app / "Pipfile.lock").write_text((app / "Pipfile.lock").read_text().replace(real, "1" * 64))
    failed = run_sync(store, _opts(app, upstream)).apps[0]
    assert not failed.ok and f"has sha256 {real}, which Pipfile.lock does not list for beta 1.0" in failed.error


def test_a_poetry_lock_takes_the_main_group_with_its_markers(upstream, tmp_path):
    """Lock format 2.1, as Poetry 2 writes it (written here by hand: Poetry is not installed by the tests)."""
    app = tmp_path / "poetryapp"
    app.mkdir()
    (app / "pyproject.toml").write_text('[tool.poetry]\nname = "p"\n[tool.poetry.dependencies]\npython = "^3.11"\nalpha = "1.0"\n')

    def pkg(name: str, groups: list[str], marker: str | None = None) -> str:
        f = f"{name}-1.0-py3-none-any.whl"
        return (f'[[package]]\nname = "{name}"\nversion = "1.0"\ndescription = ""\noptional = false\n'
                f'python-versions = "*"\ngroups = {json.dumps(groups)}\n' + (f"markers = {json.dumps(marker)}\n" if marker else "")
                + f'files = [\n    {{file = "{f}", hash = "sha256:{_sha(upstream, f)}"}},\n]\n\n')

    (app / "poetry.lock").write_text(
        "# This file is automatically @generated by Poetry 2.1.3 and should not be changed by hand.\n\n"
        + pkg("alpha", ["main"]) + pkg("beta", ["main"]) + pkg("darwinonly", ["main"], 'sys_platform == "darwin"')
        + pkg("armonly", ["dev"]) + '[metadata]\nlock-version = "2.1"\npython-versions = "^3.11"\ncontent-hash = "x"\n')
    store = open_store(tmp_path / "s", create=True)
    result = run_sync(store, _opts(app, upstream, pythons=("3.11",)))
    assert result.ok, result.apps
    assert _packages(store, result, "poetryapp") == {f"cp311-{X86}": {"alpha": "1.0", "beta": "1.0"}}
    # a lock whose requires-python does not admit the app's Python fails it
    (app / ".python-version").write_text("3.10\n")
    failed = run_sync(store, _opts(app, upstream))
    assert not failed.apps[0].ok and "does not admit Python 3.10 (.python-version: 3.10)" in failed.apps[0].error


@pytest.mark.parametrize("files, problem", [
    ({"requirements.txt": "alpha\n", "uv.lock": ""}, "several package-manager files (requirements.txt (pip), uv.lock (uv))"),
    ({"Pipfile": "[packages]\n"}, "a Pipfile without its Pipfile.lock"),
    ({"setup.py": "from setuptools import setup\n"}, "a setup.py alone is no package-manager file"),
    ({"pyproject.toml": '[project]\nname = "x"\ndependencies = ["alpha"]\n'}, "a project with dependencies but no lock file"),
])
def test_which_files_make_the_app(tmp_path, files, problem):
    app = tmp_path / "a"
    app.mkdir()
    for name, text in files.items():
        (app / name).write_text(text)
    with pytest.raises(InputError) as exc:
        load_app(app)
    assert problem in str(exc.value)


def test_the_python_the_platform_picks(tmp_path):
    app = tmp_path / "a"
    app.mkdir()
    (app / "requirements.txt").write_text("alpha\n")
    assert load_app(app).python is None
    (app / ".python-version").write_text("# the app's Python\n3.12.4\n")
    got = load_app(app)
    assert (got.python, got.python_from) == ("3.12.4", ".python-version")
    (app / "runtime.txt").write_text("python-3.10.2\n")
    got = load_app(app)
    assert (got.python, got.python_from) == ("3.10.2", "runtime.txt") and any("both" in n for n in got.notes)
    (app / "runtime.txt").unlink()
    (app / ".python-version").write_text("3.12\n3.11\n")
    with pytest.raises(RequirementsError, match=r"\.python-version:2: more than one Python version"):
        load_app(app)
    (app / ".python-version").write_text("python-3.12\n")
    with pytest.raises(RequirementsError, match=r"\.python-version:1: .*is not a Python version"):
        load_app(app)
    (app / ".python-version").unlink()
    (app / "python-version.txt").write_text("3.12\n")
    assert any("misspelt .python-version" in n for n in load_app(app).notes)


def test_the_corpus_apps_with_a_python_version_file_get_their_python():
    corpus = Path(__file__).parents[3] / "shared" / "corpus" / "apps"
    if not corpus.is_dir():
        pytest.skip("../shared/corpus is not beside this checkout")
    want = {"apt-maximise-pillow-dev": "3.10", "apt-mcq-subset-pandoc": "3.12", "apt-sugurta-bot-playwright": "3.11",
            "req-pypi-warehouse-hashes": "3.8.2"}
    for name, python in want.items():
        app = load_app(corpus / name, allow_outside=True)
        assert (app.python, app.python_from) == (python, ".python-version"), name


def test_client_config_tells_a_lock_app_how_it_installs_unchanged(upstream, tmp_path):
    from tests.builders.cli import run_mirror

    app = tmp_path / "uvapp"
    _uv_project(app, upstream, ["alpha==1.0"])
    open_store(tmp_path / "s", create=True)
    out = run_mirror("client-config", "--url", "https://mirror.internal", "--store", str(tmp_path / "s"),
                     "--app", str(app)).stdout
    assert "uv sync --locked --no-default-groups" in out and "pypi.org and files.pythonhosted.org" in out
    assert "PIP_INDEX_URL" not in out  # the lock names its index: pip's settings are not the way


def test_a_lock_with_two_versions_of_one_project_gives_each_target_its_own(upstream, tmp_path):
    """uv forks a resolution by Python version: one lock, beta 1.0 below 3.12 and beta 2.0 from it,
    each with its own files and hashes."""
    app = tmp_path / "forked"
    _uv_project(app, upstream, ["beta==1.0 ; python_version < '3.12'", "beta==2.0 ; python_version >= '3.12'"])
    assert (app / "uv.lock").read_text().count('[[package]]\nname = "beta"') == 2
    store = open_store(tmp_path / "s", create=True)
    result = run_sync(store, _opts(app, upstream, pythons=("3.11", "3.12")))
    assert result.ok, result.apps
    assert _packages(store, result, "forked") == {f"cp311-{X86}": {"beta": "1.0"}, f"cp312-{X86}": {"beta": "2.0"}}


def test_a_stale_lock_of_a_python_this_machine_lacks_fails_too(tmp_path):
    """uv's own --locked check needs an interpreter the project admits; for a 3.14 app on a machine
    without 3.14 the lock is read as it is and checked against pyproject.toml here (Heroku's real
    uv_basic fixture, its dependencies changed after locking)."""
    import shutil

    app = tmp_path / "uv_basic"
    shutil.copytree(Path(__file__).parents[1] / "data" / "heroku-fixtures" / "uv_basic", app)
    assert load_app(app).python == "3.14"  # reads as it is
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"typing-extensions",', '"typing-extensions",\n    "six",'))
    with pytest.raises(RequirementsError, match=r"does not match pyproject.toml \(dependencies changed") as exc:
        load_app(app)
    assert "uv.lock" in str(exc.value) and "run `uv lock`" in str(exc.value)


def test_an_apps_python_that_the_named_targets_leave_out_is_warned_of(upstream, tmp_path):
    app = tmp_path / "a"
    app.mkdir()
    (app / "requirements.txt").write_text("beta==1.0\n")
    (app / ".python-version").write_text("3.12\n")
    store = open_store(tmp_path / "s", create=True)
    result = run_sync(store, _opts(app, upstream, targets=(("3.11", X86),), cross_product=False))
    (a,) = result.apps
    assert a.ok and a.targets == [f"cp311-{X86}"]
    assert any(".python-version asks for Python 3.12, but the targets are named" in w for w in a.warnings), a.warnings
    same = run_sync(store, _opts(app, upstream, targets=(("3.12", X86),), cross_product=False))
    assert not any("asks for Python" in w for w in same.apps[0].warnings)


def test_every_mirror_lock_line_client_config_prints_works_as_printed(upstream, tmp_path):
    """For an app with two targets, `mirror lock APP -o requirements.lock` exits 2 (which target?):
    client-config prints one line per target, and each runs as printed."""
    import shlex

    from tests.builders.cli import run_mirror

    app = tmp_path / "a"
    app.mkdir()
    (app / "requirements.txt").write_text("alpha==1.0\n")
    store = tmp_path / "s"
    run_mirror("sync", str(app), "--store", str(store), "--python", "3.11", "--python", "3.12", "--platform", X86,
               "--index-url", upstream.url + "/simple", "--installers", "")
    out = run_mirror("client-config", "--url", "http://mirror.internal", "--store", str(store), "--app", str(app)).stdout
    lines = [ln.strip("# ").strip() for ln in out.splitlines() if ln.strip("# ").startswith("mirror lock ")]
    assert len(lines) == 2, out
    for line in lines:
        args = shlex.split(line)[1:]
        run_mirror(*args, "--store", str(store), cwd=tmp_path)
        written = tmp_path / args[args.index("-o") + 1]
        assert "alpha==1.0" in written.read_text() and "--hash=sha256:" in written.read_text()


def test_uvs_reading_of_a_lock_is_kept_but_never_outlives_a_change(upstream, tmp_path):
    """A nightly asks uv to read an unchanged uv.lock once (kept by the bytes of the lock, its
    pyproject.toml, the uv binary, the flags and uv's settings); a changed pyproject.toml is read
    again, and a lock gone stale fails as `uv sync --locked` would."""
    app = tmp_path / "uvapp"
    _uv_project(app, upstream, ["alpha==1.0", "beta<2"])
    store = open_store(tmp_path / "s", create=True)
    assert run_sync(store, _opts(app, upstream)).ok
    kept = list((store.cache / "uv-exports").glob("*.pylock.toml"))
    assert len(kept) == 1
    assert run_sync(store, _opts(app, upstream)).ok  # (answered from what was kept)
    assert list((store.cache / "uv-exports").glob("*.pylock.toml")) == kept
    pyproject = app / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"beta<2"', '"beta>=2"'))
    (a,) = run_sync(store, _opts(app, upstream)).apps
    assert not a.ok and "run `uv lock`" in a.error, a.error


@pytest.mark.parametrize("pyproject, expected", [
    ('[project]\nname = "x"\n[tool.uv]\npackage = false\n[build-system]\nrequires = ["hatchling"]\n', ()),
    ('[project]\nname = "x"\n', ()),  # a virtual project: uv builds nothing
    ('[project]\nname = "x"\n[build-system]\nrequires = ["hatchling>=1.26"]\nbuild-backend = "hatchling.build"\n',
     ("hatchling>=1.26",)),
    ('[project]\nname = "x"\n[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n',
     ("setuptools>=61", "wheel")),  # (setuptools < 70.1 asks for wheel when it builds)
    ('[project]\nname = "x"\n[tool.uv]\npackage = true\n', ("setuptools>=40.8.0", "wheel")),
])
def test_a_packaged_uv_projects_build_requirements_are_mirrored_as_uv_decides(tmp_path, pyproject, expected):
    from airgap_mirror.apps.locks import _project_build_requires

    (tmp_path / "pyproject.toml").write_text(pyproject)
    assert _project_build_requires(tmp_path / "uv.lock") == expected
