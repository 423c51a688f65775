"""A publish that brings the tree switched out last time up to date, instead of building one anew.

A tree holds every file of its snapshot as a hard link in a folder of its own, at two paths (the
mirror's and the upstream's), and PyPI's JSON API in two folders a release: a new tree for 20,000
projects made 135,000 folders and 100,000 links, and pruning the oldest removed as many: 9 s for a
nightly whose sync changed one app, growing with the store. Two trees are kept (the current one, and
the one before for clients mid-download); the older of them is not served, so the next publish
renames it aside, applies to it what changed between its snapshot and the new one (files linked and
unlinked, the pages and JSON API of the projects and releases touched, the root pages and locks
written again, the plug-ins' parts rebuilt), and switches it in under a new name. The cost follows
what changed. Anything that makes the old tree unfit (another renderer, another base URL, its
snapshot gone from the store, an interrupted update) falls back to a tree built whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from airgap_mirror.publish.reuse import PageReuse, manifest_path, renderer
from airgap_mirror.publish.simple import IndexFile
from airgap_mirror.store import Store
from airgap_mirror.store.model import PythonFile
from airgap_mirror.store.names import safe_join_str
from airgap_mirror.store.snapshots import Snapshot

__all__ = ["candidate", "update_python", "PYTHON_PARTS"]

# What the Python writer puts at a tree's top: everything else (debian/, conda/) is a plug-in's part,
# removed from a recycled tree and written again by its plug-in.
PYTHON_PARTS = frozenset({"packages", "simple", "pypi", "integrity", "locks", "find-links.html",
                          "find-links.html.gz", "snapshot.json"})


def candidate(store: Store, trees: Path, current: Path | None, base: str | None) -> tuple[Path, str, dict[str, str]] | None:
    """The finished tree to bring up to date (not the current one, not held by a reader, rendered by
    this code for the same base URL from a snapshot the store still has), its snapshot's id and its
    pages' digests; None when there is none."""
    from airgap_mirror.publish.tree import _in_use, tree_snapshot

    found = []
    for tree in trees.iterdir():
        if tree.name.startswith(".") or not tree.is_dir() or (current is not None and tree.resolve() == current):
            continue
        with contextlib.suppress(OSError):
            found.append((tree.stat().st_mtime, tree))
    for _, tree in sorted(found, reverse=True):
        sid = tree_snapshot(tree)
        if sid is None or _in_use(tree) or not (store.snapshots / f"{sid}.json").is_file():
            continue
        try:
            status = json.loads((tree / "snapshot.json").read_bytes())
            doc = json.loads(manifest_path(tree).read_bytes())
        except (OSError, ValueError):
            continue
        if (not isinstance(status, dict) or status.get("base_url") != base or not isinstance(doc, dict)
                or doc.get("renderer") != renderer() or not isinstance(doc.get("pages"), dict)):
            continue
        return tree, sid, dict(doc["pages"])
    return None


def update_python(store: Store, old_id: str, new_doc: Mapping[str, Any], new: Snapshot, root: Path, base: str | None,
                  pages: dict[str, str]) -> PageReuse:
    """Bring the Python part of `root` (a tree of snapshot `old_id`, with its pages' digests `pages`)
    to `new` (whose document is `new_doc`). The two are compared as stored (dicts: the old one is not read into records)."""
    from packaging.utils import canonicalize_name

    from airgap_mirror.publish import tree as t

    for entry in os.scandir(root):  # the plug-ins' parts: written again whole
        if entry.name not in PYTHON_PARTS:
            shutil.rmtree(entry.path) if entry.is_dir(follow_symlinks=False) else os.unlink(entry.path)
    top, folders = str(root), t._Folders()
    reuse = PageReuse(None, in_place=pages)
    was_doc, now_doc = store.load_snapshot(old_id).get("python", {}), new_doc.get("python", {})
    was_raw, now_raw = was_doc.get("files", {}), now_doc.get("files", {})
    now = new.python.files
    gone = {sha: PythonFile.from_dict(raw) for sha, raw in was_raw.items() if now_raw.get(sha) != raw}
    came = {sha: now[sha] for sha, raw in now_raw.items() if was_raw.get(sha) != raw and sha in now}
    touched: set[str] = {canonicalize_name(m.project or "") for m in (*gone.values(), *came.values())}
    releases = {(canonicalize_name(m.project or ""), m.version or "") for m in (*gone.values(), *came.values())}
    was_st, now_st = was_doc.get("projects") or {}, now_doc.get("projects") or {}
    touched |= {p for p in was_st.keys() | now_st.keys() if was_st.get(p) != now_st.get(p)}
    vacated = {path: meta.filename for sha, meta in gone.items() if (path := _unlink_file(top, sha, meta))}
    t._link_files(store, came, top, folders)
    # Every file's page entry (the root pages and find-links list them all); the touched projects'
    # and releases' pages written again, those now empty removed.
    by_project: dict[str, list[IndexFile]] = {}
    in_release: dict[str, PythonFile] = {}
    named = set(vacated.values())
    for sha, meta in now.items():
        by_project.setdefault(meta.project or "", []).append(t._index_file(sha, meta))
        if (canonicalize_name(meta.project or ""), meta.version or "") in releases:
            in_release[sha] = meta
        if meta.filename in named and (up := t._upstream_path(meta)) is not None:
            dest = safe_join_str(top, *up)  # another file the upstream served at a path just freed
            if dest in vacated and not os.path.exists(dest):
                folders.link(store.blob_path(sha), dest)
    for canonical, version in releases:
        reuse.new.pop(f"pypi/{canonical}/{version}", None)
        _remove(top, ("pypi", canonical, version), ("json",))
    t._write_json_api(store, in_release, top, base, reuse, folders)
    simple = t._write_indexes(top, by_project, folders, reuse)
    for name in touched:
        reuse.new.pop(f"simple/{name}", None)
        _remove(top, ("simple", name), t._PAGE_SET)
    for project, pfiles in by_project.items():
        if canonicalize_name(project) in touched:
            t._write_project(simple, project, pfiles, new, reuse, folders)
    shutil.rmtree(root / "locks", ignore_errors=True)
    t._write_locks(store, new, root, base)
    reuse.changed = {"files_in": len(came), "files_out": len(gone), "projects": len(touched), "releases": len(releases)}
    return reuse


def _unlink_file(top: str, sha: str, meta: PythonFile) -> str | None:
    """A file gone from the snapshot (or whose facts changed: linked again after), at each path the
    tree held it, and the folders it leaves empty; the upstream path it freed, if any (another file
    of the same name may be served there now)."""
    from airgap_mirror.publish import tree as t

    _remove(top, ("packages", sha[:2], sha), (meta.filename, meta.filename + ".metadata"))
    if meta.provenance_sha256:
        where = t._provenance_path(meta)
        _remove(top, where[:-1], where[-1:])
    upstream = t._upstream_path(meta)
    if upstream is None or upstream == ("packages", sha[:2], sha, meta.filename):
        return None
    # (the path may hold another file of that name, the first a build linked there: it is linked
    # again by the caller, which knows every file the new snapshot has)
    _remove(top, upstream[:-1], upstream[-1:])
    return safe_join_str(top, *upstream)


def _remove(top: str, folder: tuple[str, ...], names: Iterable[str]) -> None:
    """`names` in `folder` (a path under the tree), then the folder and its parents while empty."""
    path = safe_join_str(top, *folder)
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f"{path}/{name}")
    for depth in range(len(folder), 0, -1):
        try:
            os.rmdir(safe_join_str(top, *folder[:depth]))
        except OSError:  # not empty (or gone): its parents are not empty either
            break

