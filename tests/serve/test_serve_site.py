"""Serving as a site runs it: real pip and uv over TLS with a throwaway CA, read-only auth, /health and
/metrics as monitoring reads them, caching headers, the front page in a real browser, and load while
the tree is republished."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.builders.cli import check_installed, make_venv, run_mirror
from tests.builders.tls import Server, ca_and_cert, site_env
from tests.builders.upstreams import DATA, X86


@pytest.fixture(scope="module")
def site(upstream, tmp_path_factory):
    work = tmp_path_factory.mktemp("site")
    store = work / "store"
    run_mirror("sync", str(DATA / "apps" / "shop"), "--store", str(store), "--python", "3.11", "--platform", X86,
               "--index-url", upstream.url + "/simple", "--installers", "pip,setuptools")
    run_mirror("publish", "--store", str(store))
    ca, cert, key = ca_and_cert(work / "tls")
    import bcrypt

    htpasswd = work / "htpasswd"
    htpasswd.write_text(f"alice:{bcrypt.hashpw(b'wonder land', bcrypt.gensalt(rounds=8)).decode()}\n")
    tokens = work / "tokens"
    tokens.write_text("ci-runner:tok-0123456789abcdef0123\n")
    return {"store": store, "ca": ca, "cert": cert, "key": key, "htpasswd": htpasswd, "tokens": tokens, "work": work}


def _pip(venv: Path, index: str, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # Not --isolated: that would keep PIP_CERT from the build-isolation subprocess as from pip
    # itself (site_env leaves no pip.conf and no other PIP_* to keep out).
    return subprocess.run([str(venv / "bin" / "pip"), "install", "--no-cache-dir", "--index-url", index,
                           *extra, "-r", str(DATA / "apps" / "shop" / "requirements.txt")],
                          capture_output=True, text=True, env=env or site_env(), timeout=300)


def _uv(venv: Path, index: str, cache: Path, env: dict) -> subprocess.CompletedProcess:
    from airgap_mirror.resolve import uv_binary

    return subprocess.run([uv_binary(), "pip", "install", "--no-config", "--python", str(venv / "bin" / "python"),
                           "--index-url", index, "--cache-dir", str(cache),
                           "-r", str(DATA / "apps" / "shop" / "requirements.txt")],
                          capture_output=True, text=True, env=env, timeout=300)


def test_pip_and_uv_install_over_tls_and_refuse_an_untrusted_server(site, tmp_path):
    srv = Server(site["store"], "--tls-cert", str(site["cert"]), "--tls-key", str(site["key"]))
    try:
        assert srv.simple.startswith("https://127.0.0.1:")
        venv = make_venv(tmp_path / "pip")
        untrusted = _pip(venv, srv.simple, "--retries", "0", "--timeout", "5")
        assert untrusted.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stdout + untrusted.stderr
        trusted = _pip(venv, srv.simple, env=site_env(PIP_CERT=str(site["ca"])))  # as client-config says
        assert trusted.returncode == 0, trusted.stdout + trusted.stderr
        assert check_installed(venv)["delta"] == "sdist"

        uv_venv = make_venv(tmp_path / "uv")
        refused = _uv(uv_venv, srv.simple, tmp_path / "uvc1", site_env(UV_HTTP_RETRIES="0"))
        assert refused.returncode != 0 and "certificate" in (refused.stdout + refused.stderr).lower()
        ok = _uv(uv_venv, srv.simple, tmp_path / "uvc2", site_env(SSL_CERT_FILE=str(site["ca"])))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert check_installed(uv_venv)["delta"] == "sdist"
    finally:
        srv.stop()


def test_auth_lets_the_right_users_in_and_never_logs_a_secret(site, tmp_path):
    log = tmp_path / "access.log"
    htpasswd = tmp_path / "htpasswd"
    shutil.copy(site["htpasswd"], htpasswd)
    srv = Server(site["store"], "--htpasswd", str(htpasswd), "--tokens", str(site["tokens"]), "--access-log", str(log))
    try:
        venv = make_venv(tmp_path / "pip")
        wrong = _pip(venv, srv.with_user("alice", "not it"), "--retries", "0")
        assert wrong.returncode != 0 and "401" in wrong.stdout + wrong.stderr
        right = _pip(venv, srv.with_user("alice", "wonder land".replace(" ", "%20")))
        assert right.returncode == 0, right.stdout + right.stderr
        # uv with its per-index credentials from the environment; the token as the password.
        from airgap_mirror.resolve import uv_binary

        uv_venv = make_venv(tmp_path / "uv")

        def uv_with(password: str, cache: str) -> subprocess.CompletedProcess:
            env = site_env(UV_INDEX_MIRROR_USERNAME="ci", UV_INDEX_MIRROR_PASSWORD=password, UV_HTTP_RETRIES="0")
            return subprocess.run([uv_binary(), "pip", "install", "--no-config", "--python", str(uv_venv / "bin" / "python"),
                                   "--index", f"mirror={srv.simple}", "--default-index", srv.simple, "--cache-dir",
                                   str(tmp_path / cache), "-r", str(DATA / "apps" / "shop" / "requirements.txt")],
                                  capture_output=True, text=True, env=env, timeout=300)

        refused = uv_with("tok-wrong-wrong-wrong-wrong", "uvc0")
        assert refused.returncode != 0 and "401" in refused.stdout + refused.stderr
        uv = uv_with("tok-0123456789abcdef0123", "uvc")
        assert uv.returncode == 0, uv.stdout + uv.stderr
        # Without credentials: 401 with both schemes offered; /health needs none.
        r = httpx.get(srv.simple)
        assert r.status_code == 401 and "Basic" in r.headers["www-authenticate"]
        # /health needs none, and without them says only whether the tree is served whole: what it
        # serves (snapshot, the last bundle's signer, sequence and site) needs credentials.
        anonymous = httpx.get(srv.base + "/health")
        assert anonymous.status_code == 200 and set(anonymous.json()) == {"status", "tree"}
        detailed = httpx.get(srv.base + "/health", headers={"Authorization": "Bearer tok-0123456789abcdef0123"})
        assert "snapshot" in detailed.json()
        bearer = httpx.get(srv.simple + "alpha/", headers={"Authorization": "Bearer tok-0123456789abcdef0123"})
        assert bearer.status_code == 200 and bearer.headers["cache-control"].startswith("private")
        # The file is re-read when it changes: a new user works without a restart, the old one is gone.
        import bcrypt

        htpasswd.write_text(f"bob:{bcrypt.hashpw(b'builder', bcrypt.gensalt(rounds=8)).decode()}\n")
        time.sleep(1.2)
        assert httpx.get(srv.simple, auth=("bob", "builder")).status_code == 200
        assert httpx.get(srv.simple, auth=("alice", "wonder land")).status_code == 401
    finally:
        srv.stop()
    text = log.read_text()
    assert " alice [" in text and " ci-runner [" in text and " 401 " in text
    for secret in ("wonder", "tok-0123456789abcdef0123", "builder", "not it"):
        assert secret not in text


def test_health_metrics_and_caching_headers(site, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    srv = Server(site["store"])
    try:
        front = httpx.get(srv.base + "/", headers={"Host": "mirror.example"})
        assert "mirror.example" in front.text and front.headers["vary"] == "Host"  # built from Host: keyed by it
        health = httpx.get(srv.base + "/health")
        doc = health.json()
        assert health.status_code == 200 and doc["status"] == "ok" and doc["tree"] == "intact"
        snapshot = json.loads(run_mirror("snapshots", "--store", str(site["store"]), "--json").stdout)[-1]
        assert doc["snapshot"] == snapshot["id"] and doc["snapshot_age_seconds"] >= 0
        page = httpx.get(srv.simple + "alpha/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        assert page.headers["cache-control"] == "max-age=30, must-revalidate"
        etag = page.headers["etag"]
        assert not etag.startswith("W/")
        assert httpx.get(srv.simple + "alpha/", headers={"Accept": "application/vnd.pypi.simple.v1+json",
                                                         "If-None-Match": etag}).status_code == 304
        wheel = srv.base + "/" + "/".join(page.json()["files"][0]["url"].split("/")[-4:])
        head = httpx.head(wheel)
        assert head.status_code == 200 and head.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert httpx.get(srv.base + "/nowhere").status_code == 404
        time.sleep(1.5)  # each worker hands its counts over within a second
        metrics = httpx.get(srv.base + "/metrics")
        families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
        requests = {(s.labels["route"], s.labels["status"]): s.value for s in families["airgap_mirror_http_requests"].samples
                    if s.name.endswith("_total")}
        assert requests[("simple", "200")] >= 1 and requests[("simple", "304")] == 1 and requests[("health", "200")] == 1
        assert requests[("other", "404")] == 1 and requests[("packages", "200")] == 1
        assert families["airgap_mirror_tree_intact"].samples[0].value == 1
        assert families["airgap_mirror_snapshot_age_seconds"].samples[0].value >= 0
        body = httpx.get(wheel).content  # a small file, sent from memory: HEAD still says its length
        assert int(head.headers["content-length"]) == len(body) > 0 and not head.content
        page_head = httpx.head(srv.simple + "alpha/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        assert page_head.headers["content-length"] == page.headers["content-length"] and not page_head.content
        # The republished tree keeps a page's ETag when its content did not change.
        run_mirror("publish", "--store", str(site["store"]))
        again = httpx.get(srv.simple + "alpha/", headers={"Accept": "application/vnd.pypi.simple.v1+json",
                                                          "If-None-Match": etag})
        assert again.status_code == 304
    finally:
        srv.stop()


def test_health_says_503_when_the_tree_is_gone(tmp_path):
    from airgap_mirror.store import Store

    store = Store(tmp_path / "empty").create()
    srv = Server(store.root)
    try:
        r = httpx.get(srv.base + "/health")
        assert r.status_code == 503 and r.json()["tree"] == "missing"
        assert "Nothing is published yet" in httpx.get(srv.base + "/").text
    finally:
        srv.stop()


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is installed by scripts/test set-up")
def test_front_page_in_a_real_browser(site, tmp_path):
    srv = Server(site["store"], "--tls-cert", str(site["cert"]), "--tls-key", str(site["key"]))
    try:
        proc = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--ignore-certificate-errors", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", srv.base + "/"],
            capture_output=True, text=True, timeout=120)
        dom = proc.stdout
        snapshot = json.loads(run_mirror("snapshots", "--store", str(site["store"]), "--json").stdout)[-1]["id"]
        assert f'<code id="snapshot">{snapshot}</code>' in dom, proc.stderr[-2000:]
        assert "<td>shop</td><td>python</td>" in dom and f"cp311-{X86}" in dom
        assert f"/locks/shop/cp311-{X86}/pylock.toml" in dom
        assert f"pip install --index-url {srv.simple}" in dom        # set-up text for this very server
        assert 'href="/simple/"' in dom and "<script" not in dom
    finally:
        srv.stop()


def test_load_while_publishing_switches_trees(site, tmp_path):
    """200 concurrent clients (bounded in count and time) while `publish` switches trees and a bundle
    import (which republishes) runs: every answer is whole (bytes match their sha256), none fails."""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    srv = Server(site["store"])
    try:
        page = httpx.get(srv.simple + "alpha/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
        files = [(srv.base + "/" + "/".join(f["url"].split("/")[-4:]), f["hashes"]["sha256"]) for f in page["files"]]
        errors: list[str] = []
        done = threading.Event()

        def client(n: int) -> int:
            count = 0
            with httpx.Client(timeout=30) as c:
                for i in range(15):
                    url, sha = files[(n + i) % len(files)]
                    r = c.get(url)
                    if r.status_code != 200 or hashlib.sha256(r.content).hexdigest() != sha:
                        errors.append(f"{url}: {r.status_code}")
                    p = c.get(srv.simple + "alpha/")
                    if p.status_code != 200 or "alpha" not in p.text:
                        errors.append(f"page: {p.status_code}")
                    count += 2
            return count

        run_mirror("keygen", "--out", str(tmp_path / "k"))
        run_mirror("bundle", "create", "--store", str(site["store"]), "--key", str(tmp_path / "k.key"), "-o",
                   str(tmp_path / "b.bundle"))

        def publisher() -> None:
            run_mirror("publish", "--store", str(site["store"]))
            run_mirror("bundle", "import", str(tmp_path / "b.bundle"), "--store", str(site["store"]), "--trust",
                       str(tmp_path / "k.pub"), "--any-site")
            run_mirror("publish", "--store", str(site["store"]))
            done.set()

        t = threading.Thread(target=publisher)
        t.start()
        with ThreadPoolExecutor(200) as pool:
            total = sum(pool.map(client, range(200)))
        t.join(timeout=120)
        assert done.is_set() and not errors, errors[:5]
        assert total == 200 * 30
    finally:
        srv.stop()


def test_client_config_says_what_the_tests_above_do(site):
    """The settings the real clients above were given are the ones `mirror client-config` prints."""
    out = run_mirror("client-config", "--url", "https://mirror.internal", "--user", "ci", "--ca-cert", "/etc/ca.pem",
                     "--store", str(site["store"])).stdout
    for line in ("export PIP_CERT=/etc/ca.pem", "export SSL_CERT_FILE=/etc/ca.pem", "https://ci:PASSWORD@mirror.internal/simple/",
                 "export UV_INDEX_MIRROR_USERNAME=ci UV_INDEX_MIRROR_PASSWORD=PASSWORD",
                 "/etc/apt/auth.conf.d/airgap-mirror.conf", "machine mirror.internal login ci password PASSWORD"):
        assert line in out, line


def test_scripts_nginx_conf_with_its_tls_and_auth_lines(site, tmp_path):
    """scripts/nginx.conf with its TLS and auth lines switched on, the same certificate and htpasswd
    file: pip and uv install through it with the CA and credentials, and are refused without."""
    from tests.builders.nginx import Nginx

    ngx = Nginx(site["store"] / "published", tmp_path / "nginx", tls=(site["cert"], site["key"]),
                htpasswd=site["htpasswd"])
    try:
        scheme, rest = ngx.simple.split("://")
        with_user = f"{scheme}://alice:wonder%20land@{rest}"
        venv = make_venv(tmp_path / "pip")
        assert _pip(venv, with_user, "--retries", "0").returncode != 0                  # the CA is not trusted
        assert _pip(venv, ngx.simple, "--retries", "0", env=site_env(PIP_CERT=str(site["ca"]))).returncode != 0  # 401
        ok = _pip(venv, with_user, env=site_env(PIP_CERT=str(site["ca"])))
        assert ok.returncode == 0, ok.stdout + ok.stderr
        uv_venv = make_venv(tmp_path / "uv")
        uv = _uv(uv_venv, with_user, tmp_path / "uvc", site_env(SSL_CERT_FILE=str(site["ca"])))
        assert uv.returncode == 0, uv.stdout + uv.stderr
        assert check_installed(venv) == check_installed(uv_venv)
        page = httpx.get(ngx.simple + "alpha/", verify=__import__("ssl").create_default_context(cafile=str(site["ca"])),
                         auth=("alice", "wonder land"))
        assert page.headers["cache-control"] == "max-age=30, must-revalidate"
    finally:
        ngx.stop()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_serve_unit_is_a_valid_hardened_unit(tmp_path):
    from tests.builders.cli import MIRROR

    unit = (Path(__file__).resolve().parents[2] / "scripts/systemd/airgap-mirror-serve.service").read_text()
    for setting in ("ProtectSystem=strict", "DynamicUser=yes", "ReadOnlyPaths=/srv/mirror-store", "NoNewPrivileges=yes"):
        assert setting in unit
    mirror_bin = Path(MIRROR[0]).parent / "mirror"
    local = tmp_path / "airgap-mirror-serve.service"
    local.write_text(unit.replace("/srv/airgap-mirror/.venv/bin/mirror", str(mirror_bin)))
    proc = subprocess.run(["systemd-analyze", "verify", str(local)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_password_checks_never_hold_up_other_requests_or_tell_which_users_exist(site, tmp_path):
    """bcrypt runs on a thread, not on a worker's event loop: while clients send wrong passwords,
    /health and pages answer at once (every request waited behind them, over a second); and an
    unknown user's answer takes as long as a known user's wrong password (0.4 ms against 3-577 ms:
    the time told which names exist)."""
    import statistics
    import threading

    import bcrypt

    from airgap_mirror.serve.auth import Auth

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"alice:{bcrypt.hashpw(b'right', bcrypt.gensalt(rounds=13)).decode()}\n")
    auth = Auth(htpasswd=htpasswd)
    header = lambda u: "Basic " + __import__("base64").b64encode(f"{u}:wrong".encode()).decode()  # noqa: E731

    def took(user: str) -> float:
        t = time.perf_counter()
        assert auth.check(header(user)) is None
        return time.perf_counter() - t

    known = statistics.median(took("alice") for _ in range(3))
    unknown = statistics.median(took("nobody") for _ in range(3))
    assert unknown >= known * 0.5, (known, unknown)

    # (no failure limit here: the wrong passwords are to reach bcrypt; the limit has its own test)
    srv = Server(site["store"], "--htpasswd", str(htpasswd), "--workers", "1", "--auth-failures", "0")
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            httpx.get(srv.simple, auth=("alice", "wrong"), timeout=30)

    clients = [threading.Thread(target=hammer, daemon=True) for _ in range(4)]
    try:
        for c in clients:
            c.start()
        time.sleep(1.0)  # the worker is busy with wrong passwords now
        waits = []
        for _ in range(5):
            t = time.perf_counter()
            assert httpx.get(srv.base + "/health", timeout=30).status_code == 200
            waits.append(time.perf_counter() - t)
        # one bcrypt check at cost 13 is ~0.5 s here; on the loop, /health waited behind four of them
        assert max(waits) < known, (waits, known)
    finally:
        stop.set()
        for c in clients:
            c.join(timeout=30)
        srv.stop()


def test_a_client_guessing_passwords_is_stopped_and_nobody_else(site, tmp_path):
    """After `--auth-failures` wrong passwords within a minute, a client address gets 429 with
    Retry-After and no more bcrypt checks; a credential proven before and a token still pass, a
    request without credentials still gets the 401 challenge."""
    srv = Server(site["store"], "--htpasswd", str(site["htpasswd"]), "--tokens", str(site["tokens"]),
                 "--workers", "1", "--auth-failures", "5")
    try:
        assert httpx.get(srv.simple, auth=("alice", "wonder land"), timeout=30).status_code == 200  # proven once
        codes = [httpx.get(srv.simple, auth=("alice", f"guess{i}"), timeout=30).status_code for i in range(5)]
        assert codes == [401] * 5
        t = time.perf_counter()
        limited = httpx.get(srv.simple, auth=("mallory", "guess"), timeout=30)
        assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60, limited.headers
        assert time.perf_counter() - t < 0.2  # no bcrypt run for it
        assert httpx.get(srv.simple, auth=("alice", "guess6"), timeout=30).status_code == 429
        assert httpx.get(srv.simple, auth=("alice", "wonder land"), timeout=30).status_code == 200
        assert httpx.get(srv.simple, headers={"Authorization": "Bearer tok-0123456789abcdef0123"}, timeout=30).status_code == 200
        assert httpx.get(srv.simple, timeout=30).status_code == 401
        assert httpx.get(srv.base + "/health", timeout=30).status_code == 200
    finally:
        srv.stop()
    bad = run_mirror("serve", "--store", str(site["store"]), "--config", str(_config(tmp_path, "auth-failures = -1")),
                     check=False)
    assert bad.returncode == 2 and "auth-failures` must be a whole number" in bad.stdout + bad.stderr


def _config(tmp_path: Path, serve_line: str) -> Path:
    cfg = tmp_path / "mirror.toml"
    cfg.write_text(f"[serve]\n{serve_line}\n")
    return cfg


def test_every_link_on_the_front_page_answers(site):
    """A link a visitor can follow is one that works: none of the front page's links is a 404 (the
    parts that are folders only, locks/ and the JSON API's pypi/, have no link of their own)."""
    import re

    store = site["store"]
    srv = Server(store)
    try:
        page = httpx.get(srv.base + "/").text
        links = sorted(set(re.findall(r'href="([^"]+)"', page)))
        assert "/simple/" in links and "/locks/" not in links
        for link in links:
            status = httpx.get(srv.base + link.replace("&amp;", "&")).status_code
            assert status == 200, (link, status)
    finally:
        srv.stop()
