"""An app folder read as the platform reads it: which files make the app, its Python, its
requirements, Debian packages and conda packages (`load_app` → `AppSpec`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from airgap_mirror.apps.appfiles import AppFileError, read_app_file
from airgap_mirror.apps.locks import MANAGER_FILES, choose_manager, python_request, read_lock
from airgap_mirror.apps.reqfile import ReqLine, ReqOptions, RequirementsCollector, decode_like_pip, parse_requirements_text
from airgap_mirror.errors import InputError, RequirementsError

REQUIREMENT_FILES = ("requirements.txt", "private-requirements.txt")


APT_FILES = ("Aptfile", "packages.txt")


# How a package joins each lock (a requirements file beside a lock is not installed).
_ADD_TO_LOCK = {"uv.lock": "`uv add -r private-requirements.txt`", "poetry.lock": "`poetry add NAME`",
                "Pipfile.lock": "`pipenv install -r private-requirements.txt`", "pylock.toml": "`pip lock` with them"}


MAX_REQUIREMENTS = 5_000


# Heroku's `python-3.11.4`, and what people also write: `python-3.9.x`, `Python 3.10.2`, `3.11`.
_RUNTIME = re.compile(r"(?:python[-\s]?)?(\d+\.\d+)(?:\.(\d+|x|\*))?")


# A conda spec that pins Python's minor version: python=3.10, python==3.10.4, python=3.10.*, python 3.10.*
_CONDA_PYTHON = re.compile(r"python\s*(?:==?|\s)\s*(\d+\.\d+)(?:\.[\d*]+)*(?:[=\s].*)?")


@dataclass(frozen=True, slots=True, kw_only=True)
class AppSpec:
    """Everything an app folder declares, with where each piece was written."""

    name: str
    path: Path
    requirements: tuple[ReqLine, ...] = ()
    constraints: tuple[ReqLine, ...] = ()
    options: ReqOptions = field(default_factory=ReqOptions)
    python: str | None = None
    conda_packages: tuple[str, ...] = ()
    # environment.yml's conda side as written: every spec (python included) and the channels, in order.
    conda_specs: tuple[str, ...] = ()
    conda_channels: tuple[str, ...] = ()
    apt_files: tuple[Path, ...] = ()
    sources: tuple[Path, ...] = ()
    procfile: bool = False
    # The package-manager file that decides the app (requirements.txt, uv.lock, ...), None for an
    # app of Aptfile or environment.yml alone; a lock's pins are `locked` (never re-resolved).
    package_manager: str | None = None
    locked: bool = False
    lock_pylock: bytes | None = None  # the lock as PEP 751, for every environment, when it names its files
    requires_python: str | None = None
    # Where `python` came from (runtime.txt, .python-version, Pipfile.lock, environment.yml).
    python_from: str | None = None
    notes: tuple[str, ...] = ()  # warnings about the folder (a misspelt .python-version ...)
    # What the platform installs of a lock besides its main dependencies (mirror.toml [apps.extras],
    # [apps.groups]): the lock's extras and its dependency groups (Pipfile categories).
    extras: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    # A packaged uv project's build requirements (uv builds the project itself on `uv sync`).
    build_requires: tuple[str, ...] = ()

    @property
    def has_python(self) -> bool:
        return bool(self.requirements)

    def unread_requirement_files(self) -> list[str]:
        """requirements*.txt files in the folder that nothing read (e.g. one a predeploy script installs)."""
        read = {p.resolve() for p in self.sources}
        return sorted(p.name for p in self.path.glob("requirements*.txt") if p.is_file() and p.resolve() not in read)


def _read(path: Path, root: Path | None) -> str:
    try:
        return decode_like_pip(read_app_file(path, root=root), path)
    except AppFileError as exc:
        raise RequirementsError(path, 0, str(exc)) from exc


def _environment_yml(path: Path, into: RequirementsCollector) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Add the pip: section of a conda environment file to `into`; return (the conda packages it names
    but python and pip, every conda spec as written, the channels in order)."""
    import yaml  # (18 ms to import: only for an app with an environment.yml)

    text = _read(path, into.root)
    # An alias expands to its anchor's whole node wherever it is used: 465 bytes of nested aliases
    # grew past 3 GB (a "billion laughs"). conda's own files never use them: refused, naming the line.
    try:
        for token in yaml.scan(text):
            if isinstance(token, yaml.AliasToken):
                raise RequirementsError(path, token.start_mark.line + 1, "a YAML alias (*name): not read here",
                                        "write the values out (conda's environment files have no aliases)")
    except yaml.YAMLError:
        pass  # (compose below says what is wrong, with its line)
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RequirementsError(path, (mark.line + 1) if mark else 0, f"not valid YAML: {getattr(exc, 'problem', exc)}",
                                "fix the YAML syntax") from exc
    if root is None or not isinstance(root, yaml.MappingNode):
        raise RequirementsError(path, 1, "environment file is not a mapping", "it needs a `dependencies:` list")
    channels: list[str] = []
    channels_node = next((v for k, v in root.value if k.value == "channels"), None)
    if channels_node is not None:
        if not isinstance(channels_node, yaml.SequenceNode) or not all(isinstance(c, yaml.ScalarNode) for c in channels_node.value):
            raise RequirementsError(path, channels_node.start_mark.line + 1, "`channels` is not a list of names or URLs",
                                    "write it as a YAML list, e.g. [conda-forge, nodefaults]")
        channels = [str(c.value).strip() for c in channels_node.value]
    deps_node = next((v for k, v in root.value if k.value == "dependencies"), None)
    if deps_node is None:
        return (), (), tuple(channels)
    if not isinstance(deps_node, yaml.SequenceNode):
        raise RequirementsError(path, deps_node.start_mark.line + 1, "`dependencies` is not a list", "make it a YAML list")
    conda: list[str] = []
    pip_lines: list[tuple[int, str]] = []
    for item in deps_node.value:
        if isinstance(item, yaml.ScalarNode):
            conda.append(str(item.value))
        elif isinstance(item, yaml.MappingNode):
            for k, v in item.value:
                if k.value != "pip":
                    continue
                if not isinstance(v, yaml.SequenceNode):
                    raise RequirementsError(path, v.start_mark.line + 1, "`pip:` is not a list", "make it a YAML list")
                for entry in v.value:
                    pip_lines.append((entry.start_mark.line + 1, str(entry.value)))
    specs = tuple(c.strip() for c in conda if c.strip())
    pip_names = {"pip", "python"}
    conda = [c for c in conda if re.split(r"[=<>! ]", c, maxsplit=1)[0].lower() not in pip_names]
    if not pip_lines:
        return tuple(conda), specs, tuple(channels)
    # Keep line numbers: place each entry on its own line of the synthesised text.
    last = max(n for n, _ in pip_lines)
    lines = [""] * last
    for n, entry in pip_lines:
        lines[n - 1] = entry
    parse_requirements_text("\n".join(lines) + "\n", path, into=into)
    return tuple(conda), specs, tuple(channels)


def _runtime(path: Path, root: Path | None) -> str:
    text = _read(path, root).strip()
    m = _RUNTIME.fullmatch(text.lower())
    if not m:
        raise RequirementsError(path, 1, f"unrecognised runtime {text!r}", "write it as python-3.11 or python-3.11.4")
    return m.group(1) + (f".{m.group(2)}" if m.group(2) and m.group(2).isdigit() else "")


@dataclass(frozen=True, slots=True, kw_only=True)
class AppRules:
    """How the platform reads an app folder (mirror.toml's [apps]): the package-manager files it
    knows, in its order, and whether the first present wins over refusing several; the uv binary
    and environment that read a uv.lock (its indexes, no user config)."""

    managers: tuple[str, ...] = tuple(MANAGER_FILES)
    first_wins: bool = False
    uv: str | None = None  # None: the uv our install ships (else one on PATH)
    uv_env: dict[str, str] | None = None
    # By app name: the extras and groups of its lock the platform installs too.
    extras: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cache: Path | None = None  # where uv's reading of a uv.lock is kept by what it was made from


def load_app(path: Path, extra_files: tuple[str, ...] = (), *, allow_outside: bool = False,
             rules: AppRules | None = None) -> AppSpec:
    """Read an app folder as its platform does: its one package-manager file (requirements.txt, or
    a lock read as pins), private-requirements.txt and `extra_files` where present, runtime.txt /
    .python-version. Raises InputError (with file and line) on anything malformed; every file it
    reads lies inside the folder unless `allow_outside`."""
    path = Path(path).absolute()  # uv builds and file URLs run elsewhere
    if not path.is_dir():
        raise InputError(f"app folder {path} does not exist or is not a folder")
    rules = rules or AppRules()
    root = None if allow_outside else path
    collector = RequirementsCollector(root=root, app_dir=path)
    manager = choose_manager(path, rules.managers, first_wins=rules.first_wins)
    app_name = path.resolve().name
    extras, groups = tuple(rules.extras.get(app_name, ())), tuple(rules.groups.get(app_name, ()))
    locked = None
    notes: list[str] = []
    if manager is not None and manager != "requirements.txt":
        locked = read_lock(path / manager, root, uv=rules.uv, env=rules.uv_env, extras=extras, groups=groups,
                           cache=rules.cache)
        parse_requirements_text(locked.text, path / manager, into=collector)
    elif extras or groups:
        raise InputError(f"{path}: extras or groups are chosen for the app under [apps.extras] / [apps.groups] in "
                         f"mirror.toml, but it installs from {manager or 'no package-manager file'}, which has none: "
                         "name the extras in its requirements (`pkg[extra]`), and drop the app from those tables")
    for name in dict.fromkeys((*REQUIREMENT_FILES, *extra_files)):
        f = path / name
        if locked is not None:
            if os.path.lexists(f):  # the lock is the app: a requirements file beside it is not installed
                notes.append(f"{f}: not mirrored: the platform installs the app from {manager} alone, and a lock's "
                             "pins are not re-resolved with other requirements; add its packages to the lock "
                             f"({_ADD_TO_LOCK.get(manager or '', 'relock with them')}) so they are mirrored and installed")
            continue
        if os.path.lexists(f):  # a FIFO or a dangling link named requirements.txt is an error, not absent
            parse_requirements_text(_read(f, root), f, into=collector)
    conda: tuple[str, ...] = ()
    conda_specs: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    for name in ("environment.yml", "environment.yaml"):
        f = path / name
        if os.path.lexists(f):
            conda, conda_specs, channels = _environment_yml(f, collector)
            break
    runtime = _runtime(path / "runtime.txt", root) if os.path.lexists(path / "runtime.txt") else None
    python, python_from, python_notes = python_request(path, root, runtime)
    notes[:0] = python_notes
    if python is None:  # environment.yml's `python=3.10` picks the Python its pip: list is for
        python = next((m.group(1) for spec in conda_specs if (m := _CONDA_PYTHON.fullmatch(spec.strip().lower()))), None)
        python_from = "environment.yml" if python else None
    parsed = collector.result()
    if len(parsed.requirements) > MAX_REQUIREMENTS:  # one app's files never keep the others' sync busy
        first = parsed.requirements[MAX_REQUIREMENTS]
        raise RequirementsError(first.source, first.lineno, f"{len(parsed.requirements):,} requirements: over the "
                                f"{MAX_REQUIREMENTS:,} one app may name (the largest real apps name a few hundred)",
                                "split the app, or check the file is what the app installs")
    return AppSpec(
        name=app_name,
        path=path,
        requirements=parsed.requirements,
        constraints=parsed.constraints,
        options=parsed.options,
        python=python,
        conda_packages=conda,
        conda_specs=conda_specs,
        conda_channels=channels,
        apt_files=tuple(path / n for n in APT_FILES if os.path.lexists(path / n)),
        sources=tuple(dict.fromkeys(parsed.files)),
        procfile=(path / "Procfile").is_file(),
        package_manager=manager, locked=locked is not None, lock_pylock=locked.pylock if locked else None,
        requires_python=locked.requires_python if locked else None,
        python_from=python_from, notes=tuple(notes), extras=extras, groups=groups,
        build_requires=locked.build_requires if locked else (),
    )
