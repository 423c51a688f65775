"""The embedded server against hostile requests: no response splitting, no traceback, no escape from
the published tree, idle connections released, Range and ?format= read as RFC 9110 and PEP 691 say."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from airgap_mirror.publish import current_tree, publish
from airgap_mirror.serve import make_server


@pytest.fixture
def hostile_server(store_with_files):  # noqa: F811
    store, _, files = store_with_files
    publish(store)
    srv = make_server(store.published, "127.0.0.1", 0, idle_timeout=1.0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, store, files
    srv.shutdown()
    srv.server_close()


def _raw(srv, request: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(srv.server_address[:2], timeout=timeout) as s:
        s.sendall(request)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pass
        return out


def test_a_crlf_in_a_project_name_never_reaches_a_header(hostile_server):
    srv, _, _ = hostile_server
    resp = _raw(srv, b"GET /simple/Foo%0d%0aSet-Cookie:%20x=1%0d%0a%0d%0a<html>/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head = resp.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 301")
    assert b"\r\nSet-Cookie" not in head and b"<html>" not in head
    location = next(line for line in head.split(b"\r\n") if line.lower().startswith(b"location:"))
    assert b"%0D%0A" in location.upper()


@pytest.mark.parametrize("path", ["/" + "a" * 300, "/simple/" + "b" * 300 + "/", "/packages/" + "c" * 5000 + "/x"])
def test_overlong_names_get_404_not_a_traceback(hostile_server, path):
    srv, _, _ = hostile_server
    r = httpx.get(f"http://127.0.0.1:{srv.server_address[1]}{path}")
    assert r.status_code in (404, 301)


def test_symlinks_never_lead_out_of_the_tree(hostile_server):
    srv, store, _ = hostile_server
    tree = current_tree(store)
    os.symlink("/etc/passwd", tree / "passwd")
    os.symlink("loop", tree / "loop")
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    assert httpx.get(base + "/passwd").status_code == 404
    assert httpx.get(base + "/loop").status_code == 404
    assert httpx.get(base + "/simple/").status_code == 200  # still serving


def test_idle_connections_are_closed(hostile_server):
    srv, _, _ = hostile_server
    before = threading.active_count()  # this process's own (earlier tests' worker pools among them)
    socks = [socket.create_connection(srv.server_address[:2]) for _ in range(50)]
    try:
        time.sleep(2.5)  # idle_timeout is 1 s here (30 s by default)
        closed = 0
        for s in socks:
            s.settimeout(2)
            try:
                closed += s.recv(1) == b""
            except (ConnectionResetError, TimeoutError):
                closed += 1
        assert closed == len(socks)
        assert threading.active_count() < before + 10  # no thread kept per idle connection
    finally:
        for s in socks:
            s.close()


def test_range_and_format_as_the_rfcs_say(hostile_server):
    srv, _, files = hostile_server
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    sha, meta = next(iter(files.items()))
    url = f"{base}/packages/{sha[:2]}/{sha}/{meta['filename']}"
    r = httpx.get(url, headers={"Range": "bytes=5-2"})
    assert r.status_code == 200 and len(r.content) == meta["size"]  # an invalid range is ignored
    r = httpx.get(url, headers={"Range": "bytes=2-5"})
    assert r.status_code == 206 and len(r.content) == 4
    # `+` unencoded in the query, as clients write it.
    r = httpx.get(base + "/simple/qux/?format=application/vnd.pypi.simple.v1+json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/vnd.pypi.simple.v1+json"


def _children(pid: int) -> set[int]:
    """Every process below `pid` (its workers, theirs)."""
    parents: dict[int, int] = {}
    for stat in os.listdir("/proc"):
        if stat.isdigit():
            try:
                with open(f"/proc/{stat}/stat") as fh:
                    parents[int(stat)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parents.items() if pp == p}
        out |= kids
        todo.extend(kids)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_server_leaves_no_key_copy_and_no_worker_behind(upstream, tmp_path):
    """kill -9 of `mirror serve`: its workers end with it (they went on serving, reparented to PID 1)
    and no copy of a converted TLS key is left on disk (a PKCS#1/SEC1 key granian cannot read is
    converted in memory); the folder it leaves is removed when the next server starts."""
    import signal
    import tempfile

    from cryptography.hazmat.primitives import serialization

    from tests.builders.cli import Served, run_mirror
    from tests.builders.tls import ca_and_cert
    from tests.builders.upstreams import DATA, X86

    store = tmp_path / "store"
    run_mirror("sync", str(DATA / "apps" / "shop"), "--store", str(store), "--python", "3.11", "--platform", X86,
               "--index-url", upstream.url + "/simple", "--installers", "")
    ca, cert, key = ca_and_cert(tmp_path / "tls")
    sec1 = tmp_path / "tls" / "sec1.pem"  # "BEGIN EC PRIVATE KEY", as certbot and older openssl write
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    sec1.write_bytes(loaded.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    secret = sec1.read_bytes().split(b"\n")[1]
    pkcs8_body = key.read_bytes().split(b"\n")[1]
    srv = Served(store, "--tls-cert", str(cert), "--tls-key", str(sec1), "--workers", "2")
    try:
        assert httpx.get(srv.simple, verify=str(ca), timeout=30).status_code == 200
        workers = _children(srv.proc.pid)
        assert workers, "no worker processes found"
        left = list(Path(tempfile.gettempdir()).glob(f"airgap-mirror-serve-{srv.proc.pid}-*"))
        assert left, "the server's folder is named by its PID"
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait(timeout=10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        assert not any(_alive(w) for w in workers), "workers outlived the server"
        for f in (p for d in left for p in d.rglob("*") if p.is_file()):
            body = f.read_bytes()
            assert secret not in body and pkcs8_body not in body and b"PRIVATE KEY" not in body, f
    finally:
        if srv.proc.poll() is None:
            srv.stop()
    again = Served(store, "--workers", "1")
    try:
        assert not any(d.exists() for d in left), "a dead server's folder was not removed"
    finally:
        again.stop()
