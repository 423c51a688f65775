"""Shared fixtures: local upstreams (an index of tiny real distributions, a signed Debian archive, a
private index, git repositories) started on loopback and stopped by the tests. What they are built
from lives in tests/builders/."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from airgap_mirror.store import open_store
from tests.builders import make_wheel, write_simple_index
from tests.builders.upstreams import (
    DATA,
    GIT_TOKEN,
    PRIVATE_PASSWORD,
    PRIVATE_USER,
    AuthServer,
    GitHttpServer,
    GitRepo,
    StaticServer,
    build_debian_upstream,
    build_private_files,
    build_upstream_files,
)


@pytest.fixture(scope="session")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    root = tmp_path_factory.mktemp("upstream")
    build_upstream_files(root / "files")
    write_simple_index(root / "files", root / "simple")
    server = StaticServer(root)
    server.root = root  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture
def apps(tmp_path: Path) -> Path:
    """A writable copy of the fixture app folders."""
    dest = tmp_path / "apps"
    shutil.copytree(DATA / "apps", dest)
    return dest


@pytest.fixture(scope="session")
def python_exe() -> str:
    return sys.executable


# -- A Debian upstream: tiny real .debs in two suites, signed with a throwaway key -------------------


@pytest.fixture(scope="session")
def debian_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaticServer]:
    if not shutil.which("dpkg-deb") or not shutil.which("apt-ftparchive"):
        pytest.fail("dpkg-deb and apt-ftparchive are needed: scripts/test installs them (dpkg-dev, apt-utils)")
    root = tmp_path_factory.mktemp("debian")
    info = build_debian_upstream(root)
    server = StaticServer(info["archive"])  # type: ignore[arg-type]
    server.root = info["archive"]  # type: ignore[attr-defined]
    server.keyring = info["keyring"]  # type: ignore[attr-defined]
    yield server
    server.stop()


# -- Private sources: an index behind basic auth, git repositories (file:// and smart HTTP) ----------


@pytest.fixture
def private_index(tmp_path: Path) -> Iterator[AuthServer]:
    root = tmp_path / "private"
    build_private_files(root / "files")
    write_simple_index(root / "files", root / "simple")
    server = AuthServer(root, PRIVATE_USER, PRIVATE_PASSWORD)
    yield server
    server.stop()


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    if not shutil.which("git"):
        pytest.fail("git is needed: scripts/test installs it")
    return GitRepo(tmp_path / "gitroot" / "gitpkg.git")


@pytest.fixture
def git_http(git_repo: GitRepo) -> Iterator[GitHttpServer]:
    server = GitHttpServer(git_repo.path.parent, "git-user", GIT_TOKEN)
    yield server
    server.stop()


@pytest.fixture
def store_with_files(tmp_path: Path):
    store = open_store(tmp_path / "store", create=True)
    dist = tmp_path / "dist"
    files = {}
    for name, version, rp in [("Foo_Bar", "1.0", ">=3.8"), ("Foo_Bar", "2.0", None), ("qux", "0.1", None)]:
        whl = make_wheel(dist, name, version, requires_python=rp)
        sha = store.put_file(whl)
        import zipfile

        with zipfile.ZipFile(whl) as zf:
            meta = zf.read(next(n for n in zf.namelist() if n.endswith("METADATA")))
        files[sha] = {"filename": whl.name, "project": name, "version": version, "kind": "wheel",
                      "size": whl.stat().st_size, "url": "https://example.invalid/" + whl.name,
                      "requires_python": rp, "yanked": "broken" if version == "2.0" else None,
                      "upload_time": "2024-01-01T00:00:00Z", "metadata_sha256": store.put_bytes(meta)}
    sid = store.put_snapshot({"format_version": 1, "apps": {}, "targets": {},
                              "python": {"files": files, "installers": {}, "build": {}}}, origin="test")
    return store, sid, files
