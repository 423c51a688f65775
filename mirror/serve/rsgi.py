"""The production server: granian (a Rust HTTP/1.1 and TLS server, workers in processes) calling
`App.handle` through its RSGI interface; files are sent by granian itself (pages and small files,
read once, from memory).

Each worker builds its App from the settings the parent put in the environment
(`AIRGAP_MIRROR_SERVE`, JSON, no secrets: only paths). Metrics are summed over the workers by
prometheus_client's multiprocess mode (a private folder the parent makes and removes).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["SETTINGS_ENV", "app"]

SETTINGS_ENV = "AIRGAP_MIRROR_SERVE"


class RsgiApp:
    def __init__(self) -> None:
        self._app: Any = None
        self._log: Any = None

    def _setup(self) -> Any:
        from .app import App
        from .auth import FAILURE_LIMIT, Auth

        cfg = json.loads(os.environ.get(SETTINGS_ENV, "{}"))
        auth = None
        if cfg.get("htpasswd") or cfg.get("tokens"):
            auth = Auth(Path(cfg["htpasswd"]) if cfg.get("htpasswd") else None,
                        Path(cfg["tokens"]) if cfg.get("tokens") else None,
                        failure_limit=int(cfg.get("auth_failures", FAILURE_LIMIT)))
        self._app = App(Path(cfg["published"]), auth=auth, url=cfg.get("url"), multiprocess=True)
        log = cfg.get("access_log")
        if log == "-":
            import sys

            self._log = sys.stdout
        elif log:
            self._log = open(log, "a", encoding="utf-8", buffering=1)  # noqa: SIM115  (the worker's life)
        return self._app

    def __rsgi_init__(self, loop: Any) -> None:
        _die_with_parent()
        self._setup()

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        app = self._app or self._setup()
        if scope.proto != "http":
            return
        target = scope.path + ("?" + scope.query_string if scope.query_string else "")
        headers = scope.headers  # (granian's: get with a default, `in`, names in any case)
        app.metrics.begin()
        resp: Any = None
        sent = 0
        try:
            if app.auth is None:  # (the client's address is for auth's failure limit only)
                resp = app.handle(scope.method, target, headers, scheme=scope.scheme,
                                  host=scope.authority or headers.get("host"))
            else:
                import functools

                handle = functools.partial(app.handle, scope.method, target, headers, scheme=scope.scheme,
                                           host=scope.authority or headers.get("host"),
                                           client=scope.client.rsplit(":", 1)[0] if scope.client else None)
                if (headers.get("authorization") or "")[:6].lower() == "basic ":
                    # A password may need bcrypt (tens to hundreds of ms): on a thread, never on the
                    # event loop, which every other request of this worker (/health too) waits on.
                    import asyncio

                    resp = await asyncio.get_running_loop().run_in_executor(None, handle)
                else:
                    resp = handle()
        except (OSError, RuntimeError, ValueError):  # a name too long, a symlink loop: nothing to serve
            from .app import Response

            resp = Response(404, [("Content-Type", "text/plain; charset=utf-8")], b"not found\n")
        try:
            out = [("server", "airgap-mirror"), *resp.headers]
            if scope.method == "HEAD" and (resp.file is not None or resp.body):
                out.append(("content-length", str(resp.size)))  # what a GET sends, a file's or kept bytes
                proto.response_empty(resp.status, out)
            elif resp.file is not None and resp.status in (200, 206):
                if resp.status == 206:
                    proto.response_file_range(resp.status, out, str(resp.file), resp.start, resp.start + resp.length)
                else:
                    proto.response_file(resp.status, out, str(resp.file))
                sent = resp.length
            elif resp.status == 304 or not resp.body:
                proto.response_empty(resp.status, out)
            else:
                proto.response_bytes(resp.status, out, resp.body if scope.method != "HEAD" else b"")
                sent = len(resp.body) if scope.method != "HEAD" else 0
        finally:
            app.observe(resp, sent)
        if self._log is not None:
            self._write_log(scope, headers, resp, sent)

    def _write_log(self, scope: Any, headers: Any, resp: Any, sent: int) -> None:
        from .accesslog import access_line

        client = scope.client.rsplit(":", 1)[0] if scope.client else "-"
        target = scope.path + ("?" + scope.query_string if scope.query_string else "")
        self._log.write(access_line(client, resp.user, f"{scope.method} {target} HTTP/{scope.http_version}", resp.status,
                                    sent, headers.get("referer"), headers.get("user-agent")))


app = RsgiApp()


def _die_with_parent() -> None:
    """A worker ends when the server process does, however it ends (kill -9 included): Linux's
    PR_SET_PDEATHSIG. Without it the workers went on serving, reparented to PID 1, holding the port."""
    import signal

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # (the parent went before the call took)
        os.kill(os.getpid(), signal.SIGTERM)


def _memfd_path(data: bytes) -> Path:
    """A path to `data` that lives only as long as this process: a memfd (RAM, 0600 to its owner),
    read by the workers as /proc/PID/fd/N. A kill -9 leaves no copy of a secret behind on disk."""
    from pathlib import PosixPath

    class _AsNamed(PosixPath):
        """Read at the name given: granian resolves the key's path, which for a memfd's is a name
        that does not exist ("/memfd:... (deleted)")."""

        def resolve(self, strict: bool = False) -> _AsNamed:
            return self

    fd = os.memfd_create("airgap-mirror-tls-key", os.MFD_CLOEXEC)
    os.write(fd, data)
    return _AsNamed(f"/proc/{os.getpid()}/fd/{fd}")


def _pkcs8(key: Path, folder: Path) -> Path:
    """granian reads PKCS#8 keys only: a PKCS#1 or SEC1 key ("BEGIN RSA/EC PRIVATE KEY") is converted,
    the given file left as it is: into memory where Linux has memfds (gone with the process), else
    into `folder` (private to this run, 0600)."""
    text = key.read_bytes()
    if b"-----BEGIN PRIVATE KEY-----" in text:
        return key
    from cryptography.hazmat.primitives import serialization

    from airgap_mirror.errors import ConfigError

    try:
        loaded = serialization.load_pem_private_key(text, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"TLS key {key}: not a PEM private key without a password ({exc})") from exc
    converted = loaded.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    if hasattr(os, "memfd_create"):
        return _memfd_path(converted)
    from airgap_mirror.store import atomic_write

    out = folder / "key.pem"
    atomic_write(out, converted, private=True)
    return out


def _private_folder() -> Path:
    """This server's folder for the workers' metrics (and a key where there is no memfd), named by its
    PID; those of servers no longer running (killed before they could remove theirs) removed first."""
    import shutil
    import tempfile

    tmp = Path(tempfile.gettempdir())
    for old in tmp.glob("airgap-mirror-serve-*"):
        pid = old.name.removeprefix("airgap-mirror-serve-").split("-", 1)[0]
        try:
            if not pid.isdigit() or old.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)  # (alive: another server's)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except (PermissionError, OSError):
            continue
    return Path(tempfile.mkdtemp(prefix=f"airgap-mirror-serve-{os.getpid()}-"))


def serve(published: Path, host: str, port: int, *, workers: int, settings: dict[str, Any],
          tls: tuple[Path, Path] | None, on_ready: Any) -> None:
    """Run granian until SIGTERM/SIGINT; `on_ready(url)` once it accepts connections."""
    import shutil
    import socket
    import threading
    import time

    from granian import Granian
    from granian.constants import Interfaces, SSLProtocols

    if port == 0:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    private = _private_folder()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(private)  # before any worker imports prometheus_client
    os.environ[SETTINGS_ENV] = json.dumps({**settings, "published": str(published)})
    scheme = "https" if tls else "http"
    try:
        kw: dict[str, Any] = {}
        if tls is not None:
            kw = {"ssl_cert": Path(tls[0]), "ssl_key": _pkcs8(Path(tls[1]), private), "ssl_protocol_min": SSLProtocols.tls12}
        # granian's own log (start, workers, errors) to stderr: stdout is the "serving ..." line.
        to_stderr = {name: {"formatter": fmt, "class": "logging.StreamHandler", "stream": "ext://sys.stderr"}
                     for name, fmt in (("console", "generic"), ("access", "access"))}
        server = Granian("airgap_mirror.serve.rsgi:app", address=host, port=port, interface=Interfaces.RSGI, workers=workers,
                         backlog=4096, log_enabled=True, log_dictconfig={"handlers": to_stderr}, **kw)

        def ready() -> None:
            for _ in range(600):
                try:
                    with socket.create_connection((host if host not in ("0.0.0.0", "::") else "127.0.0.1", port), timeout=1):
                        on_ready(f"{scheme}://{host}:{port}")
                        return
                except OSError:
                    time.sleep(0.05)

        threading.Thread(target=ready, daemon=True).start()
        server.serve()
    finally:
        shutil.rmtree(private, ignore_errors=True)
