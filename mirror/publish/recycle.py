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
from airgap_mirror.publish.simple import (
    FIND_LINKS_HEAD,
    FIND_LINKS_TAIL,
    IndexFile,
    anchor_rows,
    find_links_page,
    render_find_links,
)
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
    # The touched projects' files (their pages are written again) and releases' (their JSON API),
    # found by the records' names as stored, no record read: only a name that can be one of theirs
    # (the same letters, separators aside) canonicalized.
    names = {raw.get("project") or "" for raw in now_raw.values()}
    release_projects = {p for p, _ in releases}
    letters = {c.replace("-", "") for c in touched | release_projects}
    canon = {n: canonicalize_name(n) for n in names
             if n.lower().replace("-", "").replace("_", "").replace(".", "") in letters}
    by_project: dict[str, list[IndexFile]] = {}
    in_release: dict[str, PythonFile] = {}
    named = set(vacated.values())
    for sha, raw in now_raw.items():
        cname = canon.get(raw.get("project") or "")
        if cname is not None:
            if cname in touched:
                by_project.setdefault(raw.get("project") or "", []).append(t._index_file(sha, now[sha]))
            if cname in release_projects and (cname, raw.get("version") or "") in releases:
                in_release[sha] = now[sha]
        if named and raw.get("filename") in named and (up := t._upstream_path(now[sha])) is not None:
            dest = safe_join_str(top, *up)  # another file the upstream served at a path just freed
            if dest in vacated and not os.path.exists(dest):
                folders.link(store.blob_path(sha), dest)
    for canonical, version in releases:
        reuse.new.pop(f"pypi/{canonical}/{version}", None)
        _remove(top, ("pypi", canonical, version), ("json",))
    t._write_json_api(store, in_release, top, base, reuse, folders)
    simple = t._write_root_pages(top, list(names), folders, reuse)
    if not _mend_find_links(top, gone, came, now_raw):  # (a page not as this code writes it: made anew)
        t._put(top, "find-links.html", render_find_links([t._index_file(sha, m) for sha, m in now.items()], "../../"),
               gz=True)
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


def _mend_find_links(top: str, gone: Mapping[str, PythonFile], came: Mapping[str, PythonFile],
                     now_raw: Mapping[str, Any]) -> bool:
    """find-links.html (every file, a line each, by filename then sha256) brought up to date from the
    tree's own: the lines of the files gone taken out, those of the files come put in where a whole
    build writes them; the other lines are not read. False, with nothing written, when the page is
    not as this code writes it."""
    import bisect

    from airgap_mirror.publish import tree as t

    try:
        with open(f"{top}/find-links.html", encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError):
        return False
    if not (text.startswith(FIND_LINKS_HEAD) and text.endswith(FIND_LINKS_TAIL)):
        return False
    body = text[len(FIND_LINKS_HEAD):len(text) - len(FIND_LINKS_TAIL)]
    rows = body.split("\n") if body else []
    out = set()
    for sha in gone:
        at = body.find(f"#sha256={sha}\"")
        if at < 0:
            return False
        out.add(body.count("\n", 0, at))
    for n in sorted(out, reverse=True):
        del rows[n]

    def key(row: str) -> tuple[str, str]:
        sha = row[row.find("#sha256=") + 8:][:64]
        return str(now_raw[sha].get("filename")), sha

    try:
        for row in anchor_rows([t._index_file(sha, meta) for sha, meta in came.items()], "../../"):
            bisect.insort(rows, row, key=key)
    except KeyError:  # (a line of a file neither snapshot has)
        return False
    if len(rows) != len(now_raw):
        return False
    t._put(top, "find-links.html", find_links_page(rows), gz=True)
    return True


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

