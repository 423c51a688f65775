"""A command loads what it uses: every nightly and every script pays a command's start-up, so the
heavy libraries (pydantic through typer >= 0.29, the server, the SBOM library, the HTTP client, rich's progress bars)
stay out of a command that does not need them; with --json nothing is printed through rich, so rich
stays out too, and TOML is read only when there is a mirror.toml."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.builders.upstreams import clean_env

HEAVY = ("pydantic", "granian", "cyclonedx", "httpx", "prometheus_client", "bcrypt", "debian", "rich.progress", "yaml",
         "rich.console", "rich.markup", "tomllib", "html.parser", "packaging.pylock")


def test_a_simple_command_imports_no_heavy_library(tmp_path):
    from airgap_mirror.store import Store

    Store(tmp_path / "s").create()
    code = ("import sys, json; sys.argv = ['mirror', 'snapshots', '--store', sys.argv[1], '--json'];"
            "from airgap_mirror.cli import run\ntry:\n    run()\nexcept SystemExit:\n    pass\n"
            f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True,
                          env=clean_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert loaded == [], f"`mirror snapshots` imported {loaded}"


def test_the_command_leaves_with_its_status_its_output_and_its_exit_handlers(tmp_path):
    """`mirror` ends without the interpreter's teardown (see airgap_mirror.cli._leave): still with the
    command's exit status, all it wrote to a pipe, and the atexit handlers run."""
    from airgap_mirror.store import Store

    store = tmp_path / "s"
    Store(store).create()
    mark = tmp_path / "atexit-ran"
    code = ("import atexit, pathlib, sys; from airgap_mirror.cli import main;"
            f"atexit.register(pathlib.Path({str(mark)!r}).touch); sys.argv = ['mirror', *sys.argv[1:]]; main();"
            "print('not reached')")

    def mirror(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=clean_env(),
                              timeout=60)

    ok = mirror("snapshots", "--store", str(store), "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == [] and "not reached" not in ok.stdout
    assert mark.exists()
    mark.unlink()
    assert mirror("snapshots", "--store", str(tmp_path / "none")).returncode == 6   # no store
    assert mark.exists()
    assert mirror("snapshots", "--no-such-flag").returncode == 2                   # usage
    helped = mirror("--help")
    assert helped.returncode == 0 and "sync" in helped.stdout


def test_a_command_alone_is_the_command_of_the_whole_command_line():
    """`mirror NAME ...` builds only NAME's command (airgap_mirror.cli._this_command): the same options,
    the plug-ins' included, as in the whole command line; a name that is no command still gets the
    whole line's suggestion."""
    def mirror(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "airgap_mirror.cli", *args], capture_output=True, text=True,
                              env={**clean_env(), "COLUMNS": "200"}, timeout=60)

    synced = mirror("sync", "--help")
    assert synced.returncode == 0 and " sync [OPTIONS]" in synced.stdout
    assert "--distro" in synced.stdout and "--concurrency" in synced.stdout  # the APT plug-in's and the core's
    bundle = mirror("bundle", "--help")
    assert bundle.returncode == 0 and " bundle [OPTIONS] COMMAND" in bundle.stdout and "create" in bundle.stdout
    whole = mirror("--help")
    assert whole.returncode == 0 and all(name in whole.stdout for name in ("sync", "bundle", "snapshots", "serve"))
    typo = mirror("syncc")
    assert typo.returncode == 2 and "Did you mean 'sync'" in typo.stderr


def test_a_sync_starts_uv_before_it_loads_what_only_follows_uv(apps, upstream, tmp_path):
    """uv is the long pole of a cold sync: the CLI goes to it first. The HTTP client (for the pages
    and files that uv names) and the readers of wheels and git / local packages (for what lands, and
    for apps that name such packages) are loaded once uv runs, beside it, not on the way to it: at
    the moment the real uv is started, none of them is loaded (the same sync then finishes)."""
    later = ("httpx", "httpcore", "airgap_mirror.store.distinfo", "airgap_mirror.apps.direct", "packaging.pylock")
    seen = tmp_path / "loaded-when-uv-started.json"
    code = ("import json, os, sys\n"
            "out = sys.argv[1]\n"
            "def hook(event, args):\n"
            "    if event == 'subprocess.Popen' and os.path.basename(str(args[1][0])) == 'uv' and not os.path.exists(out):\n"
            f"        open(out, 'w').write(json.dumps(sorted(m for m in {later!r} if m in sys.modules)))\n"
            "sys.addaudithook(hook)\n"
            "sys.argv = ['mirror', *sys.argv[2:]]\n"
            "from airgap_mirror.cli import main\n"
            "main()\n")
    proc = subprocess.run([sys.executable, "-c", code, str(seen), "sync", str(apps / "shop"), "--store", str(tmp_path / "s"),
                           "--python", "3.11", "--platform", "manylinux_2_28_x86_64", "--index-url", upstream.url + "/simple",
                           "--installers", "", "--json"], capture_output=True, text=True, env=clean_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files"]["fetched"] > 0
    assert json.loads(seen.read_text()) == [], "loaded on the way to uv"
