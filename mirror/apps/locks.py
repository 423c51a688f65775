"""An app as its platform reads it: which package-manager file decides it, which Python it runs,
and a lock file's pins as requirements (markers kept, hashes kept, nothing re-resolved).

The rules are those of Heroku's Python buildpack (lib/package_manager.sh, lib/python_version.sh),
which Dash Enterprise-style platforms follow: exactly one of requirements.txt, Pipfile.lock,
poetry.lock, uv.lock (and PEP 751's pylock.toml); the Python from runtime.txt, else
.python-version, else Pipfile.lock, else the site's default.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from airgap_mirror.apps.appfiles import AppFileError, read_app_file
from airgap_mirror.errors import InputError, RequirementsError

__all__ = ["MANAGER_FILES", "LockedApp", "choose_manager", "python_request", "read_lock"]

# File → the tool that installs from it, in the buildpack's order of listing.
MANAGER_FILES = {"Pipfile.lock": "pipenv", "requirements.txt": "pip", "poetry.lock": "poetry", "uv.lock": "uv",
                 "pylock.toml": "pip (pylock.toml)"}
_LOCKS = ("Pipfile.lock", "poetry.lock", "uv.lock", "pylock.toml")
# .python-version misspelt as seen in the wild (the buildpack's list): the platform fails such an
# app; we say so at sync time, not inside the gap.
_MISSPELT = (" .python-version", ". python-version", ".python_version.txt", ".python_version", ".python-version ",
             ",python-version", ".python-version.", ".python-version.py", ".python-version.rtf", ".python-version.txt",
             ".python-version.TXT", ".Python-version", ".python.version", ".pythonversion", "'.python-version'",
             "python_version.txt", "python_version", "python-version.", "python-version.txt", "python-version")
_VERSION = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))?")
_MAX_LOCK = 32 << 20


def choose_manager(path: Path, allowed: tuple[str, ...] = tuple(MANAGER_FILES), *, first_wins: bool = False) -> str | None:
    """The one package-manager file of the app folder (a name of MANAGER_FILES), or None when it has
    none (an app of Aptfile or environment.yml alone). `allowed` is the platform's list, in its order;
    `first_wins` takes the first present instead of refusing several (a platform with that rule)."""
    present = [f for f in allowed if (path / f).is_file()]
    if (path / "Pipfile").is_file() and not (path / "Pipfile.lock").is_file() and "Pipfile.lock" in allowed:
        raise InputError(f"{path / 'Pipfile'}: a Pipfile without its Pipfile.lock: the platform refuses to install "
                         "unpinned versions; run `pipenv lock` and commit Pipfile.lock (or replace the Pipfile by a "
                         "requirements.txt or uv.lock)")
    if len(present) > 1 and not first_wins:
        raise InputError(f"{path}: several package-manager files ({', '.join(f'{f} ({MANAGER_FILES[f]})' for f in present)});"
                         " the platform installs an app from exactly one: delete the others, or set "
                         "`package-manager-first-wins = true` under [apps] in mirror.toml if your platform picks the first")
    if present:
        return present[0]
    if (path / "pyproject.toml").is_file() and _declares_dependencies(path / "pyproject.toml"):
        raise InputError(f"{path / 'pyproject.toml'}: a project with dependencies but no lock file: the platform "
                         "installs from uv.lock or poetry.lock; run `uv lock` (or `poetry lock`) and commit the lock")
    if (path / "setup.py").is_file():
        raise InputError(f"{path / 'setup.py'}: a setup.py alone is no package-manager file (the platform no longer "
                         "guesses): add a requirements.txt holding `--editable .`, or a uv.lock")
    return None


def _declares_dependencies(pyproject: Path) -> bool:
    import tomllib

    try:
        doc = tomllib.loads(pyproject.read_text(encoding="utf-8", errors="replace"))
    except (OSError, ValueError):
        return False
    project, poetry = doc.get("project") or {}, (doc.get("tool") or {}).get("poetry") or {}
    return bool(isinstance(project, dict) and project.get("dependencies")) or bool(
        isinstance(poetry, dict) and set(poetry.get("dependencies") or {}) - {"python"})


def python_request(path: Path, root: Path | None, runtime: str | None) -> tuple[str | None, str | None, list[str]]:
    """(the Python the app asks for, the file it came from, warnings): runtime.txt (`runtime`,
    already read), else .python-version, else Pipfile.lock's python_full_version / python_version."""
    warnings = []
    if runtime is not None:
        if (path / ".python-version").is_file():
            warnings.append("runtime.txt and .python-version both name a Python: the platform takes runtime.txt "
                            "(deprecated); keep .python-version alone")
        return runtime, "runtime.txt", warnings
    for name in _MISSPELT:
        if (path / name).is_file() and not (path / ".python-version").is_file():
            warnings.append(f"{path / name}: a misspelt .python-version, which the platform refuses: rename it "
                            "to .python-version")
    pv = path / ".python-version"
    if pv.is_file():
        try:
            text = read_app_file(pv, root=root).decode("utf-8-sig", errors="replace")
        except AppFileError as exc:
            raise RequirementsError(pv, 0, str(exc)) from exc
        found = []
        for n, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            if not _VERSION.fullmatch(line):
                raise RequirementsError(pv, n, f"{line[:40]!r} is not a Python version",
                                        "write the version alone, as 3.12 or 3.12.4 (no 'python-' prefix, no other text)")
            found.append((n, line))
        if len({v for _, v in found}) > 1:
            raise RequirementsError(pv, found[1][0], "more than one Python version", "keep one line, e.g. 3.12")
        if not found:
            raise RequirementsError(pv, 1, "no Python version in it", "write the version, e.g. 3.12")
        return found[0][1], ".python-version", warnings
    lock = path / "Pipfile.lock"
    if lock.is_file():
        requires = (_pipfile_lock(lock, root).get("_meta") or {}).get("requires") or {}
        for key in ("python_full_version", "python_version"):
            value = requires.get(key)
            if isinstance(value, str) and _VERSION.fullmatch(value.strip()):
                return value.strip(), f"Pipfile.lock ({key})", warnings
    return None, None, warnings


@dataclass(frozen=True, slots=True, kw_only=True)
class LockedApp:
    """A lock file read as requirements text: each package on the line its lock declares it at
    (`name==version ; marker --hash=sha256:...`, or a direct reference), index options after."""

    path: Path
    text: str
    requires_python: str | None = None
    # The lock names where its packages come from: its indexes, in order (credentials as written).
    indexes: tuple[str, ...] = ()
    # The lock as PEP 751 (for every environment) when it names its files: the sync takes them as
    # they are, with no resolver run.
    pylock: bytes | None = None
    # A packaged project (uv builds and installs it, `uv sync` without --no-install-project): its
    # build requirements, which the site's index must hold as well.
    build_requires: tuple[str, ...] = ()


def read_lock(path: Path, root: Path | None, *, uv: str | None = None, env: dict[str, str] | None = None,
              extras: tuple[str, ...] = (), groups: tuple[str, ...] = (), cache: Path | None = None) -> LockedApp:
    """The lock file `path` (uv.lock, poetry.lock, Pipfile.lock or pylock.toml) as requirements: its
    main dependencies (no dev groups, as the platform installs), every marker and hash kept; and
    `extras` and `groups` where the platform installs them too (`uv sync --extra X --group G`,
    `poetry sync --with G -E X`, `pipenv install --categories "packages G"`, a pylock's own)."""
    name = path.name
    if name == "uv.lock":
        if uv is None:
            from airgap_mirror.resolve import uv_binary  # (the sync passes its own: this is for client-config)

            uv = uv_binary()
        return _uv_lock(path, root, uv, env, extras, groups, cache)
    if name == "Pipfile.lock":
        if extras:
            raise RequirementsError(path, 0, f"extras {', '.join(extras)} chosen for the app, but a Pipfile.lock "
                                    "has no extras of its own", "name the package with its extras in the Pipfile "
                                    "(`pkg = {extras = [...]}`), relock, and drop the app from [apps.extras]")
        return _from_pipfile_lock(path, root, groups)
    if name == "poetry.lock":
        return _poetry_lock(path, root, extras, groups)
    return _pylock(path, root, extras, groups)


_TRUE, _FALSE = 'python_version >= "0"', 'python_version < "0"'
_EXTRA_EQ = re.compile(r"""\bextra\s*(==|!=)\s*(['"])([^'"]*)\2|(['"])([^'"]*)\4\s*(==|!=)\s*extra\b""")
_IN_SET = re.compile(r"""(['"])([^'"]*)\1\s+(not\s+in|in)\s+(extras|dependency_groups)\b""")


def chosen_markers(marker: str, extras: tuple[str, ...], groups: tuple[str, ...] = ()) -> str:
    """A lock's marker with what the install asks for settled: `extra == "x"` (Poetry's optional
    packages), `"x" in extras` and `"g" in dependency_groups` (PEP 751) become true or false, so
    what is left names only the target machine (a marker any installer and uv evaluate alike)."""
    want_extras = {canonicalize_name(e) for e in extras}
    want_groups = {canonicalize_name(g) for g in groups}

    def eq(m: re.Match[str]) -> str:
        op, value = (m.group(1), m.group(3)) if m.group(1) else (m.group(6), m.group(5))
        hit = canonicalize_name(value) in want_extras
        return _TRUE if hit == (op == "==") else _FALSE

    def member(m: re.Match[str]) -> str:
        wanted = want_extras if m.group(4) == "extras" else want_groups
        hit = canonicalize_name(m.group(2)) in wanted
        return _TRUE if hit == (m.group(3) == "in") else _FALSE

    return _IN_SET.sub(member, _EXTRA_EQ.sub(eq, marker))


def _unknown(path: Path, kind: str, asked: tuple[str, ...], known: set[str], setting: str) -> None:
    """An extra or group the app's entry in mirror.toml names and its lock does not have."""
    missing = [a for a in asked if canonicalize_name(a) not in {canonicalize_name(k) for k in known}]
    if missing:
        have = ", ".join(sorted(known)) or "none"
        raise RequirementsError(path, 0, f"no {kind} {', '.join(repr(m) for m in missing)} in the lock (it has: {have})",
                                f"name one it has under {setting} in mirror.toml, or relock with the {kind} defined")


def _text(path: Path, root: Path | None) -> str:
    try:
        return read_app_file(path, root=root, limit=_MAX_LOCK).decode("utf-8-sig", errors="replace")
    except AppFileError as exc:
        raise RequirementsError(path, 0, str(exc)) from exc


def _toml(path: Path, root: Path | None) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads(_text(path, root))
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise RequirementsError(path, int(m.group(1)) if m else 0, f"not valid TOML: {exc}",
                                "regenerate the lock with its tool") from exc


def _placed(entries: list[tuple[int, str]], options: list[str]) -> str:
    """Requirement lines each on its own line number (errors name the lock's line), then options.
    A second entry for the same line (a lock's two versions of one package, for two markers) goes
    after the last line."""
    last = max((n for n, _ in entries), default=0)
    lines = [""] * last
    extra = []
    for n, entry in entries:
        if lines[n - 1]:
            extra.append(entry)
        else:
            lines[n - 1] = entry
    return "\n".join([*lines, *extra, *options]) + "\n"


def _line_of(text: str) -> dict[str, int]:
    """Package name → the line its `name = "..."` is declared on (TOML locks)."""
    out: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r'\s*name\s*=\s*"([^"]+)"', line)
        if m:
            out.setdefault(canonicalize_name(m.group(1)), n)
    return out


def _export_key(path: Path, text: str, uv: str, cmd: list[str], env: Mapping[str, str]) -> str | None:
    """What `uv export` answers from, when that is the lock and its one pyproject.toml alone: their
    bytes, the uv binary (path, size, time), the flags and uv's settings in the environment (its
    indexes: hashed, never kept). None for a workspace or a project with path sources (other files
    decide it), which uv reads every time."""
    import hashlib

    try:
        project = (path.parent / "pyproject.toml").read_bytes()
        st = os.stat(uv)
    except OSError:
        return None
    if re.search(rb"workspace|\bpath\s*=|editable", project):
        return None
    h = hashlib.sha256()
    for part in (text.encode(), b"\0", project, b"\0", f"{uv}:{st.st_size}:{st.st_mtime_ns}".encode(),
                 json.dumps(cmd[1:]).encode(), json.dumps(sorted((k, v) for k, v in env.items() if k.startswith("UV_"))).encode()):
        h.update(part)
    return h.hexdigest()


def _uv_lock(path: Path, root: Path | None, uv: str, env: dict[str, str] | None,
             extras: tuple[str, ...] = (), groups: tuple[str, ...] = (), cache: Path | None = None) -> LockedApp:
    """uv's own reading of its lock (`uv export --locked --format pylock.toml`: a stale lock fails as
    the platform's `uv sync --locked` would), main dependencies only (`--no-default-groups`), the
    project itself left out: PEP 751, every file with its URL and hash, markers for every environment.
    `cache`: uv's answer kept by what it was made from (a nightly's no-op asked uv again each time:
    0.09 s of 0.3 s)."""
    text = _text(path, root)
    cmd = [uv, "export", "--no-default-groups", "--no-emit-project", "--no-header", "--format", "pylock.toml",
           "--no-config", "--directory", str(path.parent),
           *(a for e in extras for a in ("--extra", e)), *(a for g in groups for a in ("--group", g))]
    env = {**(env if env is not None else os.environ), "UV_PYTHON_DOWNLOADS": "never"}
    key = _export_key(path, text, uv, cmd, env) if cache is not None else None
    kept = cache / f"{key}.pylock.toml" if cache is not None and key else None
    if kept is not None and kept.is_file():
        os.utime(kept)  # (asked for: kept another 30 days)
        return _exported(path, text, kept.read_text(encoding="utf-8"), _project_build_requires(path))
    # (any interpreter will do for --locked, named: found, it is 0.2 s of every sync)
    proc = subprocess.run([*cmd, "--locked", "--python", sys.executable], capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0 and ("Python requirement" in proc.stderr or "No interpreter found" in proc.stderr):
        # uv's own check needs an interpreter the project admits (a 3.14 app on a 3.11 machine):
        # the lock read as it is, and checked against pyproject.toml here.
        _check_uv_lock_fresh(path, _toml(path, root))
        proc = subprocess.run([*cmd, "--frozen"], capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip() and not ln.startswith(("Using ", "Resolved "))]
        why = " ".join(lines)[:400] or f"uv export exited {proc.returncode}"
        fix = ("run `uv lock` and commit uv.lock (the platform's `uv sync --locked` refuses it as it is)"
               if "needs to be updated" in why or "No solution" in why
               else "name an extra or group the project defines under [apps.extras] / [apps.groups] in mirror.toml"
               if "is not defined" in why else "check the lock with `uv lock --check`")
        raise RequirementsError(path, 0, f"uv cannot install from it: {why}", fix)
    if kept is not None:
        from airgap_mirror.store import atomic_write

        kept.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(kept, proc.stdout.encode("utf-8"))
        _forget_old(kept.parent)
    return _exported(path, text, proc.stdout, _project_build_requires(path))


def _forget_old(folder: Path, days: int = 30) -> None:
    """Readings of locks not asked for in `days` (a lock that changed leaves its old one behind)."""
    import time

    cutoff = time.time() - days * 86400
    for old in folder.glob("*.pylock.toml"):
        try:
            if old.stat().st_atime < cutoff and old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            continue


def _exported(path: Path, text: str, exported_text: str, build_requires: tuple[str, ...] = ()) -> LockedApp:
    exported = _pylock_from(path, exported_text, _line_of(text))
    # (uv.lock's own requires-python, read from its text: a TOML parse of a large lock is 50 ms)
    m = re.search(r'^requires-python = "([^"\n]*)"$', text, re.M)
    return LockedApp(path=path, text=exported.text, requires_python=m.group(1) if m else None,
                     indexes=exported.indexes, pylock=exported_text.encode("utf-8"), build_requires=build_requires)


def _project_build_requires(lock: Path) -> tuple[str, ...]:
    """The build requirements of the project beside a uv.lock when uv builds it on `uv sync`: a
    project is packaged when `[tool.uv] package = true`, or when it sets none and declares a
    `[build-system]` (uv's rule); without `requires` there, setuptools' legacy default."""
    try:
        doc = _toml(lock.parent / "pyproject.toml", None)
    except RequirementsError:
        return ()
    package = ((doc.get("tool") or {}).get("uv") or {}).get("package")
    system = doc.get("build-system")
    if package is False or (package is None and not isinstance(system, dict)):
        return ()
    requires = system.get("requires") if isinstance(system, dict) else None
    if not isinstance(requires, list):
        return ("setuptools>=40.8.0", "wheel")
    out = [str(r) for r in requires if isinstance(r, str)]
    backend = str((system or {}).get("build-backend") or "")
    if backend.startswith("setuptools.build_meta") and not any(re.match(r"wheel\b", r.strip(), re.I) for r in out):
        out.append("wheel")  # (setuptools before 70.1 asks for it from get_requires_for_build_wheel)
    return tuple(out)


def _check_uv_lock_fresh(path: Path, lock: dict[str, Any]) -> None:
    """What `uv sync --locked` checks first, without an interpreter: the lock records the project's
    requires-python and dependencies (and groups) as pyproject.toml had them when it was made."""
    from packaging.requirements import InvalidRequirement, Requirement

    pyproject = path.parent / "pyproject.toml"
    try:
        project = _toml(pyproject, None).get("project") or {}
    except RequirementsError:
        return
    root = next((p for p in lock.get("package") or [] if isinstance(p, dict)
                 and ((p.get("source") or {}).get("virtual") == "." or (p.get("source") or {}).get("editable") == ".")), None)
    if root is None:
        return
    meta = root.get("metadata") or {}

    def norm(reqs: object) -> set[str]:
        out = set()
        for r in reqs if isinstance(reqs, list) else []:
            try:
                if isinstance(r, str):
                    req = Requirement(r)
                elif isinstance(r, dict):
                    req = Requirement(str(r.get("name")) + str(r.get("specifier") or "")
                                      + (f"; {r['marker']}" if r.get("marker") else ""))
                else:
                    continue
            except InvalidRequirement:
                continue
            out.add(f"{canonicalize_name(req.name)}{sorted(req.extras)}{req.specifier}{req.marker or ''}")
        return out

    stale = []
    if str(lock.get("requires-python") or "") != str(project.get("requires-python") or lock.get("requires-python") or ""):
        stale.append("requires-python")
    if norm(meta.get("requires-dist")) != norm(project.get("dependencies")):
        stale.append("dependencies")
    if stale:
        raise RequirementsError(path, 0, f"the lock does not match pyproject.toml ({', '.join(stale)} changed since "
                                "locking): the platform's `uv sync --locked` refuses it",
                                "run `uv lock` and commit uv.lock")


def _pipfile_lock(path: Path, root: Path | None) -> dict[str, Any]:
    try:
        doc = json.loads(_text(path, root))
    except ValueError as exc:
        raise RequirementsError(path, getattr(exc, "lineno", 0), f"not valid JSON: {exc}", "run `pipenv lock` again") from exc
    if not isinstance(doc, dict):
        raise RequirementsError(path, 1, "not a Pipfile.lock (no JSON object)", "run `pipenv lock` again")
    return doc


# What a Pipfile calls a category, by the lock's name for it (pipenv's `--categories`).
_PIPFILE_SECTIONS = {"packages": "default", "default": "default", "dev-packages": "develop", "develop": "develop",
                     "dev": "develop"}


def _from_pipfile_lock(path: Path, root: Path | None, groups: tuple[str, ...] = ()) -> LockedApp:
    """Pipfile.lock's `default` section (what `pipenv install --deploy` installs), and the categories
    in `groups` where the platform installs them too (`--categories "packages worker"`, `--dev`), each
    package with its markers, hashes and the index it names."""
    text = _text(path, root)
    doc = _pipfile_lock(path, root)
    sources = {s.get("name"): s.get("url") for s in ((doc.get("_meta") or {}).get("sources") or [])
               if isinstance(s, dict) and isinstance(s.get("url"), str)}
    order = [u for u in sources.values() if isinstance(u, str)]
    lines_at: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r'\s{8}"([^"]+)":\s*\{', line)  # a package's key, at the depth pipenv writes it
        if m:
            lines_at.setdefault(canonicalize_name(m.group(1)), n)
    entries = []
    sections = ["default", *(_PIPFILE_SECTIONS.get(g, g) for g in groups)]
    _unknown(path, "category", tuple(g for g in groups if _PIPFILE_SECTIONS.get(g, g) not in doc),
             {k for k in doc if k != "_meta"}, "[apps.groups]")
    packages: dict[str, Any] = {}
    for section in dict.fromkeys(sections):
        table = doc.get(section) or {}
        if not isinstance(table, dict):
            raise RequirementsError(path, 1, f"its `{section}` section is not a table of packages", "run `pipenv lock` again")
        for key, value in table.items():
            packages.setdefault(key, value)  # (in two categories: pipenv installs the first's)
    for name, spec in packages.items():
        if not isinstance(spec, dict):
            continue
        marker = spec.get("markers")
        tail = f" ; {marker}" if isinstance(marker, str) and marker.strip() else ""
        extras = f"[{','.join(spec['extras'])}]" if isinstance(spec.get("extras"), list) and spec["extras"] else ""
        if isinstance(spec.get("git"), str):
            ref = spec.get("ref")
            req = f"{name}{extras} @ git+{spec['git']}" + (f"@{ref}" if isinstance(ref, str) else "") + tail
        elif isinstance(spec.get("path"), str) or isinstance(spec.get("file"), str):
            where = spec.get("path") or spec.get("file")
            req = ("-e " if spec.get("editable") else "") + str(where)
        else:
            version = spec.get("version")
            if not isinstance(version, str) or not version.startswith("=="):
                raise RequirementsError(path, lines_at.get(canonicalize_name(name), 0), f"{name} has no pinned version",
                                        "run `pipenv lock` again")
            hashes = " ".join(f"--hash={h}" for h in spec.get("hashes") or [] if isinstance(h, str))
            req = f"{name}{extras}{version}{tail} {hashes}".strip()
        entries.append((lines_at.get(canonicalize_name(name), 1), req))
    options = [f"--index-url {order[0]}"] + [f"--extra-index-url {u}" for u in order[1:]] if order else []
    requires = (doc.get("_meta") or {}).get("requires") or {}
    rp = requires.get("python_version")
    return LockedApp(path=path, text=_placed(entries, options), indexes=tuple(order),
                     requires_python=f"=={rp}.*" if isinstance(rp, str) and _VERSION.fullmatch(rp) else None)


def _poetry_lock(path: Path, root: Path | None, extras: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> LockedApp:
    """poetry.lock's packages of the `main` group (what `poetry sync --only main` installs) and of
    `groups` (`--with`), each with the marker Poetry recorded for it (`extra == "x"` settled by
    `extras`, `-E`) and the hashes of its files. Lock format 2.1 (Poetry 2) records groups and
    markers; 1.x records the group as `category`; 2.0 records neither: refused with the fix."""
    text = _text(path, root)
    doc = _toml(path, root)
    meta = doc.get("metadata") or {}
    version = str(meta.get("lock-version", ""))
    at = _line_of(text)
    wanted = {"main", *groups}
    extras_table = doc.get("extras") or (meta.get("extras") if isinstance(meta.get("extras"), dict) else None) or {}
    _unknown(path, "extra", extras, set(extras_table) if isinstance(extras_table, dict) else set(), "[apps.extras]")
    seen_groups: set[str] = set()
    entries, indexes = [], []
    for pkg in doc.get("package") or []:
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            continue
        name, line = pkg["name"], at.get(canonicalize_name(pkg["name"]), 1)
        if "groups" in pkg:
            pkg_groups = [str(g) for g in pkg.get("groups") or []]
            seen_groups.update(pkg_groups)
            chosen = [g for g in pkg_groups if g in wanted]
            if not chosen:
                continue
            recorded = pkg.get("markers")
            if isinstance(recorded, dict):  # a marker per group: installed where any chosen group's holds
                each = [recorded.get(g) for g in chosen]
                marker = None if not all(isinstance(m, str) and m.strip() for m in each) else \
                    " or ".join(f"({m})" for m in dict.fromkeys(each))
            else:
                marker = recorded
        elif "category" in pkg:
            seen_groups.add(str(pkg.get("category")))
            if pkg.get("category") not in wanted:
                continue
            marker = None
        else:
            raise RequirementsError(path, line, f"lock-version {version or '?'} records no group for its packages",
                                    "relock with Poetry 2 (`poetry lock`), which records groups and markers")
        if isinstance(marker, str) and ("extra" in marker):
            marker = chosen_markers(marker, extras)
        tail = f" ; {marker}" if isinstance(marker, str) and marker.strip() else ""
        source = pkg.get("source") or {}
        kind = source.get("type") if isinstance(source, dict) else None
        if kind == "git":
            ref = source.get("resolved_reference") or source.get("reference")
            req = f"{name} @ git+{source.get('url')}" + (f"@{ref}" if ref else "") + (
                f"#subdirectory={source['subdirectory']}" if source.get("subdirectory") else "") + tail
        elif kind in ("directory", "file"):
            req = ("-e " if pkg.get("develop") else "") + str(source.get("url"))
        elif kind == "url":
            req = f"{name} @ {source.get('url')}{tail}"
        else:
            if kind == "legacy" and isinstance(source.get("url"), str) and source["url"] not in indexes:
                indexes.append(source["url"])
            hashes = " ".join(f"--hash={f['hash']}" for f in pkg.get("files") or []
                              if isinstance(f, dict) and isinstance(f.get("hash"), str))
            req = f"{name}=={pkg.get('version')}{tail} {hashes}".strip()
        entries.append((line, req))
    _unknown(path, "group", groups, seen_groups - {"main"}, "[apps.groups]")
    options = [f"--extra-index-url {u}" for u in indexes]
    pv = meta.get("python-versions")
    return LockedApp(path=path, text=_placed(entries, options), indexes=tuple(indexes),
                     requires_python=_poetry_constraint(pv) if isinstance(pv, str) else None)


def _poetry_constraint(text: str) -> str | None:
    """Poetry's version constraint (`^3.11`, `~3.10`, `>=3.9,<4.0`, `*`) as a PEP 440 specifier;
    None for what PEP 440 cannot say (`||`) or allows everything."""
    if "||" in text:
        return None
    out = []
    for part in re.split(r"[,\s]+(?=[\^~<>=!*\d])", text.strip()):
        part = part.strip().rstrip(",")
        m = re.fullmatch(r"([\^~])\s*(\d+)(?:\.(\d+))?(?:\.\d+)?", part)
        if m:
            major, minor = int(m.group(2)), int(m.group(3) or 0)
            low = part[1:].strip()
            if m.group(1) == "^":
                high = f"{major + 1}.0" if major > 0 else f"0.{minor + 1}"
            else:
                high = f"{major}.{minor + 1}" if m.group(3) else f"{major + 1}.0"
            out += [f">={low}", f"<{high}"]
        elif part and part != "*":
            out.append(part if part[0] in "<>=!~" else f"=={part}")
    return ",".join(out) or None


def _pylock(path: Path, root: Path | None, extras: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> LockedApp:
    """PEP 751's pylock.toml: each package with its marker, its files' hashes and its index; its
    `extras` and `dependency-groups` markers settled by what the app installs (its default groups
    and `groups`, and `extras`)."""
    text = _text(path, root)
    return _pylock_from(path, text, _line_of(text), extras, groups)


def _pylock_from(path: Path, text: str, at: dict[str, int], extras: tuple[str, ...] = (),
                 groups: tuple[str, ...] = ()) -> LockedApp:
    """A PEP 751 lock's text (packaging's reader checks it) as requirements; `at` names the line of
    each package in the file the user wrote (errors point there)."""
    import tomllib

    from packaging.pylock import PylockValidationError

    from airgap_mirror.resolve.pins import read_pylock

    try:  # (read once: the sync's file selection reads the same bytes, and a large lock is 50 ms)
        lock = read_pylock(text.encode("utf-8"))
    except (PylockValidationError, tomllib.TOMLDecodeError) as exc:
        raise RequirementsError(path, 0, f"not a valid lock: {exc}", "regenerate it (`pip lock`, `uv lock`)") from exc
    _unknown(path, "extra", extras, set(lock.extras or ()), "[apps.extras]")
    _unknown(path, "group", groups, set(lock.dependency_groups or ()), "[apps.groups]")
    installed_groups = (*(lock.default_groups or ()), *groups)
    entries, indexes = [], []
    for pkg in lock.packages:
        marker = chosen_markers(str(pkg.marker), extras, installed_groups) if pkg.marker else ""
        tail = f" ; {marker}" if marker else ""
        line = at.get(canonicalize_name(pkg.name), 1)
        if pkg.vcs is not None:
            ref = pkg.vcs.commit_id or pkg.vcs.requested_revision
            req = f"{pkg.name} @ git+{pkg.vcs.url}" + (f"@{ref}" if ref else "") + tail
        elif pkg.directory is not None:
            req = ("-e " if pkg.directory.editable else "") + pkg.directory.path
        elif pkg.archive is not None and pkg.archive.url:
            req = f"{pkg.name} @ {pkg.archive.url}{tail}"
        else:
            hashes = [f"--hash=sha256:{w.hashes['sha256']}" for w in (pkg.wheels or []) if "sha256" in w.hashes]
            if pkg.sdist is not None and "sha256" in pkg.sdist.hashes:
                hashes.append(f"--hash=sha256:{pkg.sdist.hashes['sha256']}")
            if pkg.version is None:
                raise RequirementsError(path, line, f"{pkg.name} has no version", "regenerate the lock")
            req = f"{pkg.name}=={pkg.version}{tail} {' '.join(hashes)}".strip()
            if pkg.index and pkg.index not in indexes:
                indexes.append(pkg.index)
        entries.append((line, req))
    names_files = all(pkg.wheels or pkg.sdist for pkg in lock.packages)
    return LockedApp(path=path, text=_placed(entries, []), indexes=tuple(indexes),
                     requires_python=str(lock.requires_python) if lock.requires_python else None,
                     pylock=text.encode("utf-8") if names_files else None)
