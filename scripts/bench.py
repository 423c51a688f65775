"""Benchmark driver (run through scripts/bench). Each section times us and a peer on the same input."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mirror.targets import PythonTarget  # noqa: E402


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    if "SSL_CERT_FILE" in os.environ:
        env["PIP_CERT"] = os.environ["SSL_CERT_FILE"]
    return env


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), **kw)
    return time.perf_counter() - t0, proc


def bench_python(app: Path, python: str, platform: str) -> None:
    target = PythonTarget.parse(python, platform)
    work = Path(tempfile.mkdtemp(prefix="bench-py-"))
    mirror = [str(ROOT / ".venv/bin/mirror")]
    # pip download, given every platform tag the target accepts (what pip needs to be told),
    # binary only (pip cannot fetch sdists for a foreign target), no cache: a cold fetch.
    def pip_download(dest: str, platforms: list[str]) -> list[str]:
        cmd = [sys.executable, "-m", "pip", "download", "--isolated", "--no-cache-dir", "--disable-pip-version-check",
               "--index-url", "https://pypi.org/simple", "--only-binary=:all:", "--python-version", python,
               "--implementation", "cp", "-d", str(work / dest), "-r", str(app / "requirements.txt")]
        for tag in platforms:
            cmd += ["--platform", tag]
        return cmd

    t_pip, p = timed(pip_download("pip-dl", target.platform_tags()))
    pip_ok = p.returncode == 0
    _, pl = timed(pip_download("pip-dl-literal", [platform]))
    store = work / "store"
    sync = mirror + ["sync", str(app), "--store", str(store), "--python", python, "--platform", platform, "--json"]
    t_cold, c = timed(sync)
    t_noop, n = timed(sync)
    n_files = len(list((work / "pip-dl").glob("*"))) if pip_ok else 0
    print(f"\n== Python: cold sync of {app.name} for {target.id}")
    print(f"pip download (all {len(target.platform_tags())} platform tags given): {t_pip:7.2f} s  "
          f"{'ok, ' + str(n_files) + ' files' if pip_ok else 'FAILED: ' + p.stderr.strip().splitlines()[-1][:120]}")
    print(f"pip download --platform {platform} (literal)         : "
          f"{'ok' if pl.returncode == 0 else 'FAILED: ' + (pl.stderr.strip().splitlines() or [''])[-1][:100]}")
    print(f"mirror sync (cold, empty store and resolver cache):   {t_cold:7.2f} s  {'ok' if c.returncode == 0 else 'FAILED ' + c.stderr[-300:]}")
    print(f"mirror sync (no-op resync):                           {t_noop:7.2f} s  {'ok' if n.returncode == 0 else 'FAILED'}")
    if pip_ok:
        print(f"ratio pip download / mirror cold sync:  {t_pip / t_cold:5.2f}x  (aim >= 3x)")
    print(f"ratio no-op resync / cold sync:         {100 * t_noop / t_cold:5.1f}%  (aim < 10%)")
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sections", nargs="*", default=["python"], help="python")
    ap.add_argument("--app", type=Path, default=ROOT / "examples" / "dash-app")
    ap.add_argument("--python", default="3.11")
    ap.add_argument("--platform", default="manylinux_2_28_x86_64")
    args = ap.parse_args()
    if "python" in args.sections:
        bench_python(args.app, args.python, args.platform)


if __name__ == "__main__":
    main()
