"""Publishing a snapshot as a static tree (PEP 503/691 pages, the files, PyPI's JSON API, the apps'
locks, each plug-in's part), built aside and switched in whole; which tree is current."""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from airgap_mirror.interfaces import publishers
from airgap_mirror.publish.reuse import PageReuse, manifest_path, orphaned_manifests
from airgap_mirror.publish.simple import (
    IndexFile,
    render_find_links,
    render_project_html,
    render_project_json,
    render_root_html,
    render_root_json,
)
from airgap_mirror.store import Store
from airgap_mirror.store.model import PythonFile
from airgap_mirror.store.names import UnsafePath, safe_join, safe_join_str
from airgap_mirror.store.snapshots import Snapshot

_KEEP_TREES = 2


def link_or_copy(src: Path, dst: Path | str, *, folder_made: bool = False) -> None:
    """A hard link of `src` at `dst` (its folder made unless `folder_made`), a copy where the
    file system cannot link there."""
    if not folder_made:
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
        shutil.copyfile(src, dst)


def current_tree(store: Store) -> Path | None:
    link = store.published / "current"
    return link.resolve() if link.is_symlink() and link.resolve().is_dir() else None


def up_to_date(store: Store, url: str | None = None) -> Path | None:
    """The current tree when it is the store's current snapshot published for the same base URL:
    publishing again would build the same tree (a nightly's publish after a sync that changed
    nothing rebuilt all of it: 20,000 projects, seconds). None when it is not, or unknown."""
    tree = current_tree(store)
    current = store.ref("current")
    if tree is None or current is None:
        return None
    with contextlib.suppress(OSError, json.JSONDecodeError, TypeError):
        status = json.loads((tree / "snapshot.json").read_text())
        if status.get("id") == current and "base_url" in status and status["base_url"] == base_url(store, url):
            return tree
    return None


def published_snapshot(store: Store) -> str | None:
    tree = current_tree(store)
    return tree_snapshot(tree) if tree is not None else None


def tree_snapshot(tree: os.PathLike[str]) -> str | None:
    """The id of the snapshot a published tree was built from (its snapshot.json), None if unreadable."""
    with contextlib.suppress(OSError, json.JSONDecodeError, KeyError, TypeError):
        sid = json.loads((Path(tree) / "snapshot.json").read_text())["id"]
        return sid if isinstance(sid, str) else None
    return None


_DIST_REF = re.compile(r'\b(?:url|path) = "(?:[^"\\]|\\.)*"(?P<rest>[^{}]*?hashes = \{ sha256 = "(?P<sha>[0-9a-f]{64})" \})')


def served_pylock(data: bytes, files: Mapping[str, PythonFile], base_url: str | None) -> bytes:
    """A lock's file references pointed at this mirror, hashes unchanged: `url = BASE/packages/...`
    when the served base URL is known, else a `path` relative to /locks/APP/TARGET/pylock.toml
    (pip >= 26.1 joins it to the lock's own URL). Files the snapshot lacks keep their reference."""

    def swap(m: re.Match[str]) -> str:
        meta = files.get(m["sha"])
        if meta is None:
            return m[0]
        rel = "/".join(("packages", m["sha"][:2], m["sha"], quote(meta.filename)))
        ref = f'url = "{base_url.rstrip("/")}/{rel}"' if base_url else f'path = "../../../{rel}"'
        return ref + m["rest"]

    return _DIST_REF.sub(swap, data.decode("utf-8")).encode("utf-8")


def base_url(store: Store, given: str | None = None) -> str | None:
    """The URL clients reach the mirror at: the one given (kept for later publishes, by import and
    serve too), else the one kept."""
    kept = store.published / "base-url"
    if given:
        if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", given):
            from airgap_mirror.errors import ConfigError

            raise ConfigError(f"base URL {given!r}: write it as http(s)://HOST[:PORT][/PATH], as clients reach the mirror")
        kept.parent.mkdir(parents=True, exist_ok=True)
        kept.write_text(given.rstrip("/") + "\n")
        return given.rstrip("/")
    with contextlib.suppress(FileNotFoundError):
        return kept.read_text().strip() or None
    return None


def _upstream_path(meta: PythonFile) -> tuple[str, ...] | None:
    """Where the file's upstream served it, when under /packages/ (files.pythonhosted.org's layout,
    and most mirrors'): the tree holds it there too (a hard link), so a site that points the
    upstream's host names at the mirror installs from its apps' locks unchanged (uv.lock, pylock.toml
    name those URLs). None when the URL is elsewhere or its path is not one of plain components."""
    url = meta.url
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        return None
    parts = tuple(unquote(p) for p in urlsplit(url).path.strip("/").split("/"))
    if len(parts) < 3 or parts[0] != "packages" or parts[-1] != meta.filename:
        return None
    if any(not p or p in (".", "..") or "/" in p or "\\" in p or "\0" in p for p in parts):
        return None
    return parts


class _Folders:
    """Folders of a tree being built, each made once (string paths: a publish makes 80,000 of them)."""

    def __init__(self) -> None:
        self.made: set[str] = set()

    def make(self, path: str) -> str:
        if path not in self.made:
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            except FileNotFoundError:
                self.make(os.path.dirname(path))
                with contextlib.suppress(FileExistsError):
                    os.mkdir(path)
            self.made.add(path)
        return path

    def link(self, src: Path, dst: str) -> None:
        self.make(os.path.dirname(dst))
        link_or_copy(src, dst, folder_made=True)


def _put(folder: str, name: str, text: str, *, gz: bool = False) -> None:
    data = text.encode("utf-8")
    _new_file(f"{folder}/{name}", data)
    if gz:  # precompressed beside the page, so servers (ours, nginx gzip_static) send it as is; a
        # page of every file (4.7 MB for 20,000) at level 3: a quarter of the time of 9 (0.03 s) for
        # 9% more bytes
        _new_file(f"{folder}/{name}.gz", gzip.compress(data, 9 if len(data) < 1 << 20 else 3, mtime=0))


def _new_file(path: str, data: bytes) -> None:
    """`data` at `path` as a new file: one there already (a tree being mended) is unlinked, never
    rewritten in place, as a reader may hold it open (nginx's open_file_cache, a download)."""
    try:
        fh = open(path, "xb")  # noqa: SIM115
    except FileExistsError:
        os.unlink(path)
        fh = open(path, "xb")  # noqa: SIM115
    with fh:
        fh.write(data)


def _release_url(sha: str, meta: PythonFile, base: str | None) -> str | None:
    if _upstream_path(meta) is not None:
        return str(meta.url)
    if base:
        return f"{base.rstrip('/')}/packages/{sha[:2]}/{sha}/{quote(meta.filename)}"
    return None


def _write_json_api(store: Store, files: Mapping[str, PythonFile], root: str, base: str | None,
                    reuse: PageReuse, folders: _Folders) -> None:
    """PyPI's JSON API for each release (`/pypi/PROJECT/VERSION/json`), as Poetry reads it to find a
    locked release's files: its `urls` name each file where the upstream served it (a site points
    the upstream's names at the mirror, which serves those paths too), else at the mirror's base URL."""
    from email.parser import BytesHeaderParser

    from packaging.utils import canonicalize_name

    releases: dict[tuple[str, str], list[tuple[str, PythonFile]]] = {}
    for sha, meta in files.items():
        releases.setdefault((canonicalize_name(meta.project or ""), meta.version or ""), []).append((sha, meta))
    for (project, version), entries in releases.items():
        entries.sort(key=lambda e: e[1].filename)
        linked = [(sha, meta, url) for sha, meta in entries if (url := _release_url(sha, meta, base)) is not None]
        if not linked:
            continue
        folder = folders.make(safe_join_str(folders.make(safe_join_str(root, "pypi", project)), version))
        if reuse.take(f"pypi/{project}/{version}", reuse.digest((entries[0][1].project, linked)), folder, ("json",)):
            continue
        urls, requires_dist, requires_python = [], None, None
        for sha, meta, url in linked:
            urls.append({"filename": meta.filename, "url": url, "digests": {"sha256": sha}, "size": meta.size,
                         "packagetype": "bdist_wheel" if meta.kind == "wheel" else "sdist",
                         "requires_python": meta.requires_python, "yanked": bool(meta.yanked),
                         "yanked_reason": meta.yanked if isinstance(meta.yanked, str) else None,
                         "upload_time_iso_8601": meta.upload_time})
            requires_python = requires_python or meta.requires_python
            if requires_dist is None and meta.metadata_sha256 and store.has_blob(meta.metadata_sha256):
                head = BytesHeaderParser().parsebytes(store.blob_path(meta.metadata_sha256).read_bytes())
                requires_dist = head.get_all("Requires-Dist") or []
        doc = {"info": {"name": entries[0][1].project, "version": version, "summary": "",
                        "requires_dist": requires_dist, "requires_python": requires_python, "yanked": False},
               "urls": urls, "last_serial": 0}
        _put(folder, "json", json.dumps(doc, sort_keys=True))


def _link_files(store: Store, files: Mapping[str, PythonFile], root: str, folders: _Folders) -> dict[str, list[IndexFile]]:
    """Each file (and its .metadata, provenance) linked from the store into the tree; the pages'
    entries, by project."""
    by_project: dict[str, list[IndexFile]] = {}
    for sha, meta in files.items():
        blob = store.blob_path(sha)
        folder = folders.make(safe_join_str(folders.make(f"{root}/packages/{sha[:2]}"), sha))
        folders.link(blob, safe_join_str(folder, meta.filename))
        upstream = _upstream_path(meta)
        if upstream is not None and upstream != ("packages", sha[:2], sha, meta.filename):
            dest = safe_join_str(root, *upstream)
            if not os.path.exists(dest):
                folders.link(blob, dest)
        if meta.metadata_sha256:
            folders.link(store.blob_path(meta.metadata_sha256), safe_join_str(folder, meta.filename + ".metadata"))
        if meta.provenance_sha256:  # PEP 740: at the Integrity API's path, as PyPI serves it
            folders.link(store.blob_path(meta.provenance_sha256), safe_join_str(root, *_provenance_path(meta)))
        by_project.setdefault(meta.project or "", []).append(_index_file(sha, meta))
    return by_project


def _provenance_path(meta: PythonFile) -> tuple[str, ...]:
    from packaging.utils import canonicalize_name

    return "integrity", canonicalize_name(meta.project or ""), meta.version or "", meta.filename, "provenance"


def _index_file(sha: str, meta: PythonFile) -> IndexFile:
    """A file as the pages list it."""
    provenance = "../../" + "/".join(quote(p) for p in _provenance_path(meta)) if meta.provenance_sha256 else None
    return IndexFile(filename=meta.filename, url=f"../../packages/{sha[:2]}/{sha}/{meta.filename}", sha256=sha,
                     size=meta.size or 0, requires_python=meta.requires_python, yanked=meta.yanked,
                     upload_time=meta.upload_time, metadata_sha256=meta.metadata_sha256, provenance=provenance)


_PAGE_SET = ("index.html", "index.html.gz", "index.json", "index.json.gz")


def _write_python(store: Store, snapshot: Snapshot, root: Path, base: str | None = None,
                  previous: Path | None = None) -> PageReuse:
    """The Python part of a tree; pages made from the same inputs as `previous`'s are linked from it."""
    files = snapshot.python.files
    top, folders, reuse = str(root), _Folders(), PageReuse(previous)
    by_project = _link_files(store, files, top, folders)
    _write_json_api(store, files, top, base, reuse, folders)
    simple = _write_indexes(top, by_project, folders, reuse)
    for project, pfiles in by_project.items():
        _write_project(simple, project, pfiles, snapshot, reuse, folders)
    _write_locks(store, snapshot, root, base)
    return reuse


def _write_indexes(top: str, by_project: Mapping[str, list[IndexFile]], folders: _Folders, reuse: PageReuse) -> str:
    """The root pages (every project: kept when the same projects) and find-links.html (every
    file); the simple/ folder."""
    simple = _write_root_pages(top, list(by_project), folders, reuse)
    _put(top, "find-links.html", render_find_links([f for pfiles in by_project.values() for f in pfiles], "../../"),
         gz=True)
    return simple


def _write_root_pages(top: str, projects: list[str], folders: _Folders, reuse: PageReuse) -> str:
    """The pages that list every project, linked from the tree before when it had the same ones; the
    simple/ folder."""
    simple = folders.make(f"{top}/simple")
    if not reuse.take("simple", reuse.digest(tuple(sorted(projects))), simple, _PAGE_SET):
        _put(simple, "index.html", render_root_html(projects), gz=True)
        _put(simple, "index.json", render_root_json(projects), gz=True)
    return simple


def _write_project(simple: str, project: str, pfiles: list[IndexFile], snapshot: Snapshot, reuse: PageReuse,
                   folders: _Folders) -> None:
    """A project's pages (PEP 503 HTML, PEP 691 JSON, each with its .gz), linked when unchanged."""
    from packaging.utils import canonicalize_name

    name = canonicalize_name(project)
    folder = folders.make(safe_join_str(simple, name))
    st = snapshot.python.projects.get(name)
    status = (st.status, st.reason) if st is not None else None
    pfiles.sort(key=lambda f: f.filename)
    if reuse.take(f"simple/{name}", reuse.digest((project, status, pfiles)), folder, _PAGE_SET):
        return
    _put(folder, "index.html", render_project_html(project, pfiles, status), gz=True)
    _put(folder, "index.json", render_project_json(project, pfiles, status), gz=True)


def _write_locks(store: Store, snapshot: Snapshot, root: Path, base: str | None) -> None:
    """The apps' locks, so an admin inside can fetch an app's lock from the mirror itself."""
    for app, entry in snapshot.apps.items():
        for tid, t in entry.targets.items():
            d = safe_join(root, "locks", app, tid)
            if t.pylock:
                d.mkdir(parents=True, exist_ok=True)
                (d / "pylock.toml").write_bytes(served_pylock(store.blob_path(t.pylock).read_bytes(),
                                                              snapshot.python.files, base))
            if t.requirements_lock:
                link_or_copy(store.blob_path(t.requirements_lock), d / "requirements.lock")


def publish(store: Store, snapshot_id: str | None = None, *, url: str | None = None, fresh: bool = False,
            report: dict[str, Any] | None = None) -> Path:
    """Build the tree of a snapshot (the current one by default) and switch it in atomically.
    `url`: the base URL clients reach the mirror at (kept for later publishes); `fresh`: every page
    made again, none linked from the current tree (`PageReuse`); `report`, when given, is filled
    with how the tree was made ("whole", or "mended": the tree before brought up to date, and what
    that changed)."""
    sid = snapshot_id or store.ref("current")
    if sid is None:
        from airgap_mirror.errors import StoreError

        raise StoreError(f"the store at {store.root} has no snapshot yet: run `mirror sync` first")
    from airgap_mirror.store.snapshots import Snapshot

    doc = store.load_snapshot(sid)  # (the document kept: a tree mended compares documents)
    snapshot = Snapshot.from_dict(doc, id=sid, lazy=True)  # (a mend reads only the files that changed)
    trees = store.published / "trees"
    trees.mkdir(parents=True, exist_ok=True)
    base, current = base_url(store, url), current_tree(store)
    # A new name each time (a server keys what it has read by the tree's name, and a recycled tree
    # is not what its old name held).
    stamp = time.time_ns() // 1000
    while any(trees.glob(f"*.{stamp:x}")) or any(trees.glob(f".*.{stamp:x}.partial")):
        stamp += 1
    partial = trees / f".{sid[:16]}.{stamp:x}.partial"
    final = trees / f"{sid[:16]}.{stamp:x}"
    try:
        reuse = _build(store, snapshot, doc, partial, base, current, fresh)
        if report is not None:
            report.update(built=reuse.how, **reuse.changed)
        for fn in publishers():
            fn(store, snapshot, partial)
        _new_file(str(partial / "snapshot.json"), (json.dumps(_status(store, snapshot, sid), indent=1) + "\n").encode())
        reuse.save(final)
        os.replace(partial, final)
        os.utime(final)  # (a recycled tree is the newest now: pruning goes by age)
    except UnsafePath as exc:
        shutil.rmtree(partial, ignore_errors=True)
        from airgap_mirror.errors import IntegrityError

        raise IntegrityError(f"snapshot {sid[:16]} names a path that is not safe to publish ({exc}); nothing was "
                             "published: the served tree is unchanged") from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    link = store.published / "current"
    tmp_link = store.published / ".current.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(os.path.relpath(final, store.published), tmp_link)
    os.replace(tmp_link, link)
    _prune(trees, keep=final)
    return final


def _build(store: Store, snapshot: Snapshot, doc: dict[str, Any], partial: Path, base: str | None,
           current: Path | None, fresh: bool) -> PageReuse:
    """The Python part of the tree at `partial`: the tree switched out last time brought up to date
    (`recycle`), else one built whole, its unchanged pages linked from the current tree."""
    from airgap_mirror.publish import recycle

    found = None if fresh else recycle.candidate(store, partial.parent, current, base)
    if found is not None:
        old_tree, old, pages = found
        manifest_path(old_tree).unlink(missing_ok=True)
        os.rename(old_tree, partial)
        try:
            return recycle.update_python(store, old, doc, snapshot, partial, base, pages)
        except (OSError, ValueError) as exc:  # (a tree changed under it: built whole instead)
            import logging

            logging.getLogger(__name__).warning("bringing tree %s up to date failed (%s): building it whole",
                                                old_tree.name, exc)
            shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    return _write_python(store, snapshot, partial, base, previous=None if fresh else current)


def _status(store: Store, snapshot: Snapshot, sid: str) -> dict[str, Any]:
    """What the server says of this tree (/health, the front page): read from the tree itself, so
    serving needs nothing of the store but the published folder."""
    from datetime import datetime

    from airgap_mirror.interfaces import bundle_ledger

    files, nbytes = snapshot.counts()
    ledger = bundle_ledger()
    last = ledger.last_import(store) if ledger is not None else None
    apps = {}
    for app, entry in sorted(snapshot.apps.items()):
        apps[app] = {"python": sorted(entry.targets), **{k: sorted(v) for k, v in entry.parts.items() if v}}
    return {"id": sid, "created": store.snapshot_created(sid), "base_url": base_url(store),
            "published": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": files, "bytes": nbytes, "targets": snapshot.target_ids(), "apps": apps,
            "last_import": last}


def _pin_file(tree: Path) -> Path:
    return tree.parent / f".{tree.name}.in-use"


@contextlib.contextmanager
def hold_tree(tree: Path) -> Iterator[Path]:
    """Keep a published tree from being pruned while it is read without the store's lock (an upload
    to object storage: minutes on a slow link, during which syncs and imports go on): a shared flock
    on a file beside it, released by the kernel however the holder ends."""
    import fcntl

    fd = os.open(_pin_file(tree), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not tree.is_dir():
            raise FileNotFoundError(f"{tree}: the published tree is gone (pruned before it could be held)")
        yield tree
    finally:
        os.close(fd)


def _in_use(tree: Path) -> bool:
    import fcntl

    try:
        fd = os.open(_pin_file(tree), os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _prune(trees: Path, keep: Path) -> None:
    """Remove old trees, keeping the newest few for clients mid-download and any a reader holds
    (`hold_tree`); and leftover partials and pins."""
    done = sorted((p for p in trees.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime)
    for old in done[:-_KEEP_TREES]:
        if old != keep and not _in_use(old):
            shutil.rmtree(old, ignore_errors=True)
    for partial in trees.glob(".*.partial"):
        shutil.rmtree(partial, ignore_errors=True)
    for manifest in orphaned_manifests(trees):
        manifest.unlink(missing_ok=True)
    for pin in trees.glob(".*.in-use"):
        if not (trees / pin.name[1:].removesuffix(".in-use")).exists():
            pin.unlink(missing_ok=True)
