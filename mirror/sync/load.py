"""Reading the app folders: each app's spec, its targets and Python, the direct packages it builds.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from packaging.utils import canonicalize_name

from airgap_mirror.apps import AppRules, AppSpec, load_app
from airgap_mirror.errors import InputError, MirrorError
from airgap_mirror.interfaces import sync_extensions
from airgap_mirror.resolve import (
    IndexConfig,
    uv_binary,
    uv_env,
)
from airgap_mirror.resolve.targets import PythonTarget
from airgap_mirror.store import Store
from airgap_mirror.sync.jobs import app_index
from airgap_mirror.sync.options import AppResult, SyncOptions
from airgap_mirror.sync.state import SyncRun
from airgap_mirror.urls import redact_text

if TYPE_CHECKING:
    from airgap_mirror.apps.direct import DirectDist



def _unexpected(where: object, exc: BaseException) -> str:
    """An error the reader did not foresee, told without quoting what it read (it may be a secret)."""
    return (f"{where}: could not be read ({type(exc).__name__}); this is a bug in airgap-mirror, please report it "
            "with the file's shape (not its content)")


def _conda_side(opts: SyncOptions) -> bool:
    """An environment.yml's conda packages are mirrored (by the conda plug-in, unless --no-conda)."""
    return (any(e.name == "conda" for e in sync_extensions())
            and bool(opts.extensions.get("conda", {}).get("enabled", True)))


def app_targets(app: AppSpec, opts: SyncOptions) -> list[PythonTarget]:
    out = [PythonTarget.parse(py, plat) for py, plat in opts.targets]
    if opts.cross_product:
        pythons = opts.pythons or (app.python or opts.default_python,)
        out += [PythonTarget.parse(py, plat) for py in pythons for plat in opts.platforms]
    return list(dict.fromkeys(out))


def prepare_apps(run: SyncRun) -> dict[str, tuple[IndexConfig, dict[int, DirectDist]]]:
    """Each app's indexes (credentials expanded) and its git / path / URL packages built into files.

    An app whose variable is missing or whose package does not build is marked failed in `results`.
    """
    apps, results, store, opts, reporter = run.apps, run.results, run.store, run.opts, run.reporter
    prepared: dict[str, tuple[IndexConfig, dict[int, DirectDist]]] = {}
    direct_count = sum(1 for app, _ in apps for r in app.requirements if r.direct is not None)
    if direct_count:
        from airgap_mirror.apps.direct import materialise  # (git, tarfile, zipfile: only for apps that name such packages)

        reporter.phase("building git and local packages", direct_count)
    for app, _ in apps:
        if not app.has_python:
            continue
        result = results[app.name]
        try:
            index = app_index(app, opts.index)
            dists: dict[int, DirectDist] = {}
            for i, line in enumerate(app.requirements):
                if line.direct is None:
                    continue
                dist = materialise(line.direct, where=line.where, app_dir=app.path, cache=store.cache,
                                   index=index, refresh=opts.refresh, allow_outside=opts.allow_outside)
                reporter.advance()
                if line.direct.name and canonicalize_name(line.direct.name) != dist.key:
                    raise InputError(f"{line.where}: the requirement says {line.direct.name!r} but "
                                     f"{line.direct.display} is {dist.name!r}: fix the name")
                if line.direct.editable:
                    result.warnings.append(f"{line.where}: -e {line.direct.display} is mirrored as a regular "
                                           f"package ({dist.name}=={dist.version}); inside it installs non-editable")
                result.warnings.extend(dist.warnings)
                dists[i] = dist
        except MirrorError as exc:
            result.ok = False
            result.error = redact_text(str(exc))
            continue
        except Exception as exc:  # noqa: BLE001  (one app's folder never stops the others)
            result.ok = False
            result.error = _unexpected(app.path, exc)
            continue
        prepared[app.name] = (index, dists)
    return prepared


def _solved_python(app: AppSpec, opts: SyncOptions, store: Store) -> AppSpec:
    """An environment.yml that leaves Python open (`python>=3.10`, or none) gets the Python its conda
    solve picks, for its pip: list, as an exact `python=3.10` already does; an explicit --python wins."""
    if not (app.has_python and app.conda_specs and app.python is None and opts.cross_product and not opts.pythons
            and opts.platforms and _conda_side(opts)):
        return app
    for ext in sync_extensions():
        ask = getattr(ext, "app_python", None)
        if ask is not None:
            picked = ask(app, store=store, platform=opts.platforms[0], options=opts.extensions.get(ext.name, {}))
            if picked:
                return dataclasses.replace(app, python=picked)
    return app


def _check_requires_python(app: AppSpec, targets: list[PythonTarget]) -> None:
    """A lock whose requires-python does not admit a target's Python fails the app, as its install
    would fail inside."""
    if not app.requires_python:
        return
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        spec = SpecifierSet(app.requires_python)
    except InvalidSpecifier:
        return
    for t in targets:
        if not spec.contains(t.python, prereleases=True):
            source = f"{app.python_from}: {app.python}" if app.python_from else "the site's default"
            raise InputError(f"{app.path / (app.package_manager or '')}: requires-python {app.requires_python} does not "
                             f"admit Python {t.python} ({source}): the install would fail on that target; name a Python "
                             "it admits in .python-version, or relock")


def _read_folders(opts: SyncOptions, rules: AppRules) -> list[Callable[[], AppSpec]]:
    """Each app folder read, several at once when there are several: a lock app's reading is a
    process of uv's (`uv export`: 0.02-0.07 s), and twelve of them one after another were 0.45 s of
    a first sync. Each answer (or its error) in the order given."""
    def read(path: Path) -> AppSpec:
        return load_app(path, opts.requirement_files, allow_outside=opts.allow_outside, rules=rules)

    if len(opts.apps) < 2:
        return [functools.partial(read, path) for path in opts.apps]
    import concurrent.futures as cf

    with cf.ThreadPoolExecutor(max_workers=4, thread_name_prefix="app") as pool:  # (left once all are read)
        futures = [pool.submit(read, path) for path in opts.apps]
    return [future.result for future in futures]


def load_apps(opts: SyncOptions, store: Store) -> tuple[dict[str, AppResult], list[tuple[AppSpec, list[PythonTarget]]]]:
    """Step 1: each app folder read (its own error if it cannot be), with its targets."""
    results: dict[str, AppResult] = {}
    apps: list[tuple[AppSpec, list[PythonTarget]]] = []
    rules = AppRules(managers=opts.package_managers, first_wins=opts.package_manager_first_wins, uv=uv_binary(),
                     uv_env=uv_env(opts.index, store.cache / "uv"), extras=opts.app_extras, groups=opts.app_groups,
                     cache=store.cache / "uv-exports")
    for path, read in zip(opts.apps, _read_folders(opts, rules), strict=True):
        try:
            app = _solved_python(read(), opts, store)
            targets = app_targets(app, opts) if app.has_python else []
            _check_requires_python(app, targets)
        except MirrorError as exc:
            name = Path(path).resolve().name
            results[name] = AppResult(name=name, path=str(path), ok=False, error=redact_text(str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001  (one app's folder never stops the others)
            name = Path(path).absolute().name
            results[name] = AppResult(name=name, path=str(path), ok=False, error=_unexpected(path, exc))
            continue
        if app.name in results:
            results[app.name].warnings.append(f"two app folders are named {app.name}; {path} ignored")
            continue
        conda_side = bool(app.conda_packages or app.conda_specs) and _conda_side(opts)  # the conda plug-in mirrors them
        result = results[app.name] = AppResult(name=app.name, path=str(path), ok=True, targets=[t.id for t in targets],
                                               conda_not_mirrored=[] if conda_side else list(app.conda_packages),
                                               package_manager=app.package_manager, python=app.python,
                                               python_from=app.python_from if app.python else None,
                                               extras=list(app.extras), groups=list(app.groups))
        result.warnings.extend(app.notes)
        if app.python and app.python_from and targets and not any(
                t.python == app.python or t.python.startswith(app.python + ".") or app.python.startswith(t.python + ".")
                for t in targets):
            result.warnings.append(f"{app.python_from} asks for Python {app.python}, but the targets are named "
                                   f"({', '.join(t.id for t in targets)}): the app is not mirrored for its own Python; "
                                   "add it to [[targets]] (or --target), or drop the file")
        if app.conda_packages and not conda_side:
            result.warnings.append(
                f"{len(app.conda_packages)} conda packages in environment.yml are not mirrored (only its pip: section): "
                f"{', '.join(app.conda_packages[:10])}{', ...' if len(app.conda_packages) > 10 else ''}")
        if not app.has_python and not app.apt_files and not (conda_side and app.conda_specs):
            result.warnings.append("no Python requirements and no Aptfile found")
        unread = app.unread_requirement_files()
        if unread:
            result.warnings.append(
                f"{', '.join(unread)} not mirrored: the platform does not install {'them' if len(unread) > 1 else 'it'}; "
                "if the app does (say from a predeploy script), add the name to `requirement-files` under [apps] in "
                "mirror.toml (or sync --requirements-file NAME)")
        apps.append((app, targets))
    return results, apps
