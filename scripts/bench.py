"""Benchmark driver (run through scripts/bench). Each section times us and a peer on the same input."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from airgap_mirror.resolve.targets import PythonTarget  # noqa: E402


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    if "SSL_CERT_FILE" in os.environ:
        env["PIP_CERT"] = os.environ["SSL_CERT_FILE"]
    return env


def timed(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess[str]]:
    os.sync()  # the run before's write-back is not this run's cost (our fsyncs would wait for it)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), **kw)
    return time.perf_counter() - t0, proc


# Runs the command as its child and reports the child's peak memory and wall time on a pipe. A
# process forked from this one starts with this one's resident memory as its high-water mark, which
# exec keeps (this process holds bookworm's Packages after the APT part: every later sync "peaked"
# at 241 MiB); a child of this small process starts small.
_SPAWN = ("import os, sys, time\n"
          "t0 = time.perf_counter()\n"
          "pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)\n"
          "_, status, usage = os.wait4(pid, 0)\n"
          "os.write(int(sys.argv[1]), f'{usage.ru_maxrss} {time.perf_counter() - t0}'.encode())\n"
          "os._exit(os.waitstatus_to_exitcode(status) & 0xff)\n")


def timed_peak(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess[str], int]:
    """`timed`, and the peak resident memory (bytes) of the command's process (its own, from wait4:
    the uv and curl it runs are apart)."""
    import threading

    os.sync()
    r, w = os.pipe()
    p = subprocess.Popen([sys.executable, "-S", "-c", _SPAWN, str(w), *cmd], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=clean_env(), pass_fds=(w,))
    os.close(w)
    out: dict[str, str] = {}
    readers = [threading.Thread(target=lambda k=k, f=f: out.__setitem__(k, f.read())) for k, f in
               (("stdout", p.stdout), ("stderr", p.stderr))]
    for t in readers:
        t.start()
    p.wait()
    for t in readers:
        t.join()
    with os.fdopen(r, "rb") as report:
        maxrss, elapsed = report.read().split()
    return float(elapsed), subprocess.CompletedProcess(cmd, p.returncode, out["stdout"], out["stderr"]), int(maxrss) * 1024


def _limit(store: Path, reqs: Path, target: PythonTarget, work: Path) -> tuple[float, float, int] | None:
    """The physical limit of a cold sync here: uv resolving the requirements with no cache, plus curl
    fetching the very files the sync fetched (16 at a time, one process), measured now."""
    from airgap_mirror.resolve import uv_binary
    from airgap_mirror.store import Store

    work.mkdir(parents=True, exist_ok=True)
    st = Store(store)
    sid = st.ref("current")
    if sid is None:
        return None
    urls = [f.url for f in st.snapshot(sid).python.files.values() if (f.url or "").startswith("https://")]
    t_uv, u = timed([uv_binary(), "pip", "compile", "--no-cache", "--no-config", "--quiet", "--index-url", "https://pypi.org/simple",
                     "--python", sys.executable, "--python-version", target.python, "--python-platform", target.uv_platform(), str(reqs),
                     "-o", str(work / "uv-lock.txt")])
    if u.returncode != 0:
        return None
    dest = work / "curl"
    dest.mkdir(parents=True)
    config = work / "curl.cfg"
    config.write_text("".join(f'url = "{u}"\noutput = "{dest / str(i)}"\n' for i, u in enumerate(urls)))
    t_curl, c = timed(["curl", "-sSf", "--parallel", "--parallel-max", "16", "-K", str(config)])
    if c.returncode != 0:
        return None
    return t_uv, t_curl, len(urls)


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

    _, pl = timed(pip_download("pip-dl-literal", [platform]))
    # Best of RUNS for each side, run alternately (this link's timings swing by a third from run to
    # run): pip download, our cold sync into an empty store each time, and the limit's uv and curl.
    cold_runs, limits, pips = [], [], []
    for i in range(RUNS):
        pips.append(timed(pip_download(f"pip-dl-{i}", target.platform_tags())))
        store = work / f"store-{i}"
        sync = mirror + ["sync", str(app), "--store", str(store), "--python", python, "--platform", platform, "--json"]
        cold_runs.append(timed_peak(sync))
        if cold_runs[-1][1].returncode == 0:
            limits.append(_limit(store, app / "requirements.txt", target, work / f"limit-{i}"))
    t_cold, c, mem_cold = min(cold_runs, key=lambda r: r[0] if r[1].returncode == 0 else float("inf"))
    t_noop, n, mem_noop = timed_peak(sync)
    t_pip, p = min(pips, key=lambda r: r[0] if r[1].returncode == 0 else float("inf"))
    pip_ok = p.returncode == 0
    got = [x for x in limits if x is not None]
    limit = (min(x[0] for x in got), min(x[1] for x in got), got[0][2]) if got else None
    n_files = len(list((work / "pip-dl-0").glob("*"))) if pip_ok else 0
    print(f"\n== Python: cold sync of {app.name} for {target.id}")
    print(f"pip download (all {len(target.platform_tags())} platform tags given): {t_pip:7.2f} s  "
          f"{'ok, ' + str(n_files) + ' files' if pip_ok else 'FAILED: ' + p.stderr.strip().splitlines()[-1][:120]}"
          f"  (best of {RUNS}: " + ", ".join(f"{r[0]:.2f}" for r in pips) + ")")
    print(f"pip download --platform {platform} (literal)         : "
          f"{'ok' if pl.returncode == 0 else 'FAILED: ' + (pl.stderr.strip().splitlines() or [''])[-1][:100]}")
    print(f"mirror sync (cold, empty store and resolver cache):   {t_cold:7.2f} s  {'ok' if c.returncode == 0 else 'FAILED ' + c.stderr[-300:]}"
          f"  peak memory {mem_cold / 2**20:.0f} MiB  (best of {RUNS}: " + ", ".join(f"{r[0]:.2f}" for r in cold_runs) + ")")
    print(f"mirror sync (no-op resync):                           {t_noop:7.2f} s  {'ok' if n.returncode == 0 else 'FAILED'}"
          f"  peak memory {mem_noop / 2**20:.0f} MiB")
    if limit is not None:
        t_uv, t_curl, n_urls = limit
        print(f"the limit: uv pip compile --no-cache {t_uv:5.2f} s + curl --parallel of the same {n_urls} files {t_curl:5.2f} s"
              f" = {t_uv + t_curl:5.2f} s  (each the best of {len(got)})")
        print(f"ratio mirror cold sync / the limit:     {t_cold / (t_uv + t_curl):5.2f}x  (aim <= 1.2x)")
    else:
        print("the limit: not measured (the cold sync or uv or curl failed)")
    if pip_ok:
        print(f"ratio pip download / mirror cold sync:  {t_pip / t_cold:5.2f}x  (aim >= 3x)")
    print(f"ratio no-op resync / cold sync:         {100 * t_noop / t_cold:5.1f}%  (aim < 10%)")
    if c.returncode == 0:
        _noop_floor_and_validators(app, work, mirror, python, platform, t_noop)
    if PROFILE:
        for label, proc, total in (("cold", c, t_cold), ("no-op", n, t_noop)):
            _print_profile(label, proc, total)
    shutil.rmtree(work, ignore_errors=True)


def _noop_floor_and_validators(app: Path, work: Path, mirror: list[str], python: str, platform: str, t_noop: float) -> None:
    """The no-op resync beside its floor against this machine's PyPI (curl reading the app's pages,
    the least a resync that checks them can do), and against an upstream that sends validators and
    max-age as pypi.org does (our own `mirror serve` of the synced store), where the memo can skip."""
    from tests.builders.nginx import free_port, wait_until_serving

    store = work / "store-0"
    snap = json.loads(subprocess.run(mirror + ["sbom", "--store", str(store)], capture_output=True, text=True,
                                     env=clean_env()).stdout or "{}")
    projects = sorted({c["name"].lower() for c in snap.get("components", []) if c.get("purl", "").startswith("pkg:pypi/")})
    cfg = work / "pages.curl"
    cfg.write_text("".join(f'url = "https://pypi.org/simple/{p}/"\noutput = "/dev/null"\n' for p in projects))
    floors = [timed(["curl", "-s", "--fail", "--parallel", "--parallel-max", "16", "--compressed",
                     "-H", "Accept: application/vnd.pypi.simple.v1+json", "-K", str(cfg)])[0] for _ in range(3)]
    print(f"the no-op's floor against PyPI: curl reading the app's {len(projects)} pages {min(floors):5.2f} s "
          f"(best of 3); ours {t_noop:5.2f} s: {t_noop / min(floors):4.2f}x the floor")
    subprocess.run(mirror + ["publish", "--store", str(store)], check=True, capture_output=True, env=clean_env())
    port = free_port()
    server = subprocess.Popen(mirror + ["serve", "--store", str(store), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(f"{base}/simple/", server, "mirror serve", tries=200)
        inner = work / "store-behind"
        sync = mirror + ["sync", str(app), "--store", str(inner), "--python", python, "--platform", platform,
                         "--installers", "", "--index-url", f"{base}/simple"]
        t_cold, cold = timed(sync)
        noops = [timed(sync)[0] for _ in range(3)]
    finally:
        server.terminate()
        server.wait(timeout=10)
    if cold.returncode == 0:
        print(f"against an upstream with ETag and max-age (our own serve): cold {t_cold:5.2f} s, no-op {min(noops):5.2f} s"
              f" (best of 3) = {100 * min(noops) / t_cold:4.1f}% of the cold sync  (aim < 10%)")
        # What any run of the command costs before it reads an app: the interpreter and the CLI's modules.
        starts = [timed(mirror + ["--version"])[0] for _ in range(3)]
        bare = [timed([sys.executable, "-S", "-c", "pass"])[0] for _ in range(3)]
        print(f"  floors: `mirror --version` {min(starts):5.2f} s = {100 * min(starts) / t_cold:4.1f}% of that cold sync; "
              f"the interpreter alone (python -S -c pass) {min(bare):5.3f} s (best of 3 each)")
    else:
        print(f"against our own serve: the cold sync failed: {cold.stderr[-300:]}")


PROFILE = False
RUNS = 3  # the python section's cold syncs and limit measurements, each side's best taken


def _print_profile(label: str, proc: subprocess.CompletedProcess[str], total: float) -> None:
    """Where a sync's seconds went: its phases (from --json) and the rest (start-up, output)."""
    try:
        timings = json.loads(proc.stdout).get("timings", {})
    except ValueError:
        print(f"  profile of the {label} sync: no JSON")
        return
    inside = sum(v for k, v in timings.items() if "alongside" not in k)
    parts = [f"start-up and output {total - inside:5.2f}"] + [f"{k} {v:5.2f}" for k, v in timings.items()]
    print(f"  profile, {label} sync ({total:.2f} s): " + ", ".join(parts))


def bench_apt(app: Path, distro: str, arch: str) -> None:
    """Cold Aptfile sync (index, closure, download) against aptly's filtered mirror of the same set."""
    from airgap_apt.aptfile import read_aptfile

    aptfile = next(app / n for n in ("Aptfile", "packages.txt") if (app / n).is_file())
    names = [p.name for p in read_aptfile(aptfile).packages]
    work = Path(tempfile.mkdtemp(prefix="bench-apt-"))
    # Only the Aptfile: the app's Python side is the python section's business.
    only = work / "apps" / app.name
    only.mkdir(parents=True)
    shutil.copy(aptfile, only / aptfile.name)
    app = only
    mirror = [str(ROOT / ".venv/bin/mirror")]
    aptly = shutil.which("aptly")

    def ours(base: str, i: int) -> tuple[float, float, dict, subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
        store = work / f"store-{base}" if i == 0 else work / f"store-{base}-{i}"
        cmd = mirror + ["sync", str(app), "--store", str(store), "--installers", "", "--distro", distro, "--arch", arch,
                        "--apt-base", base, "--json"]
        t_cold, c = timed(cmd)
        t_noop, n = timed(cmd)
        summary = json.loads(c.stdout) if c.stdout.strip().startswith("{") else {}
        return t_cold, t_noop, summary, c, n

    def theirs(i: int) -> tuple[float | None, int]:
        conf = work / f"aptly-{i}.conf"
        conf.write_text('{{"rootDir": "{}", "downloadConcurrency": 16, "architectures": ["{}"]}}'.format(work / f"aptly-{i}", arch))
        base_cmd = [aptly, f"-config={conf}"]
        os.sync()
        t0 = time.perf_counter()
        create = subprocess.run(base_cmd + ["mirror", "create", f"-architectures={arch}", "-filter=" + " | ".join(names),
                                            "-filter-with-deps", "-keyring=/usr/share/keyrings/debian-archive-keyring.gpg",
                                            "bench", "http://deb.debian.org/debian", distro, "main"],
                                capture_output=True, text=True)
        update = subprocess.run(base_cmd + ["mirror", "update", "-keyring=/usr/share/keyrings/debian-archive-keyring.gpg", "bench"],
                                capture_output=True, text=True)
        took = time.perf_counter() - t0
        if create.returncode or update.returncode:
            print("aptly failed:", (create.stderr + update.stderr).strip()[-300:])
            return None, 0
        return took, len(list((work / f"aptly-{i}" / "pool").rglob("*.deb")))

    # Best of RUNS for each, run alternately (deb.debian.org through this machine's proxy swings
    # from one run to the next by more than the difference being measured).
    runs: dict[str, list] = {"required": [], "none": [], "aptly": []}
    for i in range(RUNS):
        for base in ("required", "none"):
            runs[base].append(ours(base, i))
        if aptly:
            runs["aptly"].append(theirs(i))
    results = {}
    for base in ("required", "none"):
        best = min(runs[base], key=lambda r: r[0] if r[2].get("ok") else float("inf"))
        if PROFILE and base == "required":
            _print_profile("APT cold", best[3], best[0])
            _print_profile("APT no-op", best[4], best[1])
        results[base] = (best[0], best[1], best[2], [r[0] for r in runs[base]])
    done = [r for r in runs["aptly"] if r[0] is not None]
    t_aptly = min(r[0] for r in done) if done else None
    n_aptly = done[0][1] if done else 0
    print(f"\n== APT: cold sync of {app.name} ({len(names)} packages named) for {distro}/{arch}")
    for base, (t_cold, t_noop, summary, all_cold) in results.items():
        files = summary.get("files", {})
        print(f"mirror sync --apt-base {base:<8}: {t_cold:7.2f} s cold, {t_noop:5.2f} s no-op resync; "
              f"{files.get('total', '?')} .debs, {summary.get('bytes_fetched', 0) / 1e6:.1f} MB"
              + ("" if summary.get("ok") else "  FAILED") + f"  (best of {RUNS}: " + ", ".join(f"{t:.2f}" for t in all_cold) + ")")
    if t_aptly is not None:
        t_none = results["none"][0]
        print(f"aptly mirror create -filter-with-deps + update: {t_aptly:7.2f} s; {n_aptly} .debs  (best of {RUNS}: "
              + ", ".join(f"{r[0]:.2f}" for r in done) + ")")
        print(f"ratio aptly / ours (same complete closure, --apt-base none): {t_aptly / t_none:5.2f}x")
        print(f"ratio aptly / ours (default base: what the target lacks)    : {t_aptly / results['required'][0]:5.2f}x")
    else:
        print("aptly not installed: apt-get install aptly to compare")
    raw = sorted((work / "store-none" / "cache" / "apt" / "raw").glob("*"), key=lambda f: f.stat().st_size)
    if raw:
        _index_on_slow_links(raw[-1])
    shutil.rmtree(work, ignore_errors=True)


def _index_on_slow_links(packages_gz: Path) -> None:
    """The suite's Packages.gz just synced, served from 127.0.0.1 at a site's link speeds: fetched
    then parsed (as before) against parsed as it arrives (what a sync does)."""
    import http.server
    import threading

    from airgap_apt.archive import _IndexReader, parse_whole
    from airgap_mirror.fetch import get_bytes, get_streaming

    data = packages_gz.read_bytes()
    rate = [0.0]

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            step = 256 << 10
            for i in range(0, len(data), step):
                self.wfile.write(data[i:i + step])
                time.sleep(step / rate[0])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/Packages.gz"
    try:
        print(f"Packages.gz ({len(data) / 1e6:.1f} MB) over a slower link, fetched then parsed vs parsed as it arrives:")
        for mb_s in (10, 30, 100):
            rate[0] = mb_s * 1e6
            t0 = time.perf_counter()
            parse_whole("Packages.gz", get_bytes(url, max_bytes=len(data) + 1))
            before = time.perf_counter() - t0
            t0 = time.perf_counter()
            reader = _IndexReader("Packages.gz", "")
            get_streaming(url, reader.fresh, max_bytes=len(data) + 1)
            reader.finish()
            streamed = time.perf_counter() - t0
            print(f"  at {mb_s:3d} MB/s: {before:5.2f} s then {streamed:5.2f} s  ({streamed / before:4.2f}x)")
    finally:
        server.shutdown()
        server.server_close()


def _wheel_store(work: Path, wheels: list[Path], limit: float) -> tuple[Path, int, int]:
    """A store whose one snapshot holds real wheels (1-150 MB each, by name) up to `limit` bytes."""
    from airgap_mirror.store import Store

    store = Store(work / "store").create()
    meta, total = {}, 0
    for path in sorted(p for d in wheels if d.is_dir() for p in d.glob("*.whl") if 1 << 20 <= p.stat().st_size <= 150 << 20):
        sha = store.put_file(path)
        name, version = path.name.split("-")[:2]
        meta[sha] = {"filename": path.name, "project": name, "version": version, "kind": "wheel",
                     "size": path.stat().st_size, "url": None, "requires_python": None, "yanked": None,
                     "upload_time": None, "metadata_sha256": None}
        total += path.stat().st_size
        if total >= limit:
            break
    store.put_snapshot({"format_version": 1, "kind": "airgap-mirror/snapshot", "targets": {}, "apps": {},
                        "python": {"files": meta, "installers": {}, "build": {}}}, origin="sync")
    return store.root, len(meta), total


def _best(runs: int, setup, cmd) -> tuple[float, subprocess.CompletedProcess[str]]:  # noqa: ANN001
    """The best of `runs` timings (setup before each, untimed): what the machine can do, not its noise."""
    best = None
    for _ in range(runs):
        setup()
        t, proc = timed(cmd)
        if best is None or t < best[0]:
            best = (t, proc)
    assert best is not None
    return best


def bench_bundle(wheels: list[Path], gigabytes: float, runs: int = 3) -> None:
    """Bundle create / verify / import on >= 1 GB of real wheels vs tar | zstd (and sha256sum) on the
    same files, best of `runs` each, run alternately; and what each zstd level costs and gains."""
    work = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    mirror = [str(ROOT / ".venv/bin/mirror")]
    store, count, raw = _wheel_store(work, wheels, gigabytes * 1e9)
    if raw < 1e8:
        print(f"\n== Bundles: skipped, no wheels found under {', '.join(map(str, wheels))} (--wheels DIR)")
        shutil.rmtree(work, ignore_errors=True)
        return
    timed(mirror + ["keygen", "--out", str(work / "k")])
    blob_root = store / "store-v1" / "blobs"
    print(f"\n== Bundles: {count} real wheels, {raw / 1e9:.2f} GB; best of {runs}, ours and the peer alternately")
    peer_out, out = work / "peer.tar.zst", work / "b.bundle"

    def clean(*paths: Path) -> Callable[[], None]:
        # Each timed run starts with the disk settled: the write-back of the run before is not its cost.
        def setup() -> None:
            for p in paths:
                p.unlink(missing_ok=True)
            os.sync()
        return setup

    # The aim's peer is zstd's default level (-3); the same level as ours (-1, zstd's --fast=1) is
    # printed too, so the like-for-like ratio is in the same run.
    peer_fast = work / "peer-fast.tar.zst"
    t_tar, _ = _best(runs, clean(peer_out), ["bash", "-c", f"tar -C {blob_root} -cf - . | zstd -q -T0 -3 -o {peer_out}"])
    print(f"tar -cf - | zstd -T0 -3                : {t_tar:6.2f} s  {peer_out.stat().st_size / 1e6:8.1f} MB")
    t_fast, _ = _best(runs, clean(peer_fast), ["bash", "-c", f"tar -C {blob_root} -cf - . | zstd -q -T0 --fast=1 -o {peer_fast}"])
    print(f"tar -cf - | zstd -T0 --fast=1          : {t_fast:6.2f} s  {peer_fast.stat().st_size / 1e6:8.1f} MB")
    peer_fast.unlink()
    t_create = t_level3 = 0.0
    for level in (-1, 3, 9):   # -1: our default
        t_c, c = _best(runs if level in (-1, 3) else 1, clean(out), mirror + [
            "bundle", "create", "--store", str(store), "--key", str(work / "k.key"), "-o", str(out), f"--level={level}",
            "--sequence", "1", "--force"])  # (the same bundle again each run: a reused sequence, on purpose)
        if c.returncode != 0:
            print("bundle create failed:", c.stderr[-300:])
            return
        size = out.stat().st_size
        same = {-1: f"  vs tar|zstd --fast=1: {t_c / t_fast:4.2f}x", 3: "  (the same level)"}.get(level, "")
        print(f"mirror bundle create --level {level:<2}{' (default)' if level == -1 else '          '}: {t_c:6.2f} s"
              f"  {size / 1e6:8.1f} MB  ({size / raw:.1%} of raw)  vs tar|zstd -3: {t_c / t_tar:4.2f}x{same}"
              + ("  (aim <= 1.5x)" if level == -1 else ""))
        if level == -1:
            t_create = t_c
            shutil.copy(out, work / "keep.bundle")
        elif level == 3:
            t_level3 = t_c
    out = work / "keep.bundle"
    t_ver, v = _best(runs, lambda: None, mirror + ["bundle", "verify", str(out), "--trust", str(work / "k.pub")])
    t_peer_ver, _ = _best(runs, lambda: None, ["bash", "-c", f"zstd -q -dc {peer_out} | tar -tf - > /dev/null"])
    t_mini, _ = timed(["minisign", "-Vqm", str(out), "-p", str(work / "k.pub")])
    print(f"mirror bundle verify (signature, every sha256): {t_ver:6.2f} s   zstd -dc | tar -t (no hashes): "
          f"{t_peer_ver:6.2f} s   ratio {t_ver / t_peer_ver:4.2f}x;  minisign -V of the file: {t_mini:5.2f} s"
          + ("" if v.returncode == 0 else "  VERIFY FAILED"))
    inside, peer_x = work / "inside", work / "peer-x"

    def fresh(path: Path) -> Callable[[], None]:
        def setup() -> None:
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
            os.sync()
        return setup

    t_peer_imp, _ = _best(runs, fresh(peer_x), ["bash", "-c", f"zstd -q -dc {peer_out} | tar -xf - -C {peer_x} &&"
                                                         f" find {peer_x} -type f -print0 | xargs -0 sha256sum > /dev/null"])
    t_imp, i = _best(runs, fresh(inside), mirror + ["bundle", "import", str(out), "--store", str(inside), "--trust",
                                                    str(work / "k.pub"), "--no-publish"])
    print(f"mirror bundle import (verify + ingest)  : {t_imp:6.2f} s   zstd -dc | tar -x, then sha256sum: {t_peer_imp:6.2f} s"
          f"   ratio {t_imp / t_peer_imp:4.2f}x  (aim <= 1.5x)" + ("" if i.returncode == 0 else "  IMPORT FAILED"))
    # Store health: mirror verify against sha256sum over the same blobs (page cache warm for both).
    t_sum, _ = _best(2, lambda: None, ["bash", "-c", f"find {blob_root} -type f -print0 | xargs -0 -P2 -n16 sha256sum > /dev/null"])
    t_v, vv = timed(mirror + ["verify", "--store", str(store)])
    print(f"mirror verify (every blob + catalog + snapshots): {t_v:6.2f} s   sha256sum (2 processes): {t_sum:6.2f} s"
          f"   ratio {t_v / t_sum:4.2f}x" + ("" if vv.returncode == 0 else "  VERIFY FAILED"))
    print(f"summary: create {t_create / t_tar:4.2f}x tar|zstd -3 (level 3 against level 3: {t_level3 / t_tar:4.2f}x),"
          f" import {t_imp / t_peer_imp:4.2f}x zstd|tar+sha256sum")
    # Memory bounded by design: each command's peak resident memory (its own process, from wait4).
    clean(out)()
    peaks = {"create": timed_peak(mirror + ["bundle", "create", "--store", str(store), "--key", str(work / "k.key"),
                                            "-o", str(out), "--sequence", "99", "--force"])[2],
             "verify": timed_peak(mirror + ["bundle", "verify", str(out), "--trust", str(work / "k.pub")])[2]}
    fresh(inside)()
    peaks["import"] = timed_peak(mirror + ["bundle", "import", str(out), "--store", str(inside), "--trust",
                                           str(work / "k.pub"), "--no-publish"])[2]
    print(f"peak memory for a {gigabytes:.1f} GB bundle: " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in peaks.items())
          + "  (aim <= 300 MiB whatever the size)")
    shutil.rmtree(work, ignore_errors=True)


# -- serving: our embedded server vs nginx (the same published tree) vs pypiserver (the same files) --

def _pypiserver() -> Path:
    """pypiserver with waitress (what its docs recommend over wsgiref), in its own venv under .bench/."""
    venv = ROOT / ".bench" / "pypiserver-venv"
    exe = venv / "bin" / "pypi-server"
    if not exe.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "--isolated", "-q", "--disable-pip-version-check",
                        "--index-url", "https://pypi.org/simple", "pypiserver", "waitress"], check=True, env=clean_env())
    return exe


def _load(base: str, projects: list[str], files: list[str], work: Path, *, requests: int = 3000,
          concurrency: int = 16, cacert: Path | None = None) -> tuple[float, float]:
    """(project pages per second, file MB per second), fetched by curl (C, so the client is not
    what is measured) with `concurrency` transfers at once over kept-alive connections."""
    def run(urls: list[str], name: str) -> tuple[float, int]:
        cfg = work / f"{name}.curl"
        cfg.write_text("".join(f'url = "{u}"\noutput = "/dev/null"\n' for u in urls))
        t0 = time.perf_counter()
        out = subprocess.run(["curl", "-s", "--fail", *(["--cacert", str(cacert)] if cacert else []),
                              "--parallel", "--parallel-max", str(concurrency), "--compressed",
                              "-H", "Accept: text/html", "-w", "%{size_download}\n", "-K", str(cfg)],
                             capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        if out.returncode != 0:
            raise SystemExit(f"curl against {base} failed: {out.stderr[-300:]}")
        return elapsed, sum(int(x) for x in out.stdout.split())

    run([f"{base}/simple/{p}/" for p in projects] * 4, "warm-up")  # every server gets the same warm-up
    t_pages, _ = run([f"{base}/simple/{projects[i % len(projects)]}/" for i in range(requests)], "pages")
    t_files, size = run(files * 3, "files")
    return requests / t_pages, size / 1e6 / t_files


_WRK_LUA = """
local paths = {%s}
local accept = "%s"
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% #paths) + 1], {["Accept"] = accept, ["Accept-Encoding"] = "gzip"})
end
"""


def _wrk(base: str, paths: list[str], work: Path, *, connections: int, accept: str = "*/*",
         seconds: int = 5) -> tuple[float, float, float]:
    """(requests/s, MB/s, p99 latency in ms) of `wrk` (C, keep-alive, 2 threads) fetching `paths` in
    turn with `connections` open at once: a server's rate, not a client's."""
    import re

    script = work / f"wrk-{abs(hash((base, connections, accept)))}.lua"
    script.write_text(_WRK_LUA % (", ".join(json.dumps(p) for p in paths), accept))
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency", "-s", str(script),
                          base], capture_output=True, text=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    size, unit = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out).groups()  # type: ignore[union-attr]
    mbs = float(size) * {"B": 1e-6, "KB": 1.024e-3, "MB": 1.048576, "GB": 1073.741824}[unit]
    p99, p99_unit = re.search(r"99%\s+([\d.]+)(\w+)", out).groups()  # type: ignore[union-attr]
    ms = float(p99) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[p99_unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk against {base}: {errors.group(1)} error responses")
    return rate, mbs, ms


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (granian's workers), in MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            total += int(next(line.split()[1] for line in open(f"/proc/{p}/status") if line.startswith("VmRSS:")))
            todo.extend(int(c) for t in os.listdir(f"/proc/{p}/task")
                        for c in open(f"/proc/{p}/task/{t}/children").read().split())
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024


def _wrk_table(label: str, servers: dict[str, tuple[str, int | None]], kinds: dict[str, tuple[list[str], str]],
               work: Path) -> dict[tuple[str, str, int], tuple[float, float, float]]:
    """wrk at 64 and 256 connections against each server for each kind of request; printed as a table."""
    out: dict[tuple[str, str, int], tuple[float, float, float]] = {}
    print(f"\n{label}: wrk, 2 threads, keep-alive, 5 s each; requests/s, MB/s, p99 ms")
    for name, (base, pid) in servers.items():
        before = _rss_mb(pid) if pid else 0.0
        for kind, (paths, accept) in kinds.items():
            if not paths:
                continue
            for conns in (64, 256):
                rate, mbs, p99 = out[(name, kind, conns)] = _wrk(base, paths, work, connections=conns, accept=accept)
                print(f"  {name:<14} {kind:<12} {conns:>3} conns: {rate:9.0f} req/s {mbs:8.1f} MB/s  p99 {p99:7.1f} ms")
        if pid:
            print(f"  {name:<14} RSS {before:.0f} MB before, {_rss_mb(pid):.0f} MB after the load (all its processes)")
    return out


def _wrk_ratios(results: dict[tuple[str, str, int], tuple[float, float, float]], peer: str, aims: str,
                ours: str = "mirror serve") -> None:
    label = "ours" if ours == "mirror serve" else ours
    for kind in sorted({k for _, k, _ in results}):
        for conns in (64, 256):
            o, p = results.get((ours, kind, conns)), results.get((peer, kind, conns))
            if o and p and not p[0]:
                print(f"  ratio {label} / {peer} {kind:<12} {conns:>3} conns: {peer} answered nothing within 5 s")
            elif o and p:
                print(f"  ratio {label} / {peer} {kind:<12} {conns:>3} conns: {o[0] / p[0]:4.2f}x req/s, p99 {o[2]:.1f} vs {p[2]:.1f} ms")
    if aims:
        print(f"  (aims: {aims})")


def _floor(tree: Path, port: int, tls: tuple[Path, Path] | None = None) -> subprocess.Popen[bytes]:
    """granian (the server `mirror serve` runs, as many workers) with scripts/floor_app.py: the least an
    RSGI app can do per request (see that file), so the serve tables show how much of the gap to nginx
    is granian's bridge and the interpreter's, and how much ours."""
    cmd = [str(ROOT / ".venv" / "bin" / "granian"), "--interface", "rsgi", "--workers", str(os.cpu_count() or 1),
           "--host", "127.0.0.1", "--port", str(port), "--backlog", "4096", "--no-log",
           "--working-dir", str(ROOT / "scripts"), "floor_app:app"]
    if tls is not None:
        cmd[-1:-1] = ["--ssl-certificate", str(tls[0]), "--ssl-keyfile", str(tls[1])]
    return subprocess.Popen(cmd, env={**clean_env(), "FLOOR_TREE": str(tree)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _floor_ratios(results: dict[tuple[str, str, int], tuple[float, float, float]]) -> None:
    """Ours against the floor, and the floor against nginx: what is left to us, and what is granian's."""
    _wrk_ratios(results, "granian floor", "")
    _wrk_ratios(results, "nginx", "", ours="granian floor")


def bench_serve(app: Path, python: str, platform: str) -> None:
    """Serving the same snapshot to the same client: page requests/s, file MB/s, and a real
    `uv pip install` of the app's lock into a fresh venv, from each server; all on 127.0.0.1."""
    from packaging.utils import canonicalize_name

    from tests.builders.nginx import Nginx, free_port, wait_until_listening, wait_until_serving

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    mirror = [str(ROOT / ".venv/bin/mirror")]
    store = work / "store"
    subprocess.run(mirror + ["sync", str(app), "--store", str(store), "--python", python, "--platform", platform,
                             "--installers", ""], check=True, capture_output=True, env=clean_env())
    subprocess.run(mirror + ["publish", "--store", str(store)], check=True, capture_output=True, env=clean_env())
    tree = (store / "published" / "current").resolve()
    snap = json.loads((store / "store-v1" / "snapshots" / (json.loads((tree / "snapshot.json").read_text())["id"] + ".json")).read_text())
    meta = snap["python"]["files"]
    projects = sorted({str(canonicalize_name(m["project"])) for m in meta.values()})
    rel = [f"packages/{sha[:2]}/{sha}/{m['filename']}" for sha, m in sorted(meta.items())]
    lock = next((tree / "locks").rglob("requirements.lock"))
    flat = work / "flat"  # pypiserver serves one folder of distribution files
    flat.mkdir()
    for r in rel:
        os.link(tree / r, flat / Path(r).name)

    servers: dict[str, tuple[subprocess.Popen, str, list[str]]] = {}
    port = free_port()
    servers["mirror serve"] = (subprocess.Popen(mirror + ["serve", "--store", str(store), "--port", str(port)],
                                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
                               f"http://127.0.0.1:{port}", rel)
    ngx = Nginx(store / "published", work / "nginx")
    servers["nginx"] = (ngx.proc, ngx.base, rel)
    port = free_port()
    servers["pypiserver"] = (subprocess.Popen([str(_pypiserver()), "run", "-i", "127.0.0.1", "-p", str(port),
                                               "--hash-algo", "sha256", str(flat)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
                             f"http://127.0.0.1:{port}", [f"packages/{Path(r).name}" for r in rel])
    results: dict[str, tuple[float, float, float, bool]] = {}
    uv = str(ROOT / ".venv" / "bin" / "uv")
    metadata = [f"/{r}.metadata" for sha, r in zip(sorted(meta), rel, strict=True) if meta[sha].get("metadata_sha256")]
    kinds = {"pages json": ([f"/simple/{p}/" for p in projects], "application/vnd.pypi.simple.v1+json"),
             "pages html": ([f"/simple/{p}/" for p in projects], "text/html"),
             "metadata": (metadata, "*/*"), "files": ([f"/{r}" for r in rel], "*/*")}
    try:
        for name, (proc, base, files) in servers.items():
            wait_until_serving(f"{base}/simple/{projects[0]}/", proc, name, tries=200)
            pages, mbs = _load(base, projects, [f"{base}/{f}" for f in files], work)
            venv = work / f"venv-{name.split()[0]}"
            subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=clean_env())
            t_install, inst = timed([uv, "pip", "install", "-q", "--no-cache", "--no-config", "--python", str(venv / "bin/python"),
                                     "--index-url", f"{base}/simple", "-r", str(lock)])
            results[name] = (pages, mbs, t_install, inst.returncode == 0)
            if inst.returncode != 0:
                print(f"{name}: uv pip install failed: {inst.stderr.strip()[-400:]}")
        if shutil.which("wrk"):
            floor_port = free_port()
            floor = _floor(tree, floor_port)
            try:
                wait_until_serving(f"http://127.0.0.1:{floor_port}/simple/{projects[0]}/", floor, "granian floor", tries=200)
                plain = _wrk_table("Served over HTTP", {"mirror serve": (servers["mirror serve"][1], servers["mirror serve"][0].pid),
                                                        "nginx": (servers["nginx"][1], servers["nginx"][0].pid),
                                                        "granian floor": (f"http://127.0.0.1:{floor_port}", floor.pid)}, kinds, work)
            finally:
                floor.terminate()
                floor.wait(timeout=10)
            _wrk_ratios(plain, "nginx", "pages >= 1.0x nginx, files >= 1.0x")
            _floor_ratios(plain)
            pypi_kinds = {"pages html": kinds["pages html"], "files": ([f"/packages/{Path(r).name}" for r in rel], "*/*")}
            _wrk_ratios(plain | _wrk_table("pypiserver (its own paths)", {"pypiserver": (servers["pypiserver"][1], None)},
                                           pypi_kinds, work), "pypiserver", "faster than pypiserver")
    finally:
        for proc, _, _ in servers.values():
            proc.terminate()
            proc.wait(timeout=10)
    print(f"\n== Serving {app.name}'s snapshot ({len(projects)} projects, {len(rel)} files) on 127.0.0.1 to curl, 16 transfers at once")
    for name, (pages, mbs, t_install, ok) in results.items():
        print(f"{name:<14} {pages:8.0f} pages/s   {mbs:7.0f} MB/s files   uv pip install of the lock: {t_install:5.2f} s"
              f"{'' if ok else '  INSTALL FAILED'}")
    ours = results["mirror serve"]
    for peer in ("nginx", "pypiserver"):
        p = results[peer]
        print(f"ratio ours / {peer}: pages {ours[0] / p[0]:4.2f}x, files {ours[1] / p[1]:4.2f}x, install time {p[2] / ours[2]:4.2f}x"
              + ("  (aim: pages >= 0.5x, files >= 0.8x)" if peer == "nginx" else ""))
    # The same over TLS (one throwaway CA and certificate for both), and 200 clients at once.
    from tests.builders.tls import ca_and_cert

    ca, cert, key = ca_and_cert(work / "tls")
    port = free_port()
    ours_tls = subprocess.Popen(mirror + ["serve", "--store", str(store), "--port", str(port), "--tls-cert", str(cert),
                                          "--tls-key", str(key)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ngx_tls = Nginx(store / "published", work / "nginx-tls", tls=(cert, key))
    tls_results = {}
    try:
        assert "serving" in (ours_tls.stdout.readline() if ours_tls.stdout else "")
        for name, base in (("mirror serve", f"https://127.0.0.1:{port}"), ("nginx", ngx_tls.base)):
            tls_results[name] = _load(base, projects, [f"{base}/{f}" for f in rel], work, cacert=ca)
        many = _load(f"https://127.0.0.1:{port}", projects, [f"https://127.0.0.1:{port}/{rel[0]}"], work, cacert=ca,
                     concurrency=200, requests=4000)
        if shutil.which("wrk"):
            floor_port = free_port()
            floor = _floor(tree, floor_port, (cert, key))
            try:
                wait_until_listening(floor_port, floor, "granian floor (TLS)", tries=200)
                tls = _wrk_table("Served over TLS (wrk does not check the certificate)",
                                 {"mirror serve": (f"https://127.0.0.1:{port}", ours_tls.pid), "nginx": (ngx_tls.base, ngx_tls.proc.pid),
                                  "granian floor": (f"https://127.0.0.1:{floor_port}", floor.pid)}, kinds, work)
            finally:
                floor.terminate()
                floor.wait(timeout=10)
            _wrk_ratios(tls, "nginx", "over TLS >= 0.9x nginx")
            _floor_ratios(tls)
    finally:
        ours_tls.terminate()
        ours_tls.wait(timeout=10)
        ngx_tls.stop()
    print("over TLS (TLS 1.3, the same certificate):")
    for name, (pages, mbs) in tls_results.items():
        print(f"{name:<14} {pages:8.0f} pages/s   {mbs:7.0f} MB/s files")
    o, n = tls_results["mirror serve"], tls_results["nginx"]
    print(f"ratio ours / nginx over TLS: pages {o[0] / n[0]:4.2f}x, files {o[1] / n[1]:4.2f}x")
    print(f"mirror serve, 200 TLS clients at once: {many[0]:.0f} pages/s, no error (curl --fail)")
    shutil.rmtree(work, ignore_errors=True)


def _scale_store(root: Path, projects: int, apps: int = 50) -> tuple[str, str, str]:
    """A store of `projects` projects (one small real wheel each, renamed copies of one built wheel's
    shape: distinct names and bytes, at PyPI's URLs) in `apps` apps, a second snapshot where one app
    changed one file and a third where another did too: (first snapshot, second, third), as three
    nightlies."""
    import hashlib
    import io
    import zipfile

    from airgap_mirror.store import Store

    store = Store(root).create()

    def wheel(name: str, version: str) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            dist = f"{name}-{version}.dist-info"
            meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
            zf.writestr(f"{name}/__init__.py", f"VERSION = {version!r}\n")
            zf.writestr(f"{dist}/METADATA", meta)
            zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
            zf.writestr(f"{dist}/RECORD", "")
        return buf.getvalue()

    def pypi_url(data: bytes, filename: str) -> str:
        """Where PyPI serves a file (its blake2b-256 path): the tree holds each file there too, and
        PyPI's JSON API for each release, as for a real store."""
        h = hashlib.blake2b(data, digest_size=32).hexdigest()
        return f"https://files.pythonhosted.org/packages/{h[:2]}/{h[2:4]}/{h[4:]}/{filename}"

    def doc(files: dict[str, dict], per_app: dict[str, list[str]]) -> dict:
        return {"format_version": 1, "kind": "airgap-mirror/snapshot", "targets": {"cp311-x": {"id": "cp311-x"}},
                "apps": {a: {"targets": {"cp311-x": {"files": sorted(s), "packages": []}}} for a, s in per_app.items()},
                "python": {"files": files, "installers": {}, "build": {}}}

    files: dict[str, dict] = {}
    per_app: dict[str, list[str]] = {f"app{i}": [] for i in range(apps)}
    for i in range(projects):
        name = f"proj{i:05d}"
        data = wheel(name, "1.0")
        sha = store.put_bytes(data)
        files[sha] = {"filename": f"{name}-1.0-py3-none-any.whl", "project": name, "version": "1.0", "kind": "wheel",
                      "size": len(data), "url": pypi_url(data, f"{name}-1.0-py3-none-any.whl"), "requires_python": None, "yanked": None, "upload_time": None,
                      "metadata_sha256": None}
        per_app[f"app{i % apps}"].append(sha)
    first = store.put_snapshot(doc(files, per_app), origin="sync")

    def upgrade(app: str) -> str:
        """The app's first project from 1.0 to 1.1, in a new snapshot."""
        old = per_app[app][0]
        name = files[old]["project"]
        data = wheel(name, "1.1")
        new = store.put_bytes(data)
        assert hashlib.sha256(data).hexdigest() == new
        files[new] = {**files.pop(old), "filename": f"{name}-1.1-py3-none-any.whl", "version": "1.1", "size": len(data),
                      "url": pypi_url(data, f"{name}-1.1-py3-none-any.whl")}
        per_app[app] = [s for s in per_app[app] if s != old] + [new]
        return store.put_snapshot(doc(files, per_app), origin="sync")

    return first, upgrade("app0"), upgrade("app1")


def bench_scale(sizes: list[int]) -> None:
    """How time and memory grow with the store: publish (cold, one app changed, nothing changed),
    serve (RSS, first request), verify, gc, diff and a delta bundle, on synthetic stores."""
    from tests.builders.nginx import free_port, wait_until_serving

    mirror = [str(ROOT / ".venv/bin/mirror")]
    rows: list[tuple[int, dict[str, tuple[float, int]]]] = []
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix=f"bench-scale-{n}-"))
        store = work / "store"
        first, second, third = _scale_store(store, n)
        from airgap_mirror.store import Store

        def run(*args: str, store: Path = store) -> tuple[float, subprocess.CompletedProcess[str], int]:
            return timed_peak(mirror + list(args) + ["--store", str(store)])

        r: dict[str, tuple[float, int]] = {}
        Store(store).set_ref("current", first)
        t, _, m = run("publish")
        r["publish (cold)"] = (t, m)
        timed(mirror + ["keygen", "--out", str(work / "k")])
        # Yesterday's full bundle: its SBOM is kept, so today's delta builds the SBOM from it.
        t, _, m = timed_peak(mirror + ["bundle", "create", "--store", str(store), "--key", str(work / "k.key"),
                                       "-o", str(work / "full.bundle")])
        r["bundle create (full)"] = (t, m)
        # From first's tree to second's: the first time with one tree only (built whole, its unchanged
        # pages linked), then as every nightly after: the tree before the current one (two nightlies
        # old: two apps changed since) mended, the three snapshots in turn (best of 3: this machine's
        # disk is noisy).
        Store(store).set_ref("current", second)
        r["publish (one app changed, whole)"] = run("publish")[::2]
        best: tuple[float, int] | None = None
        for snapshot in (third, first, second):
            Store(store).set_ref("current", snapshot)
            t, c, m = run("publish", "--json")
            assert c.returncode == 0, c.stderr[-2000:]
            done = json.loads(c.stdout)
            assert done["built"] == "mended" and done["files_in"] in (1, 2), done  # (the two nightlies' changes)
            best = min(best or (t, m), (t, m))
        r["publish (one app changed)"] = best or (0.0, 0)  # (mended: the tree two nightlies old)
        t, _, m = run("publish")
        r["publish (no change)"] = (t, m)
        t, _, m = run("verify")
        r["verify"] = (t, m)
        t, _, m = run("diff", first, second)
        r["diff"] = (t, m)
        t, _, m = timed_peak(mirror + ["bundle", "create", "--store", str(store), "--key", str(work / "k.key"),
                                       "--since", first, "-o", str(work / "d.bundle")])
        r["bundle create --since"] = (t, m)
        t, _, m = run("gc", "--keep", "1", "--dry-run")
        r["gc --dry-run"] = (t, m)
        port = free_port()
        server = subprocess.Popen(mirror + ["serve", "--store", str(store), "--port", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_serving(f"http://127.0.0.1:{port}/simple/proj00001/", server, "mirror serve", tries=300)
            t0 = time.perf_counter()
            subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/simple/proj{n - 1:05d}/"], check=True)
            r["serve: a page"] = (time.perf_counter() - t0, int(_rss_mb(server.pid) * 2**20))
        finally:
            server.terminate()
            server.wait(timeout=10)
        rows.append((n, r))
        shutil.rmtree(work, ignore_errors=True)
    print("\n== Scale: synthetic stores (one small wheel per project, 50 apps); seconds and peak MiB")
    ops = list(rows[0][1])
    print(f"{'':28}" + "".join(f"{n:>14,} projects" for n, _ in rows))
    for op in ops:
        print(f"{op:28}" + "".join(f"{r[op][0]:11.2f} s {r[op][1] / 2**20:6.0f} MiB" for _, r in rows))
    if len(rows) > 1:
        lo, hi = rows[0], rows[-1]
        for op in ("publish (one app changed)", "publish (no change)"):  # (the nightly's: the tree before mended)
            print(f"growth of {op} from {lo[0]:,} to {hi[0]:,} projects: {hi[1][op][0] / lo[1][op][0]:4.1f}x  (aim: within 2x)")


def bench_corpus(apps_dir: Path, exclude: str, python: str, platform: str) -> None:
    """The nightly case: a cold sync of the whole corpus vs the no-op resync that follows it; then
    `mirror verify` over that store vs sha256sum over the same blobs."""
    apps = _corpus_apps(apps_dir, exclude)
    work = Path(tempfile.mkdtemp(prefix="bench-corpus-"))
    mirror = [str(ROOT / ".venv/bin/mirror")]
    # --no-conda: pip and APT are what this section times (conda channels are unreachable from the build machine).
    sync = mirror + ["sync", *map(str, apps), "--no-conda", "--store", str(work / "store"), "--python", python,
                     "--platform", platform, "--json"]
    t_cold, c, mem_cold = timed_peak(sync)
    t_noop, n, mem_noop = timed_peak(sync)
    summary = json.loads(c.stdout) if c.stdout.startswith("{") else {}
    again = json.loads(n.stdout) if n.stdout.startswith("{") else {}
    ok = sum(1 for a in summary.get("apps", []) if a["ok"])
    print(f"\n== Corpus: {len(apps)} apps (excluded: {exclude or 'none'}) for cp{python.replace('.', '')}-{platform}")
    print(f"mirror sync cold:   {t_cold:8.1f} s  {ok}/{len(apps)} apps ok, {summary.get('files', {}).get('total', 0)} files")
    print(f"mirror sync no-op:  {t_noop:8.1f} s  same snapshot: {again.get('snapshot') == summary.get('snapshot')}, "
          f"fetched {again.get('files', {}).get('fetched')}, resolutions {again.get('resolutions')}")
    print(f"ratio no-op / cold: {100 * t_noop / t_cold:5.1f}%  (aim < 3%)")
    print(f"peak memory: cold {mem_cold / 2**20:.0f} MiB, no-op {mem_noop / 2**20:.0f} MiB  (aim < 1024 MiB)")
    if PROFILE:
        _print_profile("corpus cold", c, t_cold)
        _print_profile("corpus no-op", n, t_noop)
    blobs = [str(p) for p in (work / "store" / "store-v1" / "blobs").rglob("*") if p.is_file()]
    size = sum(os.path.getsize(b) for b in blobs)
    t_verify, v = timed(mirror + ["verify", "--store", str(work / "store")])
    t_sum, _ = timed(["sh", "-c", f"xargs -0 -P {os.cpu_count() or 2} -n 64 sha256sum > /dev/null"],
                     input="\0".join(blobs))
    print(f"mirror verify ({len(blobs)} blobs, {size / 1e9:.2f} GB): {t_verify:6.2f} s  {'ok' if v.returncode == 0 else 'FAILED'}")
    print(f"sha256sum (xargs -P {os.cpu_count() or 2}) over the same blobs:      {t_sum:6.2f} s")
    print(f"ratio mirror verify / sha256sum: {t_verify / t_sum:5.2f}x  (aim <= 1.2x)")
    shutil.rmtree(work, ignore_errors=True)


def _corpus_apps(apps_dir: Path, exclude: str) -> list[Path]:
    import re

    pattern = re.compile(exclude) if exclude else None
    return [a for a in sorted(apps_dir.iterdir()) if a.is_dir() and not (pattern and (
        pattern.search(a.name) or any(pattern.search(f.read_text(errors="replace")) for f in a.glob("*requirements*.txt"))))]


def bench_publish(apps_dir: Path, exclude: str, python: str, platform: str, toggled: str) -> None:
    """The corpus tree to a real S3-compatible server (SeaweedFS on 127.0.0.1): `mirror publish --to`
    vs `rclone sync` (Debian's rclone) of the same tree to the same server, cold, and after one app
    changed. Both start from the published tree (`mirror publish` builds it; that step is not timed).
    The corpus store is kept in .cache/bench/corpus-store between runs (the first run syncs it)."""
    from tests.builders.seaweed import SeaweedFS

    if not shutil.which("rclone"):
        print("\n== Publish: rclone is missing (apt-get install rclone); skipped")
        return
    apps = _corpus_apps(apps_dir, exclude)
    changed = next((a for a in apps if a.name == toggled), apps[-1])
    store = ROOT / ".cache" / "bench" / "corpus-store"
    mirror = [str(ROOT / ".venv/bin/mirror")]

    def sync(app_list: list[Path]) -> str:
        proc = subprocess.run(mirror + ["sync", *map(str, app_list), "--no-conda", "--store", str(store), "--python", python,
                                        "--platform", platform, "--json"], capture_output=True, text=True, env=clean_env())
        subprocess.run(mirror + ["publish", "--store", str(store), "--local-only"], check=True, capture_output=True,
                       env=clean_env())
        return json.loads(proc.stdout)["snapshot"] if proc.stdout.startswith("{") else "?"

    before = sync([a for a in apps if a != changed])
    tree = (store / "published" / "current").resolve()
    files = [p for p in tree.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    # Every file read once before the first timed run: whichever tool is timed first would otherwise
    # read the tree from disk and leave it cached for the other (one run: ours 61.7 s from disk,
    # rclone 40.2 s after it; the next, both from the cache: ours 34.9 s, rclone 39.9 s).
    for path in files:
        with open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass
    work = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    with SeaweedFS(work / "weed") as s3:
        s3.bucket("bench")
        env = {k: v for k, v in clean_env().items() if not k.startswith("AWS_")}
        env.update(s3.env(), AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        rclone_env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        rclone_env.update(RCLONE_CONFIG_W_TYPE="s3", RCLONE_CONFIG_W_PROVIDER="SeaweedFS",
                          RCLONE_CONFIG_W_ACCESS_KEY_ID=s3.access_key, RCLONE_CONFIG_W_SECRET_ACCESS_KEY=s3.secret_key,
                          RCLONE_CONFIG_W_ENDPOINT=s3.endpoint)
        # The same objects for both: the precompressed page siblings are for file servers, not buckets.
        skip = ["--exclude", "simple/**.gz", "--exclude", "/find-links.html.gz"]

        def settle() -> None:
            """Each run starts with no dirty pages of the one before (the disk, not the tool, would be timed)."""
            os.sync()
            time.sleep(2)

        def ours(prefix: str) -> tuple[float, dict]:
            settle()
            t0 = time.perf_counter()
            proc = subprocess.run(mirror + ["publish", "--store", str(store), "--to", f"s3://bench/{prefix}", "--json"],
                                  capture_output=True, text=True, env=env)
            took = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(f"mirror publish --to failed: {proc.stderr[-2000:]}")
            return took, json.loads(proc.stdout)["buckets"][0]

        def rclone(prefix: str, *flags: str) -> float:
            settle()
            t0 = time.perf_counter()
            subprocess.run(["rclone", "sync", "-L", str((store / "published" / "current").resolve()), f"w:bench/{prefix}",
                            *skip, *flags], check=True, capture_output=True, env=rclone_env)
            return time.perf_counter() - t0

        matched = ["--transfers", "32", "--checkers", "32"]  # our --jobs default
        t_ours, cold = ours("ours")
        t_rc = rclone("rclone", *matched)
        t_rcd = rclone("rclone-defaults")
        print(f"\n== Publish: the corpus tree ({len(apps)} apps, {len(files)} files, {size / 1e9:.2f} GB) to SeaweedFS on 127.0.0.1")
        print(f"cold   mirror publish --to:               {t_ours:7.2f} s  ({cold['uploaded']} objects, upload {cold['seconds']:.2f} s)")
        print(f"cold   rclone sync --transfers/checkers 32: {t_rc:6.2f} s")
        print(f"cold   rclone sync (its defaults: 4/8):   {t_rcd:7.2f} s")
        print(f"ratio cold ours / rclone: {t_ours / t_rc:4.2f}x at the same concurrency (aim <= 1.2x), {t_ours / t_rcd:4.2f}x vs its defaults")

        after = sync(apps)
        t_ours2, upd = ours("ours")
        t_rc2 = rclone("rclone", *matched)
        t_rcd2 = rclone("rclone-defaults")
        print(f"one app changed ({changed.name} added; snapshot {before[:12]} -> {after[:12]}):")
        print(f"update mirror publish --to:               {t_ours2:7.2f} s  ({upd['uploaded']} objects, "
              f"{upd['uploaded_bytes'] / 1e6:.1f} MB sent, upload {upd['seconds']:.2f} s: "
              + ", ".join(f"{k} {v:.2f}" for k, v in upd["stages"].items() if v >= 0.01) + ")")
        print(f"update rclone sync --transfers/checkers 32: {t_rc2:6.2f} s")
        print(f"update rclone sync (its defaults):        {t_rcd2:7.2f} s")
        print(f"ratio update rclone / ours: {t_rc2 / t_ours2:4.1f}x faster at the same concurrency (aim >= 5x), "
              f"{t_rcd2 / t_ours2:4.1f}x vs its defaults")
        t_noop, noop = ours("ours")
        t_rc3 = rclone("rclone", *matched)
        print(f"no change: mirror publish --to {t_noop:.2f} s ({noop['uploaded']} objects), rclone sync {t_rc3:.2f} s")
    shutil.rmtree(work, ignore_errors=True)


# A data app as written in 2026 (unpinned, locked now): its files are what a site carries, hundreds of
# MB, where the dash app's 51 MB is mostly start-up and lock reading against curl.
DATA_APP = ["dash", "pandas", "scikit-learn", "pyarrow", "polars", "gunicorn"]


def bench_locked(app: Path, python: str, platform: str) -> None:
    """Lock apps (uv.lock made now by the real uv): nothing to resolve, so each one's cold sync against
    curl --parallel fetching the same files (aim: within 1.2x). The app's requirements.txt, and a
    larger data app."""
    reqs = [ln.split("#")[0].strip() for ln in (app / "requirements.txt").read_text().splitlines()]
    work = Path(tempfile.mkdtemp(prefix="bench-locked-"))
    try:
        for name, deps in ((f"{app.name}'s requirements", [r for r in reqs if r and not r.startswith("-")]),
                           ("a data app (" + ", ".join(DATA_APP) + ")", DATA_APP)):
            _bench_locked_one(work / str(len(list(work.iterdir()))), name, deps, python, platform)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _bench_locked_one(work: Path, name: str, reqs: list[str], python: str, platform: str) -> None:
    from airgap_mirror.resolve import uv_binary
    from airgap_mirror.store import Store

    locked = work / "apps" / "locked-uv"
    locked.mkdir(parents=True)
    (locked / "pyproject.toml").write_text(
        f'[project]\nname = "locked-bench"\nversion = "0.1"\nrequires-python = ">={python}"\n'
        f"dependencies = {json.dumps(reqs)}\n[tool.uv]\npackage = false\n")
    (locked / ".python-version").write_text(python + "\n")
    made = subprocess.run([uv_binary(), "lock", "--no-config", "--default-index", "https://pypi.org/simple", "-q"],
                          cwd=locked, env=clean_env(), capture_output=True, text=True)
    if made.returncode != 0:
        print("uv lock failed:", made.stderr[-300:])
        return
    mirror = [str(ROOT / ".venv/bin/mirror")]
    results = []
    for i in range(RUNS):
        store = work / f"store-{i}"
        t, c = timed(mirror + ["sync", str(locked), "--store", str(store), "--platform", platform, "--installers", "", "--json"])
        if c.returncode != 0:
            print("sync failed:", c.stdout[-300:], c.stderr[-300:])
            return
        st = Store(store)
        urls = [f.url for f in st.snapshot(st.ref("current") or "").python.files.values() if f.url]
        dest = work / f"curl-{i}"
        dest.mkdir()
        config = work / f"curl-{i}.cfg"
        config.write_text("".join(f'url = "{u}"\noutput = "{dest / str(n)}"\n' for n, u in enumerate(urls)))
        t_curl, cc = timed(["curl", "-sSf", "--parallel", "--parallel-max", "16", "-K", str(config)])
        if cc.returncode != 0:
            print("curl failed:", cc.stderr[-300:])
            return
        results.append((t, t_curl, len(urls), sum(p.stat().st_size for p in dest.iterdir())))
        shutil.rmtree(store)
        shutil.rmtree(dest)
    t, t_curl, n, size = min(results)
    best_curl = min(r[1] for r in results)
    print(f"locked app: {name} as uv.lock, {n} files, {size / 1e6:.1f} MB, best of {RUNS}:")
    print(f"mirror sync cold                       : {t:6.2f} s")
    print(f"curl --parallel 16 of the same files    : {best_curl:6.2f} s")
    print(f"ratio ours / curl                       : {t / best_curl:5.2f}x  (aim: 1.2x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("sections", nargs="*", default=["python", "apt", "bundle", "serve"],
                    help="python, apt, bundle, serve, locked (two uv.lock apps, 51 and 209 MB, against curl); scale (synthetic stores of 1k, 5k, 20k projects); "
                         "corpus (the whole corpus cold and no-op, and verify: long); "
                         "publish (the corpus tree to SeaweedFS vs rclone: long, needs rclone)")
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared/corpus/apps")
    ap.add_argument("--corpus-exclude", default="torch|tensorflow", help="regex of apps to leave out ('' for none)")
    ap.add_argument("--apt-app", default=str(ROOT.parent / "shared/corpus/apps/apt-facture-tess"),
                    help="app folder with an Aptfile")
    ap.add_argument("--app", type=Path, default=ROOT / "examples" / "dash-app")
    ap.add_argument("--wheels", type=Path, action="append",
                    help="folder of real wheels for the bundle section (repeatable) [default: /opt/pypi/files, /opt/pypi-more/files]")
    ap.add_argument("--bundle-gb", type=float, default=1.1, help="how many GB of wheels the bundle section packs")
    ap.add_argument("--python", default="3.11")
    ap.add_argument("--platform", default="manylinux_2_28_x86_64")
    ap.add_argument("--toggled-app", default="dsa-datashader", help="publish: the app whose addition is the update")
    ap.add_argument("--profile", action="store_true", help="print where each sync's seconds go, phase by phase")
    args = ap.parse_args()
    global PROFILE
    PROFILE = args.profile
    args.wheels = args.wheels or [Path("/opt/pypi/files"), Path("/opt/pypi-more/files")]
    # Our modules byte-compiled, as an installed wheel's are (pip compiles them at install): from a
    # checkout under PYTHONDONTWRITEBYTECODE every command would otherwise compile them anew (~0.1 s).
    subprocess.run([str(ROOT / ".venv/bin/python"), "-m", "compileall", "-q", "mirror", "apt", "bundles"],
                   cwd=ROOT, check=False, stdout=subprocess.DEVNULL)
    if "apt" in args.sections:
        bench_apt(Path(args.apt_app), "bookworm", "amd64")
    if "bundle" in args.sections:
        bench_bundle(args.wheels, args.bundle_gb)
    if "python" in args.sections:
        bench_python(args.app, args.python, args.platform)
    if "locked" in args.sections:
        bench_locked(args.app, args.python, args.platform)
    if "serve" in args.sections:
        bench_serve(args.app, args.python, args.platform)
    if "publish" in args.sections:
        bench_publish(args.corpus, args.corpus_exclude, args.python, args.platform, args.toggled_app)
    if "scale" in args.sections:
        bench_scale([1000, 5000, 20000])
    if "corpus" in args.sections:
        bench_corpus(args.corpus, args.corpus_exclude, args.python, args.platform)


if __name__ == "__main__":
    main()
