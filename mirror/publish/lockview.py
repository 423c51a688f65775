"""What an app installs from inside the gap: its lock for one target, and advice on its own files."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path

from airgap_mirror.apps import load_app
from airgap_mirror.apps.spec import AppRules
from airgap_mirror.errors import InputError, MirrorError
from airgap_mirror.resolve.targets import parse_python_version
from airgap_mirror.store import Store
from airgap_mirror.store.model import AppEntry, AppTarget, TargetEntry
from airgap_mirror.store.snapshots import Snapshot

__all__ = ["choose_target", "app_advice"]


def _app_entry(snap: Snapshot, app_dir: Path) -> tuple[str, AppEntry]:
    name = Path(app_dir).resolve().name
    apps = snap.apps
    if name not in apps:
        known = ", ".join(sorted(apps)) or "none"
        raise InputError(f"app {name!r} is not in the snapshot (apps there: {known}): run `mirror sync {app_dir}` first")
    return name, apps[name]


def choose_target(snap: Snapshot, app_dir: Path, python: str | None, platform: str | None
                  ) -> tuple[str, AppTarget]:
    """The app's (target id, its part for that target) for --python / --platform, or its only target."""
    name, entry = _app_entry(snap, app_dir)
    targets = entry.targets
    if not targets:
        raise InputError(f"app {name!r} has no Python targets in the snapshot (nothing to lock)")
    chosen = dict(targets)
    if python:
        major, minor = parse_python_version(python)[:2]
        prefix = f"cp{major}{minor}-"
        chosen = {t: e for t, e in chosen.items() if t.startswith(prefix)}
    if platform:
        plat = platform.replace("-", "_").replace(".", "_")
        chosen = {t: e for t, e in chosen.items() if t.split("-", 1)[1] == plat}
    if len(chosen) != 1:
        which = "matches" if not chosen else "is chosen"
        raise InputError(f"app {name!r}: no single target {which} (its targets: {', '.join(sorted(targets))}); "
                         "name one with --python X.Y and --platform TAG")
    tid = next(iter(chosen))
    return tid, chosen[tid]


def lock_command(lock: str, extras: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> str:
    """The command the platform installs a lock app with, and with its chosen extras and groups."""
    q = shlex.quote
    if lock == "uv.lock":
        return " ".join(["uv sync --locked --no-default-groups", *(f"--extra {q(e)}" for e in extras),
                         *(f"--group {q(g)}" for g in groups)])
    if lock == "poetry.lock":
        return " ".join([f"poetry sync --only {q(','.join(('main', *groups)))}", *(f"-E {q(e)}" for e in extras)])
    if lock == "Pipfile.lock":
        categories = " ".join(("packages", *groups))
        return "pipenv install --deploy" + (f" --categories {q(categories)}" if groups else "")
    if lock == "pylock.toml":
        target = q(f"pylock.toml[{','.join(extras)}]") if extras else "pylock.toml"
        return " ".join([f"pip install -r {target}", *(f"--group {q('pylock.toml:' + g)}" for g in groups),
                         "  # pip >= 26.1"])
    return lock


def _lock_advice(name: str, lock: str, base: str, extras: tuple[str, ...] = (), groups: tuple[str, ...] = ()) -> str:
    """How a lock app installs inside with its own tool and its lock unchanged: the mirror answers
    under the names the lock records (pypi.org, files.pythonhosted.org)."""
    host = base.split("://", 1)[-1].split("/", 1)[0]
    out = [f"# {name}: installed from {lock} by its own tool, the lock unchanged.",
           "# The lock names pypi.org and files.pythonhosted.org; the mirror answers under those names",
           "# (the simple API, PyPI's JSON API for Poetry, and each file at its files.pythonhosted.org path):",
           f"#   1. DNS inside the gap: pypi.org and files.pythonhosted.org resolve to the mirror ({host}),",
           "#      e.g. /etc/hosts on the build machine:  MIRROR-IP pypi.org files.pythonhosted.org",
           "#   2. TLS: the mirror's certificate (mirror serve --tls-cert) names both hosts, from your CA;",
           "#      the build machine trusts that CA: SSL_CERT_FILE=/path/ca.pem (uv, pip), REQUESTS_CA_BUNDLE (Poetry, pipenv)",
           "#   3. then, as the platform runs it:",
           lock_command(lock, extras, groups)]
    if lock == "Pipfile.lock":
        out += ["# Without DNS: pipenv rewrites pypi.org to a mirror given in the environment:",
                f"#   PIPENV_PYPI_MIRROR={base}/simple {lock_command(lock, extras, groups)}"]
    if lock == "pylock.toml":
        out += ["# Without DNS: the mirror publishes each app's lock pointed at itself, hashes unchanged:",
                f"#   pip install -r {base}/locks/{name}/TARGET/pylock.toml"]
    return "\n".join(out)


def app_advice(store: Store, app_dir: Path, url: str, *, extra_files: tuple[str, ...] = (),
               extras: Mapping[str, tuple[str, ...]] | None = None, groups: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """What to change in an app so it installs from the mirror alone, line by line (`extras` and
    `groups`: mirror.toml's [apps.extras] and [apps.groups], by app name)."""
    base = url.rstrip("/").removesuffix("/simple")
    simple = f"{base}/simple/"
    try:
        app = load_app(app_dir, extra_files, rules=AppRules(extras=extras or {}, groups=groups or {}))
    except MirrorError as exc:
        raise InputError(f"cannot read the app: {exc}") from exc
    current = store.ref("current")
    entry = AppEntry()
    targets: dict[str, TargetEntry] = {}
    if current:
        try:
            snap = store.snapshot(current)
            _, entry = _app_entry(snap, app_dir)
            targets = {tid: snap.targets.get(tid) or TargetEntry(id=tid) for tid in entry.targets}
        except InputError:
            entry = AppEntry()
    if app.locked:
        return _lock_advice(app.name, app.package_manager or "", base, app.extras, app.groups)
    mirrored = {d.line: d for d in entry.direct}
    out = [f"# {app.name}: installing from the mirror at {simple}",
           "# The one line to set where the app is installed (pip reads it; requirements files stay as they are):",
           f"export PIP_INDEX_URL={simple}"]
    if base.startswith("http://"):
        host = base.split("://", 1)[1].split("/", 1)[0].split(":")[0]
        out.append(f"export PIP_TRUSTED_HOST={host}")
    notes: list[str] = []
    o = app.options
    for u in (*([o.index_url] if o.index_url else []), *o.extra_index_urls):
        notes.append(f"{o.origin(u) or app.name}: an index the gap cannot reach; pip warns about it and goes on with "
                     "PIP_INDEX_URL, whose mirror holds every package the sync took from it. To silence the warning, "
                     "remove the line (or install from `mirror lock`).")
    for link in o.find_links:
        if "://" in link:
            notes.append(f"{o.origin(link) or app.name}: --find-links {link} is unreachable inside; its packages are on "
                         "the mirror, so remove the line or install from `mirror lock`.")
    for line in app.requirements:
        ref = line.direct
        if ref is None:
            continue
        key = f"{Path(line.source).name}:{line.lineno}"
        got = mirrored.get(key)
        pin = f"{got.project}=={got.version}" if got else "NAME==VERSION (sync the app first)"
        if ref.kind == "path" and not ref.url.startswith("/"):
            notes.append(f"{line.where}: {ref.display} is in the app folder; pip installs it from there unchanged "
                         f"(its dependencies come from the mirror). Nothing to change.")
        elif ref.kind == "path":
            notes.append(f"{line.where}: {ref.display} is an absolute path outside the app; replace the line with "
                         f"`{pin}` (the mirror serves it), or install from `mirror lock`.")
        else:
            notes.append(f"{line.where}: {ref.display} cannot be fetched inside the gap; replace the line with "
                         f"`{pin}` (the mirror serves it), or install from `mirror lock`"
                         + (f" ({got.origin})" if got else "") + ".")
    if notes:
        out.append("#")
        out.append("# Lines to look at:")
        out.extend(f"#   {n}" for n in notes)
    else:
        out.append("# Nothing in the app needs to change.")
    out.append("#")
    out.append("# Or install exactly what was mirrored, with hashes:")
    if len(targets) > 1:  # (`mirror lock` needs the target then: one line per target, each as it works)
        for tid, t in sorted(targets.items()):
            out.append(f"#   mirror lock {app_dir} --python {t.python or '?'} --platform {t.platform or '?'}"
                       f" -o requirements-{tid}.lock")
        out.append(f"#   pip install --require-hashes -r requirements-TARGET.lock --index-url {simple}")
    else:
        out.append(f"#   mirror lock {app_dir} -o requirements.lock")
        out.append(f"#   pip install --require-hashes -r requirements.lock --index-url {simple}")
    return "\n".join(out)
