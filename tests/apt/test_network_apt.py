"""Against Debian bookworm itself (network): apt-get's own choice on a real minimal system (the dpkg
status of the cached debootstrap minbase root) is within our closure, exactly so when we are given that
status, and apt installs from our repository."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from airgap_apt.aptfile import read_aptfile
from airgap_apt.archive import Source, load_suite
from airgap_apt.closure import Base, Request, Universe, minimal_system, resolve_closure
from tests.builders import realtarget
from tests.builders.cli import Served, run_mirror
from tests.builders.debs import AptRoot

pytestmark = [pytest.mark.network,
              pytest.mark.skipif(realtarget.skip_reason() is not None, reason=str(realtarget.skip_reason()))]
DEBIAN = "http://deb.debian.org/debian"
CORPUS = Path(__file__).parents[3] / "shared" / "corpus" / "apps"


@pytest.fixture(scope="module")
def bookworm(tmp_path_factory):
    cache = tmp_path_factory.mktemp("aptcache")
    indexes = load_suite(Source(url=DEBIAN, suite="bookworm"), ["amd64"], cache).indexes
    universe = Universe(indexes, "amd64", searched=["bookworm"])
    base = minimal_system(universe)
    status = _real_status()
    root = tmp_path_factory.mktemp("aptroot")
    apt = AptRoot(root)
    apt.add_source(DEBIAN, "bookworm", Path("/usr/share/keyrings/debian-archive-keyring.gpg"))
    apt.set_status(status)
    apt.run("update")
    return universe, base, apt, Base.from_status(status, "minbase root")


def _real_status() -> str:
    """/var/lib/dpkg/status of the cached debootstrap minbase root: a real target, not a model."""
    import tarfile

    with tarfile.open(realtarget.ROOT_TAR) as tar:
        return tar.extractfile("./var/lib/dpkg/status").read().decode()


@pytest.mark.parametrize("packages", [
    ["unixodbc", "unixodbc-dev"],
    "apt-facture-tess",  # a corpus app's Aptfile (read when the test runs: collection needs no ../shared)
    "apt-pdf-tools-business",
], ids=["unixodbc", "apt-facture-tess", "apt-pdf-tools-business"])
def test_closure_equals_apts_own(bookworm, packages):
    if isinstance(packages, str):
        if not CORPUS.is_dir():
            pytest.skip("../shared/corpus is not beside this checkout")
        packages = [p.name for p in read_aptfile(CORPUS / packages / "Aptfile").packages]
    universe, base, apt, real = bookworm
    apts = apt.simulate(*packages)
    requests = [Request(name=p, origin="test") for p in packages]
    assert set(resolve_closure(universe, requests, real).packages) == apts   # given the target's own status
    assert set(resolve_closure(universe, requests, base).packages) >= apts   # the default base: never less


def test_apt_installs_unixodbc_from_our_repository(tmp_path):
    app = tmp_path / "apps" / "odbc"
    app.mkdir(parents=True)
    (app / "Aptfile").write_text("unixodbc\nunixodbc-dev\n")
    store = tmp_path / "store"
    summary = json.loads(run_mirror("sync", str(app), "--store", str(store), "--installers", "", "--json").stdout)
    assert summary["ok"], summary
    run_mirror("publish", "--store", str(store))
    served = Served(store)
    try:
        apt = AptRoot(tmp_path / "root")
        key = tmp_path / "key.asc"
        key.write_bytes((store / "published" / "current" / "debian" / "airgap-mirror.asc").read_bytes())
        apt.add_source(served.base + "/debian", "bookworm", key)
        apt.set_status(_real_status())
        apt.run("update")
        apt.run("install", "--download-only", "unixodbc", "unixodbc-dev")
        got = {p.name.split("_")[0] for p in (apt.root / "var/cache/apt/archives").glob("*.deb")}
        assert {"unixodbc", "unixodbc-dev", "libodbc2"} <= got
    finally:
        served.stop()


def _init_mirror(tmp_path: Path, aptfile: str) -> tuple[str, dict]:
    """`mirror init`'s own config, one app with this Aptfile, synced: (config path, summary)."""
    run_mirror("init", str(tmp_path / "mirror.toml"))
    app = tmp_path / "apps" / "a"
    app.mkdir(parents=True)
    (app / "Aptfile").write_text(aptfile)
    config = str(tmp_path / "mirror.toml")
    summary = json.loads(run_mirror("sync", "--config", config, "--installers", "", "--json").stdout)
    assert summary["ok"], summary
    return config, summary


def _point_at(root: realtarget.Chroot, served: Served, tmp_path: Path, suite: str = "bookworm",
              components: str = "main") -> None:
    """The root's apt pointed at our repository alone (its key fetched from it), lists updated."""
    key = tmp_path / "airgap-mirror.asc"
    with urllib.request.urlopen(served.base + "/debian/airgap-mirror.asc") as resp:
        key.write_bytes(resp.read())
    root.add_source(served.base + "/debian", suite, key, components=components)
    root.run("apt-get", "update")


def test_mirror_inits_config_syncs_an_aptfile_against_debians_archives(tmp_path):
    """`mirror init`'s own config (bookworm, -updates and -security, whose Release names a binary-all
    index it does not have) syncs an Aptfile with no warning: the indexes read are the ones apt reads."""
    _, summary = _init_mirror(tmp_path, "cowsay\n")
    assert not summary["warnings"], summary
    snap = json.loads(next((tmp_path / "mirror-store" / "store-v1" / "snapshots").glob("*.json")).read_text())
    sources = snap["apt"]["targets"]["bookworm-amd64"]["sources"]
    assert {s["suite"] for s in sources} == {"bookworm", "bookworm-updates", "bookworm-security"}
    assert "cowsay" in {n for n, _, _ in snap["apps"]["a"]["apt"]["bookworm-amd64"]["packages"]}


def test_a_minbase_root_upgrades_from_our_repository_alone(tmp_path):
    """The real debootstrap minbase root (bookworm main as built) against a mirror of `mirror init`'s
    config: `apt-get upgrade` takes every update the updates and security suites have for it, from
    our repository alone (what apt itself would take from Debian's three suites)."""
    from debian.debian_support import version_compare

    config, _ = _init_mirror(tmp_path, "cowsay\n")
    run_mirror("publish", "--config", config)
    root = realtarget.Chroot(tmp_path / "root")
    # What apt would upgrade from Debian itself: each installed package's newest version in the suites.
    installed = Base.from_status(_real_status(), "root").versions
    keyring = (Path("/usr/share/keyrings/debian-archive-keyring.gpg"),)
    indexes = []
    for url, suite in ((DEBIAN, "bookworm"), (DEBIAN, "bookworm-updates"), ("http://deb.debian.org/debian-security", "bookworm-security")):
        indexes += load_suite(Source(url=url, suite=suite, keyrings=keyring), ["amd64"], tmp_path / "cache").indexes
    universe = Universe(indexes, "amd64")
    expected = {n for n, v in installed.items()
                if (c := universe.candidate(n)) is not None and version_compare(c.version, v) > 0}
    served = Served(tmp_path / "mirror-store")
    try:
        _point_at(root, served, tmp_path)
        sim = root.run("apt-get", "-s", "upgrade").stdout
        upgraded = {line.split()[1] for line in sim.splitlines() if line.startswith("Inst ")}
        assert upgraded == expected and expected, (upgraded, expected)
    finally:
        served.stop()


def test_a_root_older_than_the_suite_installs_perl_from_our_repository(tmp_path):
    """The real minbase root, its dpkg status rewound to an older perl-base (as an image made before
    the last point release has it): perl depends on perl-base of exactly the suite's version, which
    the mirror carries, so apt upgrades it from our repository and installs perl."""
    config, summary = _init_mirror(tmp_path, "perl\n")
    snap = json.loads((tmp_path / "mirror-store" / "store-v1" / "snapshots" / f"{summary['snapshot']}.json").read_text())
    closure = {n: v for n, v, _ in snap["apps"]["a"]["apt"]["bookworm-amd64"]["packages"]}
    assert "perl-base" in closure
    run_mirror("publish", "--config", config)
    root = realtarget.Chroot(tmp_path / "root")
    status = root.root / "var/lib/dpkg/status"
    paragraphs = status.read_text().split("\n\n")
    i = next(i for i, p in enumerate(paragraphs) if p.startswith("Package: perl-base\n"))
    current = paragraphs[i].split("\nVersion: ")[1].split("\n")[0]
    older = current.rsplit("+deb12u", 1)[0] + "+deb12u0" if "+deb12u" in current else current + "~old"
    paragraphs[i] = paragraphs[i].replace(f"\nVersion: {current}\n", f"\nVersion: {older}\n")
    status.write_text("\n\n".join(paragraphs))
    served = Served(tmp_path / "mirror-store")
    try:
        _point_at(root, served, tmp_path)
        install = root.run("apt-get", "install", "-y", "--no-install-recommends", "perl")
        assert "perl-base" in install.stdout and "perl" in root.installed()
        assert root.run("perl", "-e", "print 6*7").stdout == "42"
    finally:
        served.stop()


@pytest.mark.skipif(not realtarget.TRIXIE_TAR.is_file(), reason="no cached trixie root (scripts/test set-up builds it)")
def test_the_corpus_aptfiles_install_into_a_trixie_root(tmp_path):
    """Every corpus Aptfile that trixie can satisfy, mirrored for trixie (its -updates and -security
    too, as `mirror init` writes them), is installable by apt 3 in a real trixie minbase root from our
    repository alone (apt-get -s), after an update with no warning."""
    import shutil

    run_mirror("init", str(tmp_path / "mirror.toml"))
    config = tmp_path / "mirror.toml"
    config.write_text(config.read_text().replace('distros = ["bookworm"]', 'distros = ["trixie"]'))
    wanted: dict[str, list[str]] = {}
    for folder in sorted(CORPUS.iterdir()):
        for name in ("Aptfile", "packages.txt"):
            if (folder / name).is_file():
                (tmp_path / "apps" / folder.name).mkdir(parents=True)
                shutil.copy(folder / name, tmp_path / "apps" / folder.name / name)
                try:
                    wanted[folder.name] = [p.name for p in read_aptfile(folder / name).packages]
                except Exception:  # noqa: BLE001 (a corpus file that does not read is that app's sync error)
                    wanted[folder.name] = []
                break
    (tmp_path / "apps" / "zz-cows").mkdir(parents=True)
    (tmp_path / "apps" / "zz-cows" / "Aptfile").write_text("cowsay\n")  # installed for real below
    wanted["zz-cows"] = ["cowsay"]
    proc = run_mirror("sync", "--config", str(config), "--installers", "", "--json", check=False)
    summary = json.loads(proc.stdout)
    synced = [a["name"] for a in summary["apps"] if a["ok"]]
    assert "zz-cows" in synced
    assert len(synced) >= 20, [(a["name"], (a["error"] or "")[:120]) for a in summary["apps"] if not a["ok"]]
    run_mirror("publish", "--config", str(config))
    served = Served(tmp_path / "mirror-store")
    try:
        root = realtarget.Chroot(tmp_path / "root", realtarget.TRIXIE_TAR)
        key = tmp_path / "airgap-mirror.asc"
        with urllib.request.urlopen(served.base + "/debian/airgap-mirror.asc") as resp:
            key.write_bytes(resp.read())
        release = (tmp_path / "mirror-store" / "published" / "current" / "debian" / "dists" / "trixie" / "Release").read_text()
        components = next(line.split(":", 1)[1].strip() for line in release.splitlines() if line.startswith("Components:"))
        root.add_source(served.base + "/debian", "trixie", key, components=components)
        update = root.run("apt-get", "update")
        assert "W:" not in update.stdout + update.stderr, update.stdout + update.stderr
        failed = {}
        for name in synced:
            if wanted.get(name):
                sim = root.run("apt-get", "-s", "install", "--no-install-recommends", *wanted[name], check=False)
                if sim.returncode != 0:
                    failed[name] = sim.stdout[-400:] + sim.stderr[-400:]
        assert not failed, failed
        root.run("apt-get", "install", "-y", "--no-install-recommends", "cowsay")
        assert "moo" in root.run("/usr/games/cowsay", "moo").stdout
    finally:
        served.stop()
