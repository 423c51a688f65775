"""Sync every corpus app, publish, and install each app's lock from our index alone; compare with online.

For each app with Python requirements, one line: `ok`, or the reason, with the failure class:
  app's own      it does not install online either (straight from PyPI, same target, same client),
                 or its Aptfile names what the suite lacks
  unreachable    it names a source this machine cannot reach (GitHub, a private host)
  online timed out  neither install finished within --timeout (source builds)
  not run        no CPython of the app's version on this machine
  sync           the sync failed but the app installs online (our bug)
  mirror         it installs online but not from the mirror (our bug: counted against fidelity)
Fidelity = apps installing from our index alone / apps installing online (leaving out those that
fail on their own Aptfile or an unreachable host: the online reference installs their Python side only).

Both installs use uv (`uv pip install` into a fresh virtualenv, no config, no cache shared with
the sync), so the comparison is client-for-client; the mirror install is `--require-hashes` from
`mirror lock` with our index as the only index.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airgap_mirror.apps import REQUIREMENT_FILES  # noqa: E402

# What the corpus's Dash Enterprise 4 apps install from an app.json predeploy script besides an empty
# requirements.txt (the scripts are not in the corpus; the file names say it): read by the sync
# (--requirements-file) and by the online reference alike.
EXTRA_FILES = ("requirements-predeploy.txt", "requirements-real.txt")
from airgap_mirror.resolve import clean_env, uv_binary  # noqa: E402
from tests.builders.cli import Served  # noqa: E402  (mirror serve on a free port, as the tests start it)

MIRROR = [sys.executable, "-m", "airgap_mirror.cli"]
PLATFORM = "manylinux_2_28_x86_64"
UNREACHABLE = re.compile(r"github\.com|gitlab|bitbucket|dash-playground|Could not resolve host|"
                         r"Failed to connect|Connection refused|ConnectError|dns error|Network is unreachable|"
                         r"git@|/usr/src/app", re.I)
# Debian package names the suite does not have: the app's own, whatever its Python side does.
APT_NAME = re.compile(r"\((?:Aptfile|packages\.txt|apt\.txt):\d+\) → ")


def _env() -> dict[str, str]:
    env = clean_env()
    env.pop("UV_CACHE_DIR", None)
    return env


def _tail(text: str, n: int = 300) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    keep = [x for x in lines if re.search(r"error|fail|no matching|not found|cannot|unable", x, re.I)] or lines
    return " | ".join(keep[-3:])[-n:]


def python_apps(apps_dir: Path, exclude: re.Pattern[str] | None, only: re.Pattern[str] | None) -> list[Path]:
    out = []
    for app in sorted(p for p in apps_dir.iterdir() if p.is_dir()):
        if only and not only.search(app.name):
            continue
        if exclude and (exclude.search(app.name) or any(
                exclude.search(f.read_text(errors="replace")) for f in app.glob("*requirements*.txt"))):
            continue
        if any((app / n).is_file() for n in (*REQUIREMENT_FILES, *EXTRA_FILES, "environment.yml")):
            out.append(app)
    return out


def sync(store: Path, apps: list[Path], python: str, log: Path) -> dict:
    """Sync `apps` for `python` ("runtime": each app's runtime.txt, else the default)."""
    t0 = time.monotonic()
    extra = [a for name in EXTRA_FILES for a in ("--requirements-file", name)]
    py = [] if python == "runtime" else ["--python", python]
    # --no-conda: the corpus is compared on its pip side; conda channels are not reachable from the build machine.
    proc = subprocess.run([*MIRROR, "sync", *map(str, apps), "--no-conda", "--store", str(store), *py,
                           "--platform", PLATFORM, *extra, "--json"], capture_output=True, text=True, env=_env())
    log.write_text(proc.stderr)
    summary = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {"apps": [], "error": proc.stderr[-2000:]}
    summary["seconds"] = time.monotonic() - t0
    if summary.get("snapshot"):
        subprocess.run([*MIRROR, "publish", "--store", str(store)], capture_output=True, text=True, env=_env(), check=True)
    return summary


def _runtime_python(app: Path) -> str:
    from airgap_mirror.apps import load_app
    from airgap_mirror.resolve.targets import DEFAULT_PYTHON

    try:
        found = load_app(app, EXTRA_FILES).python
    except Exception:  # noqa: BLE001  (a bad app fails in the sync, with its message)
        found = None
    return ".".join((found or DEFAULT_PYTHON).split(".")[:2])


def _interpreter(python: str) -> str:
    """A CPython X.Y here: pyenv's builds by path (its shims answer only for the active version)."""
    import glob

    found = sorted(glob.glob(str(Path.home() / f".pyenv/versions/{python}.*/bin/python{python}")))
    return found[-1] if found else python


CLIENT = "uv"  # --client: "uv", or "pip": the pip the target's CPython bundles (ensurepip)


def _install(venv: Path, args: list[str], cwd: Path, timeout: int, python: str) -> tuple[bool, str]:
    """uv pip install (or the bundled pip's install) into a fresh venv of CPython `python` (X.Y)."""
    if CLIENT == "pip":
        made = subprocess.run([_interpreter(python), "-m", "venv", str(venv)], capture_output=True, text=True, env=_env())
        cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "--isolated", "--no-cache-dir",
               "--disable-pip-version-check", *args]
    else:
        made = subprocess.run([uv_binary(), "venv", "-q", "--no-config", "--python", _interpreter(python), str(venv)],
                              capture_output=True, text=True, env=_env())
        cmd = [uv_binary(), "pip", "install", "--no-config", "--python", str(venv / "bin" / "python"), *args]
    if made.returncode != 0:
        return False, f"no CPython {python} here: {_tail(made.stderr)}"
    env = _env()
    env["UV_CACHE_DIR"] = str(venv.parent / "uv-cache")
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout} s"
    ok = proc.returncode == 0
    shutil.rmtree(venv, ignore_errors=True)
    return ok, "" if ok else _tail(proc.stderr)


def online(app: Path, work: Path, timeout: int, python: str) -> tuple[bool, str]:
    """The reference: the app's own requirements, straight from PyPI (and whatever they name)."""
    args = []
    for name in (*REQUIREMENT_FILES, *EXTRA_FILES):
        if (app / name).is_file():
            args += ["-r", name]
    if not args:
        return False, "no requirements file (environment.yml only): not compared"
    return _install(work / f"online-{app.name}", [*args, "--index-url", "https://pypi.org/simple"], app, timeout, python)


def from_mirror(app: Path, store: Path, served: Served, python: str, work: Path, timeout: int) -> tuple[bool, str]:
    lock = work / f"{app.name}.lock"
    proc = subprocess.run([*MIRROR, "lock", str(app), "--store", str(store), "--python", python, "-o", str(lock)],
                          capture_output=True, text=True, env=_env())
    if proc.returncode != 0:
        return False, "no lock: " + _tail(proc.stderr)
    return _install(work / f"mirror-{app.name}", ["--require-hashes", "-r", str(lock), "--index-url", served.simple],
                    work, timeout, ".".join(python.split(".")[:2]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--apps", type=Path, default=ROOT.parent / "shared" / "corpus" / "apps")
    ap.add_argument("--work", type=Path, default=Path("/tmp/corpus-run"))
    ap.add_argument("--python", default="3.11", help="target Python X.Y, or 'runtime': each app's runtime.txt "
                    "(3.11 without one), as its platform would")
    ap.add_argument("--fallback-python", default="3.8", help="re-sync apps that fail for --python with this one")
    ap.add_argument("--exclude", default=None, help="regex: skip apps whose name or requirements match (e.g. torch)")
    ap.add_argument("--only", default=None, help="regex: only apps whose name matches")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--client", choices=("uv", "pip"), default="uv",
                    help="installer for both installs: uv, or the pip each target's CPython bundles")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per install")
    args = ap.parse_args()
    global CLIENT
    CLIENT = args.client
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    apps = python_apps(args.apps, re.compile(args.exclude) if args.exclude else None,
                       re.compile(args.only) if args.only else None)
    print(f"{len(apps)} apps with Python requirements", flush=True)

    main_sum = sync(work / "store", apps, args.python, work / "sync.log")
    print(f"sync {args.python}: {main_sum['seconds']:.0f} s, files {main_sum.get('files', {})}", flush=True)
    if args.python == "runtime":
        print("targets: " + ", ".join(f"{v}: {n}" for v, n in sorted(
            collections.Counter(_runtime_python(a) for a in apps).items())), flush=True)
    result = {a["name"]: a for a in main_sum["apps"]}
    python_of = {a.name: args.python if args.python != "runtime" else _runtime_python(a) for a in apps}
    retry = [a for a in apps if a.name in result and not result[a.name]["ok"]]
    fb_sum: dict = {"apps": []}
    fb_ok: set[str] = set()
    if retry and args.fallback_python:
        fb_sum = sync(work / f"store-{args.fallback_python}", retry, args.fallback_python, work / "sync-fallback.log")
        for a in fb_sum["apps"]:
            if a["ok"]:
                result[a["name"]] = a
                python_of[a["name"]] = args.fallback_python
                fb_ok.add(a["name"])

    served = Served(work / "store")
    served_fb = Served(work / f"store-{args.fallback_python}") if fb_sum.get("snapshot") else None
    rows: dict[str, tuple[str, str]] = {}

    def check(app: Path) -> tuple[str, str, str, bool | None]:
        """(app, class, why, installs online?) for one app."""
        r = result.get(app.name)
        py = python_of[app.name]
        if r is None or not r["ok"]:
            err = (r or {}).get("error") or "not in the sync summary"
            on_ok, on_err = online(app, work, args.timeout, py)
            cls = ("unreachable" if UNREACHABLE.search(err) else "app's own" if APT_NAME.search(err) or not on_ok
                   else "sync")
            return app.name, cls, _tail(err, 240) + (f" [online: {on_err}]" if on_ok is False and on_err else ""), on_ok
        on_ok, on_err = online(app, work, args.timeout, py)
        fallback = app.name in fb_ok
        st, srv = (work / f"store-{args.fallback_python}", served_fb) if fallback else (work / "store", served)
        m_ok, m_err = from_mirror(app, st, srv, py, work, args.timeout)
        if m_ok:
            return app.name, "ok", "" if on_ok else f"(online install fails: {on_err})", on_ok
        if not on_ok:
            cls = ("not run" if on_err.startswith("no CPython") else "online timed out" if "timed out" in on_err else
                   "unreachable" if UNREACHABLE.search(on_err) else "app's own")
            return app.name, cls, f"fails online too: {on_err}", on_ok
        return app.name, "mirror", m_err, on_ok

    online_ok = 0  # apps whose Python side installs online, and which fail for no reason of their own
    try:
        with cf.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for name, cls, why, on_ok in pool.map(check, apps):
                rows[name] = (cls, why)
                # An app's own Aptfile error or an unreachable host fails it on its platform too,
                # though the online reference (Python only) installs.
                online_ok += bool(on_ok) and cls not in ("app's own", "unreachable")
                print(f"{name:<44} {cls:<12} {why}", flush=True)
    finally:
        served.stop()
        if served_fb:
            served_fb.stop()

    # Rates. Online reference for every app the check installed online.
    classes: dict[str, int] = {}
    for cls, _ in rows.values():
        classes[cls] = classes.get(cls, 0) + 1
    ok = classes.get("ok", 0)
    print()
    print(f"apps: {len(rows)}; " + ", ".join(f"{k}: {v}" for k, v in sorted(classes.items())))
    print(f"success rate (installs from our index alone): {ok}/{len(rows)} = {ok / max(1, len(rows)):.0%}")
    ok_both = sum(1 for c, w in rows.values() if c == "ok" and not w)
    print(f"online (straight from PyPI, same target, same client; not failing on their own Aptfile or an "
          f"unreachable host): {online_ok}/{len(rows)}")
    print(f"fidelity (of the apps that install online and fail for no reason of their own, installing from our "
          f"index alone): {ok_both}/{online_ok} = "
          f"{ok_both / max(1, online_ok):.0%}")
    (work / "results.json").write_text(json.dumps({"rows": rows, "classes": classes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
