"""nginx serving a published tree with scripts/nginx.conf, on 127.0.0.1 (for tests and scripts/bench).

The binary is the system's, else Debian's package unpacked under .tools/ by scripts/_setup.sh.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port free on 127.0.0.1 now (a server started right after binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(url: str, proc: subprocess.Popen, what: str, *, tries: int = 100) -> None:
    """Return once `url` answers; raise RuntimeError if `proc` exits first or it never does."""
    for _ in range(tries):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer at {url}")


def wait_until_listening(port: int, proc: subprocess.Popen, what: str, *, tries: int = 100) -> None:
    for _ in range(tries):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port}")


def nginx_binary() -> tuple[Path, Path] | None:
    """(nginx, mime.types), or None when neither the system nor .tools/ has them."""
    found = shutil.which("nginx")
    if found and Path("/etc/nginx/mime.types").is_file():
        return Path(found), Path("/etc/nginx/mime.types")
    tools = ROOT / ".tools" / "nginx"
    if (tools / "usr/sbin/nginx").is_file():
        return tools / "usr/sbin/nginx", tools / "etc/nginx/mime.types"
    return None


class Nginx:
    """scripts/nginx.conf with its listen, root and paths pointed at a test's folders."""

    def __init__(self, published: Path | None, work: Path, *, tls: tuple[Path, Path] | None = None,
                 htpasswd: Path | None = None, bucket: tuple[str, str] | None = None) -> None:
        """`bucket`: (host:port, /BUCKET/PREFIX) of an S3 endpoint to front with scripts/nginx-bucket.conf
        instead of serving `published` with scripts/nginx.conf."""
        found = nginx_binary()
        if found is None:
            raise RuntimeError("nginx is missing: scripts/_setup.sh unpacks it into .tools/nginx")
        binary, mime = found
        work.mkdir(parents=True, exist_ok=True)
        port = free_port()
        conf = (ROOT / "scripts" / ("nginx-bucket.conf" if bucket else "nginx.conf")).read_text()
        if bucket is not None:
            conf = conf.replace("server 127.0.0.1:8333;", f"server {bucket[0]};")
            conf = conf.replace("set $prefix /BUCKET/PREFIX;", f"set $prefix {bucket[1]};")
            conf = conf.replace("proxy_cache_path /var/cache/airgap-mirror", f"proxy_cache_path {work}/cache")
        if tls is not None:  # the config's own TLS lines, switched on
            conf = conf.replace("        listen 8080;\n", "").replace("#tls ", "")
            conf = conf.replace("listen 8443 ssl;", f"listen 127.0.0.1:{port} ssl;")
            conf = conf.replace("/etc/airgap-mirror/tls/fullchain.pem", str(tls[0])).replace("/etc/airgap-mirror/tls/key.pem", str(tls[1]))
        if htpasswd is not None:
            conf = conf.replace("#auth ", "").replace("/etc/airgap-mirror/htpasswd", str(htpasswd))
        conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        if published is not None:
            conf = conf.replace("root /srv/mirror-store/published/current;", f"root {published / 'current'};")
        conf = conf.replace("include /etc/nginx/mime.types;", f"include {mime};")
        # Started as root, nginx's workers would drop to nobody, who cannot read a test's private folders.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = conf.replace("events {}", f"{user}worker_processes {os.cpu_count() or 2};\npid {work}/nginx.pid;\nevents {{}}")
        temps = "".join(f"\n    {kind}_temp_path {work}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = conf.replace("http {", "http {\n    access_log off;" + temps)
        (work / "nginx.conf").write_text(conf)
        self.proc = subprocess.Popen([str(binary), "-c", str(work / "nginx.conf"), "-p", str(work),
                                      "-e", str(work / "error.log"), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.base = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.simple = self.base + "/simple/"
        self.error_log = work / "error.log"
        try:
            if tls is None and htpasswd is None:
                wait_until_serving(self.simple, self.proc, "nginx")
            else:
                wait_until_listening(port, self.proc, "nginx")
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}: {self.error_log.read_text()[-500:] if self.error_log.is_file() else ''}") from exc

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
