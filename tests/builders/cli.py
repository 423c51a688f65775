"""Running the tool and real clients in tests: `mirror` in a subprocess, `mirror serve` on a free
port, a fresh virtualenv, and what an installed fixture app reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.builders.upstreams import clean_env

MIRROR = [sys.executable, "-m", "airgap_mirror.cli"]


def run_mirror(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*MIRROR, *args], capture_output=True, text=True, env=clean_env(), **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"mirror {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


class Served:
    """`mirror serve` (a subprocess, with any of its flags) on a free port, stopped by the test."""

    def __init__(self, store: Path, *args: str) -> None:
        self.proc = subprocess.Popen([*MIRROR, "serve", "--store", str(store), "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env())
        line = self.proc.stdout.readline()
        if "serving" not in line:
            self.proc.kill()
            raise AssertionError(f"mirror serve did not start: {line}{self.proc.communicate(timeout=10)[1][-2000:]}")
        self.base = line.split(" at ")[1].strip().removesuffix("/simple/")
        self.simple = self.base + "/simple/"

    def with_user(self, user: str, password: str) -> str:
        scheme, rest = self.simple.split("://")
        return f"{scheme}://{user}:{password}@{rest}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def make_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env())
    return venv


def check_installed(venv: Path) -> dict:
    code = ("import json, alpha, beta, gamma, delta;"
            "print(json.dumps({'beta': beta.__version__, 'gamma': gamma.TAG, 'delta': delta.BUILT_FROM}))")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True,
                         env=clean_env())
    return json.loads(out.stdout)
