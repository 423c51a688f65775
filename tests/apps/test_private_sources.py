"""Private code reaches the gap: a private index behind credentials, git repositories, the app's own files.

Offline: the private index is a basic-auth server on 127.0.0.1, git is served from a local
repository through git+file:// and through git's smart HTTP behind basic auth. Each app is synced,
published, served, and then installed by real pip from our index alone in a fresh virtualenv.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import make_project, make_sdist, make_wheel
from tests.builders.cli import Served
from tests.builders.upstreams import GIT_TOKEN, PRIVATE_PASSWORD, PRIVATE_USER, X86, clean_env

MIRROR = [sys.executable, "-m", "airgap_mirror.cli"]
PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
TARGET = f"cp{sys.version_info[0]}{sys.version_info[1]}-{X86}"
SECRETS = (PRIVATE_USER, PRIVATE_PASSWORD, GIT_TOKEN)


class Outputs:
    """Every line the tool printed during a test, to grep for secrets."""

    def __init__(self) -> None:
        self.text: list[str] = []

    def run(self, *args: object, env: dict[str, str] | None = None, check: bool = True,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*MIRROR, *map(str, args)], capture_output=True, text=True, env=clean_env(**(env or {})),
                              cwd=cwd)
        self.text += [proc.stdout, proc.stderr]
        if check and proc.returncode != 0:
            raise AssertionError(f"mirror {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc


def _sync(out: Outputs, store: Path, upstream, *apps: Path, env: dict[str, str] | None = None, check: bool = True,
          extra: tuple[str, ...] = ()) -> dict:
    proc = out.run("sync", *apps, "--store", store, "--python", PY, "--platform", X86,
                   "--index-url", upstream.url + "/simple", "--installers", "", "--json", *extra, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"sync exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout)


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, env=clean_env())
    return path


def _pip_install_lock(out: Outputs, store: Path, app: Path, served: Served, tmp: Path) -> Path:
    lock = tmp / f"{app.name}.lock"
    out.run("lock", app, "--store", store, "--python", PY, "-o", lock)
    venv = _venv(tmp / f"venv-{app.name}")
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--isolated", "--no-cache-dir", "--require-hashes", "--retries", "0",
         "-r", str(lock), "--index-url", served.simple],
        capture_output=True, text=True, env=clean_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv


def _py(venv: Path, code: str) -> str:
    return subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True,
                          env=clean_env()).stdout.strip()


def _grep_secrets(root: Path, out: Outputs) -> list[str]:
    """Files under `root` (and printed text) holding any secret value; zstd bundles are read decompressed."""
    import zstandard

    found = []
    for p in root.rglob("*"):
        if not p.is_file() or p.is_symlink():
            continue
        data = p.read_bytes()
        if p.name.endswith(".zst") or ".mbundle" in p.name or data[:4] == b"\x28\xb5\x2f\xfd":
            try:
                data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
            except zstandard.ZstdError:
                pass
        found += [f"{p}: {s}" for s in SECRETS if s.encode() in data]
    found += [f"output: {s}" for s in SECRETS for t in out.text if s in t]
    return found


# -- A private index with ${VAR} credentials ---------------------------------------------------------


def _private_app(root: Path, private_index, *, name: str = "billing") -> Path:
    app = root / "apps" / name
    app.mkdir(parents=True)
    port = private_index.url.rsplit(":", 1)[1]
    (app / "requirements.txt").write_text(
        f"--extra-index-url http://${{PRIV_USER}}:${{PRIV_PASSWORD}}@127.0.0.1:{port}/simple\nprivpkg==1.0\n")
    return app


def test_private_index_app_installs_from_mirror_alone_and_no_secret_is_kept(upstream, private_index, tmp_path):
    out = Outputs()
    work = tmp_path / "work"
    app = _private_app(work, private_index)
    store = work / "store"
    env = {"PRIV_USER": PRIVATE_USER, "PRIV_PASSWORD": PRIVATE_PASSWORD}
    summary = _sync(out, store, upstream, app, env=env)
    (result,) = summary["apps"]
    assert result["ok"], result
    assert any(private_index.seen_auth), "the private index was never asked with credentials"
    # sharedname: private index first (first-index), the public index has other files under that name.
    assert any("dependency confusion" in w and "sharedname" in w for w in result["warnings"]), result["warnings"]
    out.run("publish", "--store", store)
    served = Served(store)
    try:
        venv = _pip_install_lock(out, store, app, served, work)
        assert _py(venv, "import privpkg, beta, sharedname; print(sharedname.ORIGIN)") == "private"

        # The app unchanged, with only PIP_INDEX_URL set and the private index gone: pip warns about the
        # unreachable index in requirements.txt and installs everything from the mirror.
        private_index.stop()
        venv2 = _venv(work / "venv-unchanged")
        proc = subprocess.run([str(venv2 / "bin" / "pip"), "install", "--no-cache-dir", "--retries", "0",
                               "-r", str(app / "requirements.txt")],
                              capture_output=True, text=True, env=clean_env(PIP_INDEX_URL=served.simple))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert _py(venv2, "import privpkg; print(privpkg.__version__)") == "1.0"
    finally:
        served.stop()

    # A bundle of it, too.
    out.run("keygen", "--out", work / "key")
    out.run("bundle", "create", "--store", store, "--key", work / "key.key", "--out", work / "full.mbundle")
    assert list(work.glob("full.mbundle*")), "no bundle written"
    assert _grep_secrets(work, out) == []
    # The snapshot records the file URLs without credentials (and not the ${VAR} template either).
    catalog = (store / "store-v1" / "snapshots")
    text = "".join(p.read_text() for p in catalog.glob("*.json"))
    assert f"http://127.0.0.1:{private_index.url.rsplit(':', 1)[1]}/files/privpkg-1.0-py3-none-any.whl" in text


def test_missing_variable_is_named_with_its_line(upstream, private_index, tmp_path):
    out = Outputs()
    app = _private_app(tmp_path, private_index)
    summary = _sync(out, tmp_path / "store", upstream, app, env={"PRIV_USER": PRIVATE_USER}, check=False)
    (result,) = summary["apps"]
    assert not result["ok"]
    assert f"{app / 'requirements.txt'}:1" in result["error"]
    assert "PRIV_PASSWORD" in result["error"] and "not set" in result["error"]
    assert PRIVATE_USER not in result["error"]
    assert not any(private_index.seen_auth)


def test_dependency_confusion_strict_fails_the_app(upstream, private_index, tmp_path):
    out = Outputs()
    app = _private_app(tmp_path, private_index)
    env = {"PRIV_USER": PRIVATE_USER, "PRIV_PASSWORD": PRIVATE_PASSWORD}
    summary = _sync(out, tmp_path / "store", upstream, app, env=env, check=False, extra=("--strict",))
    (result,) = summary["apps"]
    assert not result["ok"]
    assert "sharedname" in result["error"] and "dependency confusion" in result["error"]
    assert "privpkg " not in result["error"]  # only on the private index: no warning
    assert upstream.url + "/simple" in result["error"]


def test_literal_password_in_requirements_is_refused(tmp_path):
    from airgap_mirror.apps.reqfile import parse_requirements_file
    from airgap_mirror.errors import RequirementsError

    f = tmp_path / "requirements.txt"
    f.write_text("--extra-index-url https://bob:hunter2hunter2@pkgs.example.invalid/simple\nx\n")
    with pytest.raises(RequirementsError) as info:
        parse_requirements_file(f)
    assert str(info.value).startswith(f"{f}:1: ")
    assert "${" in str(info.value) and "hunter2hunter2" not in str(info.value)


# -- git -----------------------------------------------------------------------------------------------


def test_git_dependencies_by_tag_branch_commit_file_and_smart_http(upstream, git_repo, git_http, tmp_path):
    out = Outputs()
    apps = tmp_path / "apps"
    port = git_http.url.rsplit(":", 1)[1]
    tagged = apps / "tagged"
    tagged.mkdir(parents=True)
    (tagged / "requirements.txt").write_text(
        f"gitpkg @ git+file://{git_repo.path}@v1.0\n"
        f"git+file://{git_repo.path}@main#egg=gitsub&subdirectory=sub\n")
    over_http = apps / "over-http"
    over_http.mkdir()
    (over_http / "private-requirements.txt").write_text(
        f"git+http://git-user:${{GIT_TOKEN}}@127.0.0.1:{port}/gitpkg.git@main#egg=gitpkg\n")
    pinned = apps / "pinned"
    pinned.mkdir()
    (pinned / "requirements.txt").write_text(f"gitpkg @ git+file://{git_repo.path}@{git_repo.commits['1.0']}\n")
    store = tmp_path / "store"
    env = {"GIT_TOKEN": GIT_TOKEN}

    summary = _sync(out, store, upstream, tagged, over_http, pinned, env=env)
    assert all(a["ok"] for a in summary["apps"]), summary["apps"]
    snap = json.loads((store / "store-v1" / "snapshots" / f"{summary['snapshot']}.json").read_text())
    directs = {name: {d["project"]: (d["version"], d["commit"]) for d in snap["apps"][name]["direct"]}
               for name in ("tagged", "over-http", "pinned")}
    assert directs["tagged"] == {"gitpkg": ("1.0", git_repo.commits["1.0"]), "gitsub": ("1.1", git_repo.commits["1.1"])}
    assert directs["over-http"] == {"gitpkg": ("1.1", git_repo.commits["1.1"])}
    assert directs["pinned"] == {"gitpkg": ("1.0", git_repo.commits["1.0"])}

    out.run("publish", "--store", store)
    served = Served(store)
    try:
        for app, want in ((tagged, "git 1.0 sub 1.1"), (over_http, "git 1.1"), (pinned, "git 1.0")):
            venv = _pip_install_lock(out, store, app, served, tmp_path)
            code = "import gitpkg, beta; r = [gitpkg.FROM]\ntry:\n import gitsub; r.append(gitsub.FROM)\nexcept ImportError: pass\nprint(' '.join(r))"
            assert _py(venv, code) == want
    finally:
        served.stop()

    # The branch moves: the next sync records the new commit; tags and the commit pin stay.
    git_repo.move_main("1.2")
    again = _sync(out, store, upstream, tagged, over_http, pinned, env=env)
    assert again["changed"] and all(a["ok"] for a in again["apps"])
    diff = json.loads(out.run("diff", summary["snapshot"][:16], "current", "--store", store, "--json").stdout)
    changes = {app: [c for per in t.values() for c in per.get("changed", [])] for app, t in diff["apps"].items()}
    assert changes == {"tagged": [["gitsub", "1.1", "1.2"]], "over-http": [["gitpkg", "1.1", "1.2"]]}

    # A commit pin never goes back to git: with the repository gone it still syncs from the cache;
    # a tag needs the repository, so that app fails with its line named and keeps its previous lock.
    git_repo.path.rename(git_repo.path.with_name("moved-away"))
    third = _sync(out, store, upstream, tagged, pinned, env=env, check=False)
    by_name = {a["name"]: a for a in third["apps"]}
    assert by_name["pinned"]["ok"]
    assert not by_name["tagged"]["ok"] and by_name["tagged"]["kept_previous"]
    assert f"{tagged / 'requirements.txt'}:1" in by_name["tagged"]["error"]
    assert _grep_secrets(tmp_path, out) == []


# -- The app's own files ------------------------------------------------------------------------------


def test_local_tarball_wheel_folder_and_find_links(upstream, tmp_path):
    out = Outputs()
    app = tmp_path / "apps" / "local-app"
    (app / "packages").mkdir(parents=True)
    sdist = make_sdist(tmp_path / "build", "mypackage", "0.4", requires=["beta>=1.0"])
    sdist.rename(app / "packages" / "myPackage.tar.gz")  # as apps name them: no version in the file name
    make_wheel(app / "packages", "localwheel", "0.2", requires=["alpha"])
    make_project(app / "libs" / "inhouse", "inhouse", "0.3", marker="in-house")
    make_wheel(app / "wheels", "flpkg", "0.5")
    (app / "requirements.txt").write_text(
        "--find-links wheels/\n"
        "./packages/myPackage.tar.gz\n"
        "packages/localwheel-0.2-py3-none-any.whl\n"
        "-e ./libs/inhouse\n"
        "flpkg==0.5\n")
    store = tmp_path / "store"
    summary = _sync(out, store, upstream, app)
    (result,) = summary["apps"]
    assert result["ok"], result
    assert any("non-editable" in w for w in result["warnings"])
    snap = json.loads((store / "store-v1" / "snapshots" / f"{summary['snapshot']}.json").read_text())
    names = {snap["python"]["files"][s]["filename"] for s in snap["apps"]["local-app"]["targets"][TARGET]["files"]}
    assert {"mypackage-0.4-py3-none-any.whl", "localwheel-0.2-py3-none-any.whl", "inhouse-0.3-py3-none-any.whl",
            "flpkg-0.5-py3-none-any.whl", "alpha-1.0-py3-none-any.whl", "beta-2.0-py3-none-any.whl"} <= names
    out.run("publish", "--store", store)
    served = Served(store)
    try:
        venv = _pip_install_lock(out, store, app, served, tmp_path)
        assert _py(venv, "import mypackage, localwheel, inhouse, flpkg, alpha, beta; print(inhouse.FROM)") == "in-house"
        # The app's own requirements.txt, unchanged, in the app folder, with only PIP_INDEX_URL set.
        venv2 = _venv(tmp_path / "venv-unchanged")
        proc = subprocess.run([str(venv2 / "bin" / "pip"), "install", "--no-cache-dir", "--retries", "0",
                               "-r", "requirements.txt"], cwd=app,
                              capture_output=True, text=True, env=clean_env(PIP_INDEX_URL=served.simple))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        served.stop()
    advice = out.run("client-config", "--url", served.simple, "--app", app, "--store", store).stdout
    assert f"export PIP_INDEX_URL={served.simple}" in advice
    assert "Nothing to change" in advice


def test_bad_local_package_names_the_line(upstream, tmp_path):
    out = Outputs()
    app = tmp_path / "apps" / "broken"
    app.mkdir(parents=True)
    (app / "requirements.txt").write_text("alpha\n./packages/missing.tar.gz\n")
    summary = _sync(out, tmp_path / "store", upstream, app, check=False)
    (result,) = summary["apps"]
    assert not result["ok"]
    assert result["error"].startswith(f"{app / 'requirements.txt'}:2: ")
    assert "does not exist" in result["error"]


@pytest.mark.parametrize(
    ("line", "kind", "fields"),
    [
        ("git+https://host.invalid/org/pkg.git@v1.2.3#egg=pkg", "git",
         {"url": "https://host.invalid/org/pkg.git", "ref": "v1.2.3", "name": "pkg"}),
        ("pkg[x] @ git+ssh://git@host.invalid/org/pkg.git@main#subdirectory=py ; python_version > '3'", "git",
         {"url": "ssh://git@host.invalid/org/pkg.git", "ref": "main", "subdirectory": "py", "extras": ("x",)}),
        ("git+https://${TOKEN}@host.invalid/org/pkg.git", "git", {"url": "https://${TOKEN}@host.invalid/org/pkg.git", "ref": None}),
        ("-e git+https://host.invalid/o/p.git@4.0.0#egg=regparser", "git", {"editable": True, "name": "regparser"}),
        ("./packages/myPackage.tar.gz", "path", {"url": "./packages/myPackage.tar.gz"}),
        ("x @ file:///opt/wheels/x-1.0-py3-none-any.whl", "path", {"url": "/opt/wheels/x-1.0-py3-none-any.whl", "name": "x"}),
        ("-e .", "path", {"url": ".", "editable": True}),
        ("https://host.invalid/dl/en_core-2.2.0.tar.gz#egg=en_core", "url", {"name": "en_core"}),
    ],
)
def test_direct_reference_forms(tmp_path, line, kind, fields):
    from airgap_mirror.apps.reqfile import parse_requirements_file

    f = tmp_path / "requirements.txt"
    f.write_text(line + "\n")
    (req,) = parse_requirements_file(f).requirements
    assert req.requirement is None and req.direct is not None
    assert req.direct.kind == kind
    for k, v in fields.items():
        assert getattr(req.direct, k) == v, k
    assert "${TOKEN}" not in req.text


def test_hg_is_refused_with_a_fix(tmp_path):
    from airgap_mirror.apps.reqfile import parse_requirements_file
    from airgap_mirror.errors import NotYetSupported

    f = tmp_path / "requirements.txt"
    f.write_text("hg+https://host.invalid/repo#egg=x\n")
    with pytest.raises(NotYetSupported, match="only git"):
        parse_requirements_file(f)


def test_pip_extra_index_url_from_the_environment_when_asked(upstream, private_index, tmp_path):
    """A site that sets PIP_EXTRA_INDEX_URL system-wide: honoured with --pip-env, and only then."""
    out = Outputs()
    app = tmp_path / "apps" / "plain"
    app.mkdir(parents=True)
    (app / "requirements.txt").write_text("privpkg==1.0\n")
    host = private_index.url.split("://", 1)[1]
    env = {"PIP_EXTRA_INDEX_URL": f"http://{PRIVATE_USER}:{PRIVATE_PASSWORD}@{host}/simple"}
    store = tmp_path / "store"
    base = ("sync", app, "--store", store, "--python", PY, "--platform", X86, "--installers", "", "--json",
            "--index-url", upstream.url + "/simple")
    without = out.run(*base, env=env, check=False)
    assert without.returncode == 1 and "privpkg" in json.loads(without.stdout)["apps"][0]["error"]
    assert not private_index.seen_auth
    proc = out.run(*base, "--pip-env", env=env)
    assert json.loads(proc.stdout)["apps"][0]["ok"]
    assert _grep_secrets(tmp_path, out) == []
