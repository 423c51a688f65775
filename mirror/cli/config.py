"""mirror.toml: the settings a site keeps; every one can also be given as a CLI flag."""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airgap_mirror.defaults import DEFAULT_INSTALLERS, DEFAULT_PLATFORM, DEFAULT_PYTHON, PUBLIC_INDEX
from airgap_mirror.errors import ConfigError

__all__ = ["Config", "load_config", "store_root", "EXAMPLE_CONFIG", "DEFAULT_STORE"]

DEFAULT_STORE = "./mirror-store"

EXAMPLE_CONFIG = f'''# mirror.toml: settings for airgap-mirror. Every setting can also be given as a CLI flag,
# and a flag wins over this file. Paths are relative to this file.

[store]
# Where blobs, the catalog, snapshots and published trees live (MIRROR_STORE or --store override).
path = "{DEFAULT_STORE}"

[apps]
# App folders to mirror (globs allowed): each may hold requirements.txt, environment.yml, runtime.txt ...
paths = ["apps/*"]
# Requirements files read in each app besides the platform's own (requirements.txt,
# private-requirements.txt, environment.yml): say, one the app's predeploy script installs.
# requirement-files = ["requirements-predeploy.txt"]
# An app names only files inside its own folder (-r includes, local wheels and sdists); a line
# reaching outside (`-r ../shared.txt`, `/opt/wheels/x.whl`, a symlink out) is refused unless:
allow-outside = false
# The platform's rules (Heroku's Python buildpack): an app is installed from exactly one of these
# files, several is that app's error; the Python from runtime.txt, else .python-version, else
# Pipfile.lock, else [python] versions below. A platform that reads fewer files, or takes the first
# one present, says so here:
# package-managers = ["requirements.txt", "Pipfile.lock", "poetry.lock", "uv.lock", "pylock.toml"]
# package-manager-first-wins = false
# A lock app installs its main dependencies alone, as the platform runs it (`uv sync --locked
# --no-default-groups`, `poetry sync --only main`, `pipenv install --deploy`). Where the platform
# installs an app with more, name it (by app folder name) and the mirror carries that too:
# [apps.extras]        # uv sync --extra X, poetry sync -E X, a pylock.toml's extras
# dash-app = ["postgres"]
# [apps.groups]        # uv sync --group G, poetry sync --with G, pipenv --categories, a pylock.toml's groups
# dash-app = ["worker"]

[python]
# The machines inside the gap, never this one: every version x every platform is a target.
# An app's runtime.txt (python-3.10.x) replaces `versions` for that app when no --python is given.
versions = ["{DEFAULT_PYTHON}"]
# pip platform tags; the newest level named accepts all older ones (manylinux_2_28 takes manylinux2014 too).
platforms = ["{DEFAULT_PLATFORM}"]
# The upstream index (an app's own --index-url replaces it for that app). Private indexes take
# credentials from the environment only: "https://${{USER}}:${{TOKEN}}@pkgs.example.com/simple".
index-url = "{PUBLIC_INDEX}"
extra-index-urls = []
# Take the index from PIP_INDEX_URL / PIP_EXTRA_INDEX_URL when set (as pip on this machine would).
pip-env = false
# A project from a private index whose name the public index also has, with other files, fails
# the app instead of warning (dependency confusion).
strict = false
# A release-age cooldown: resolve as if nothing uploaded in this window existed (a hijacked release
# is usually caught within days). A lock's pins are kept, and warned of. Per app: [apps.exclude-newer].
# exclude-newer = "7 days"
# A target that would get only the sdist of a package with compiled code (built inside the gap,
# with a compiler there) is warned of. prefer-binary: take the newest version with a wheel for the
# target instead; only-binary: projects (or ":all:") that must come as wheels, failing otherwise.
# An app's requirements.txt may say the same with --prefer-binary / --only-binary lines.
prefer-binary = false
only-binary = []
# Mirrored for every target so the inside can upgrade its installers.
installers = {json.dumps(list(DEFAULT_INSTALLERS))}
# Parallel downloads, and parallel resolver processes.
concurrency = 16
resolver-jobs = 4

# Targets as explicit pairs, when not every version runs on every platform: these replace the
# versions x platforms product above (two tables, two targets). `--target 3.12:PLATFORM` on the
# command line does the same.
# [[targets]]
# python = "3.12"
# platform = "manylinux2014_aarch64"
# [[targets]]
# python = "3.10"
# platform = "manylinux_2_28_x86_64"

[apt]
# Aptfile / packages.txt targets: every distro x every architecture.
distros = ["bookworm"]
architectures = ["amd64"]
with-recommends = false
# What the target machines already have. "required": a lower bound of any minimal system of the
# suite (its required packages and what they depend on with no alternative), so nothing a target
# can lack is left out. "none": mirror the complete closure. Most precise: the path of the target
# image's dpkg status file, taken with `docker run --rm IMAGE cat /var/lib/dpkg/status > status`.
base = "required"
# The base's updates: the newer versions the updates and security suites have of the target's base
# packages are mirrored too (about 17 MB for bookworm amd64), so `apt-get upgrade` patches an image
# inside from the mirror alone.
patch-base = true
# Upstream archives ({{distro}} is replaced); keyrings verify their InRelease files.
[[apt.sources]]
url = "http://deb.debian.org/debian"
suites = ["{{distro}}", "{{distro}}-updates"]
components = ["main"]
keyrings = ["/usr/share/keyrings/debian-archive-keyring.gpg"]
[[apt.sources]]
url = "http://deb.debian.org/debian-security"
suites = ["{{distro}}-security"]
components = ["main"]
keyrings = ["/usr/share/keyrings/debian-archive-keyring.gpg"]

[publish]
# Object storage the published tree is also uploaded to, after every publish (and import inside):
# endpoint, region and credentials come from AWS_* variables or ~/.aws (never from this file).
# targets = ["s3://pypi-mirror/prod"]
# grace = "1d"      # how long an object the tree no longer has stays before it is deleted

[serve]
host = "127.0.0.1"
port = 8080
# The URL clients reach the mirror at: published pylock.toml files point their files there.
# url = "https://pypi.internal.example"
# TLS (PEM; the certificate with its chain), read-only auth, and the access log (a file or "-"):
# tls-cert = "/etc/airgap-mirror/tls/fullchain.pem"
# tls-key = "/etc/airgap-mirror/tls/key.pem"
# htpasswd = "/etc/airgap-mirror/htpasswd"      # htpasswd -B (bcrypt)
# auth-failures = 20   # wrong passwords per client address per minute, then 429 (0: no limit)
# tokens = "/etc/airgap-mirror/tokens"          # NAME:TOKEN per line, sent as a Bearer token or basic password
# access-log = "/var/log/airgap-mirror/access.log"
'''


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    store: Path = Path(DEFAULT_STORE)
    apps: tuple[Path, ...] = ()
    pythons: tuple[str, ...] = ()
    platforms: tuple[str, ...] = (DEFAULT_PLATFORM,)
    # Explicit (python, platform) pairs from [[targets]]; they replace the versions x platforms product.
    targets: tuple[tuple[str, str], ...] = ()
    index_url: str = PUBLIC_INDEX
    extra_index_urls: tuple[str, ...] = ()
    installers: tuple[str, ...] = DEFAULT_INSTALLERS
    concurrency: int = 16
    resolver_jobs: int = 4
    strict: bool = False
    only_binary: tuple[str, ...] = ()
    prefer_binary: bool = False
    pip_env: bool = False
    requirement_files: tuple[str, ...] = ()
    allow_outside: bool = False
    package_managers: tuple[str, ...] = ()
    package_manager_first_wins: bool = False
    exclude_newer: str | None = None  # the release-age cooldown (a duration or a date), as written
    app_exclude_newer: dict[str, str] = field(default_factory=dict)  # per app, as written
    app_extras: dict[str, tuple[str, ...]] = field(default_factory=dict)  # [apps.extras]: per app, its lock's extras
    app_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # [apps.groups]
    host: str = "127.0.0.1"
    port: int = 8080
    serve_url: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    htpasswd: Path | None = None
    tokens: Path | None = None
    access_log: str | None = None
    auth_failures: int = 20  # wrong passwords per client address per minute ([serve] auth-failures)
    publish_targets: tuple[str, ...] = ()
    publish_grace: str = "1d"
    source: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _list(value: Any, key: str, path: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{path}: `{key}` must be a list of strings")
    return tuple(value)


def _cooldown(value: Any, key: str, path: Path) -> str | None:
    """A cooldown as written (checked now: a typo is the config's error, not the night's)."""
    if value is None:
        return None
    from airgap_mirror.resolve.cooldown import cutoff

    if not isinstance(value, str):
        raise ConfigError(f"{path}: `{key}` must be a string such as \"7 days\"")
    cutoff(value, where=f"{path}: {key}")
    return value


def _app_cooldowns(value: Any, path: Path) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f'{path}: [apps.exclude-newer] must be a table of app = "duration", e.g. dash-app = "14 days"')
    return {str(app): str(_cooldown(v, f"apps.exclude-newer.{app}", path)) for app, v in value.items()}


def _count(value: Any, key: str, path: Path) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1_000_000:
        raise ConfigError(f"{path}: `{key}` must be a whole number from 0 to 1000000, not {str(value)[:40]}")
    return value


def _app_lists(value: Any, table: str, path: Path) -> dict[str, tuple[str, ...]]:
    """[apps.extras] / [apps.groups]: app = ["name", ...]."""
    if not isinstance(value, dict):
        raise ConfigError(f'{path}: [{table}] must be a table of app = ["name", ...], e.g. dash-app = ["worker"]')
    return {str(app): _list(names, f"{table}.{app}", path) for app, names in value.items()}


def _target_tables(value: Any, path: Path) -> tuple[tuple[str, str], ...]:
    from airgap_mirror.resolve.targets import parse_target_pair

    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"{path}: `targets` must be [[targets]] tables with python = \"3.12\" and platform = \"...\"")
    out = []
    for i, t in enumerate(value, 1):
        if not isinstance(t.get("python"), str) or not isinstance(t.get("platform"), str):
            raise ConfigError(f"{path}: [[targets]] table {i} needs python = \"3.12\" and platform = \"manylinux_2_28_x86_64\"")
        out.append(parse_target_pair(f"{t['python']}:{t['platform']}"))
    return tuple(dict.fromkeys(out))


def store_root(store: Path | None, config: Path | None = None) -> Path:
    """The store a command works on: --store, else MIRROR_STORE, else mirror.toml's [store] path
    (the named one, or ./mirror.toml when present), else ./mirror-store."""
    return store or load_config(config).store


def load_config(path: Path | None) -> Config:
    """Read mirror.toml (or ./mirror.toml if present); defaults when there is none."""
    if path is None:
        candidate = Path("mirror.toml")
        if not candidate.is_file():
            env_store = os.environ.get("MIRROR_STORE")
            return Config(store=Path(env_store)) if env_store else Config()
        path = candidate
    import tomllib  # (loaded here: most runs have no mirror.toml)
    try:
        if Path(path).stat().st_size > _MAX_CONFIG:
            raise ConfigError(f"{path}: over {_MAX_CONFIG // 1024} KiB: not a mirror.toml (`mirror init` writes one)")
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist (create one with `mirror init`)") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except RecursionError as exc:  # tomllib recurses into nested arrays and tables
        raise ConfigError(f"{path}: nested too deep to be a mirror.toml") from exc
    base = Path(path).parent

    def table(name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: `{name}` must be a table ([{name}]), not {type(value).__name__}")
        return value

    store_t, apps_t, py_t, serve_t, publish_t = (table(n) for n in ("store", "apps", "python", "serve", "publish"))
    for key, t in (("store.path", store_t.get("path")), ("serve.host", serve_t.get("host"))):
        if t is not None and not isinstance(t, str):
            raise ConfigError(f"{path}: `{key}` must be a string, not {type(t).__name__} ({str(t)[:40]})")
    port = serve_t.get("port", 8080)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"{path}: `serve.port` must be a port number from 0 to 65535, not {str(port)[:40]}")
    apps: list[Path] = []
    for pattern in _list(apps_t.get("paths", []), "apps.paths", path):
        matches = sorted(glob.glob(str(base / pattern)))
        apps.extend(Path(m) for m in matches if Path(m).is_dir())
    store = os.environ.get("MIRROR_STORE") or str(base / store_t.get("path", DEFAULT_STORE))
    try:
        return Config(
            store=Path(store),
            apps=tuple(apps),
            pythons=_list(py_t.get("versions", []), "python.versions", path),
            platforms=_list(py_t.get("platforms", [DEFAULT_PLATFORM]), "python.platforms", path),
            targets=_target_tables(data.get("targets", []), path),
            index_url=str(py_t.get("index-url", PUBLIC_INDEX)),
            extra_index_urls=_list(py_t.get("extra-index-urls", []), "python.extra-index-urls", path),
            installers=_list(py_t.get("installers", list(DEFAULT_INSTALLERS)), "python.installers", path),
            concurrency=int(py_t.get("concurrency", 16)),
            resolver_jobs=int(py_t.get("resolver-jobs", 4)),
            strict=bool(py_t.get("strict", False)),
            only_binary=_list(py_t.get("only-binary", []), "python.only-binary", path),
            prefer_binary=bool(py_t.get("prefer-binary", False)),
            pip_env=bool(py_t.get("pip-env", False)),
            requirement_files=_list(apps_t.get("requirement-files", []), "apps.requirement-files", path),
            allow_outside=bool(apps_t.get("allow-outside", False)),
            package_managers=_managers(apps_t.get("package-managers", []), path),
            package_manager_first_wins=bool(apps_t.get("package-manager-first-wins", False)),
            exclude_newer=_cooldown(py_t.get("exclude-newer"), "python.exclude-newer", path),
            app_exclude_newer=_app_cooldowns(apps_t.get("exclude-newer", {}), path),
            app_extras=_app_lists(apps_t.get("extras", {}), "apps.extras", path),
            app_groups=_app_lists(apps_t.get("groups", {}), "apps.groups", path),
            host=str(serve_t.get("host", "127.0.0.1")),
            port=port,
            serve_url=str(serve_t["url"]) if serve_t.get("url") else None,
            tls_cert=base / serve_t["tls-cert"] if serve_t.get("tls-cert") else None,
            tls_key=base / serve_t["tls-key"] if serve_t.get("tls-key") else None,
            htpasswd=base / serve_t["htpasswd"] if serve_t.get("htpasswd") else None,
            tokens=base / serve_t["tokens"] if serve_t.get("tokens") else None,
            access_log=str(serve_t["access-log"]) if serve_t.get("access-log") else None,
            auth_failures=_count(serve_t.get("auth-failures", 20), "serve.auth-failures", path),
            publish_targets=_list(publish_t.get("targets", []), "publish.targets", path),
            publish_grace=str(publish_t.get("grace", "1d")),
            source=Path(path),
            extra={k: v for k, v in data.items() if k not in ("store", "apps", "python", "serve", "targets", "publish")},
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc


_MAX_CONFIG = 1 << 20  # a mirror.toml is a few KiB


def _managers(value: object, path: Path) -> tuple[str, ...]:
    from airgap_mirror.apps.locks import MANAGER_FILES

    names = _list(value, "apps.package-managers", path)
    unknown = [n for n in names if n not in MANAGER_FILES]
    if unknown:
        raise ConfigError(f"{path}: [apps] package-managers: {', '.join(unknown)} is not a package-manager file "
                          f"(known: {', '.join(MANAGER_FILES)})")
    return tuple(names)
