"""Run inside `unshare --net --mount` by tests/e2e/test_network_lock_tools_inside.py (root): the
mirror of real lock apps served under pypi.org's and files.pythonhosted.org's names (a throwaway CA),
and each app installed with its own tool, unchanged, in a Debian sid root with Debian's Python 3.14
(chroot, its own /etc/hosts): `uv sync --locked --no-default-groups`, `poetry sync --only main`,
`pipenv install --deploy`. Prints what each installed as JSON on its last line.

argv: work folder, store, sid root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.builders.tls import ca_and_cert

NAMES = ("pypi.org", "files.pythonhosted.org")
_LIST = ("import importlib.metadata as m, json; "
         "print(json.dumps({d.metadata['Name'].lower(): d.version for d in m.distributions()}))")


def inside(root: Path, script: str, **env: str) -> str:
    """`sh -c script` in the chroot, with /proc mounted (in this mount namespace only)."""
    base = {"PATH": "/opt/tools/bin:/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LC_ALL": "C.UTF-8",
            "SSL_CERT_FILE": "/etc/airgap-ca.pem", "REQUESTS_CA_BUNDLE": "/etc/airgap-ca.pem",
            "PIP_CERT": "/etc/airgap-ca.pem", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CONFIG_FILE": "/dev/null"}
    proc = subprocess.run([shutil.which("chroot") or "/usr/sbin/chroot", str(root), "sh", "-c", script], capture_output=True, text=True,
                          env={**base, **env}, timeout=900)
    if proc.returncode != 0:
        raise SystemExit(f"{script} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc.stdout


def main() -> None:
    work, store, root = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    (root / "etc/hosts").write_text("127.0.0.1 localhost " + " ".join(NAMES) + "\n")
    ca, cert, key = ca_and_cert(work / "tls", NAMES)
    shutil.copyfile(ca, root / "etc/airgap-ca.pem")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_", "VIRTUAL_ENV"))}
    serve = subprocess.Popen([sys.executable, "-m", "airgap_mirror.cli", "serve", "--store", str(store), "--host",
                              "127.0.0.1", "--port", "443", "--tls-cert", str(cert), "--tls-key", str(key)],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict[str, object] = {}
    try:
        line = serve.stdout.readline()  # type: ignore[union-attr]
        assert "serving" in line, line + serve.stderr.read()  # type: ignore[union-attr]
        apps = root / "apps"
        before = {p: p.read_bytes() for p in apps.glob("*/*.lock")}
        inside(root, "cd /apps/uv_basic && uv sync --locked --no-default-groups",
               UV_PYTHON="/usr/bin/python3.14", UV_PYTHON_DOWNLOADS="never", UV_NO_CONFIG="1", UV_CACHE_DIR="/tmp/uv")
        seen["uv"] = json.loads(inside(root, f"/apps/uv_basic/.venv/bin/python -c \"{_LIST}\""))
        inside(root, "cd /apps/poetry_basic && poetry env use /usr/bin/python3.14 >/dev/null && poetry sync --only main",
               POETRY_VIRTUALENVS_IN_PROJECT="true", POETRY_NO_INTERACTION="1", POETRY_CACHE_DIR="/tmp/poetry")
        seen["poetry"] = json.loads(inside(root, f"/apps/poetry_basic/.venv/bin/python -c \"{_LIST}\""))
        inside(root, "cd /apps/pipenv_basic && pipenv --python /usr/bin/python3.14 install --deploy",
               PIPENV_VENV_IN_PROJECT="1", PIPENV_NOSPIN="1", PIPENV_YES="1", PIPENV_CACHE_DIR="/tmp/pipenv",
               PIPENV_IGNORE_VIRTUALENVS="1", PIPENV_VERBOSITY="-1")
        seen["pipenv"] = json.loads(inside(root, f"/apps/pipenv_basic/.venv/bin/python -c \"{_LIST}\""))
        seen["python"] = inside(root, "/apps/uv_basic/.venv/bin/python -c 'import sys; print(sys.version.split()[0])'").strip()
        seen["locks_unchanged"] = all(p.read_bytes() == data for p, data in before.items()) and len(before) == 3
    finally:
        serve.terminate()
        serve.wait(timeout=10)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
