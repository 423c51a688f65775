"""What is checked of a resolution against the index pages: dependency confusion (a private
package's name on the public index) and sdists that need compiling for the target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airgap_mirror.resolve import (
    IndexConfig,
    Pin,
)
from airgap_mirror.resolve.targets import PythonTarget
from airgap_mirror.store import Store
from airgap_mirror.urls import strip_credentials


def page_requests(pending: list[tuple[str, PythonTarget, list[Pin], IndexConfig]], public: str,
                   store: Store, *, every: bool = False) -> list[tuple[str, str]]:
    """(index, project) pages to read: every index of the app for files new to the catalog; for apps
    with a private index, every project on every index and on the public one (confusion check);
    with `every` (--refresh), every project's (its PEP 792 status read anew)."""
    wanted: set[tuple[str, str]] = set()
    known = store.catalogued((f.sha256, f.filename) for _, _, pins, _ in pending for pin in pins for f in pin.files)
    for _, _, pins, idx in pending:
        private = any(u != public for u in idx.search_order)
        for pin in pins:
            if any(f.origin for f in pin.files):
                continue  # built or copied by us: no index page
            new = any((f.sha256, f.filename) not in known for f in pin.files)
            sdist_only = all(f.kind == "sdist" for f in pin.files)  # warned of on every sync (compiled_sdists)
            if new or private or sdist_only or every:
                wanted.update((u, pin.name) for u in idx.search_order)
            if private:
                wanted.add((public, pin.name))
    return sorted(wanted)


def source_index(pages: Mapping[tuple[str, str], Mapping[str, Any]], idx: IndexConfig, name: str) -> str | None:
    """The index a project came from under first-index: the first in uv's order that lists it."""
    if len(idx.search_order) == 1:
        return idx.search_order[0]
    return next((u for u in idx.search_order if pages.get((u, name))), None)


def confusion_warnings(pins: list[Pin], idx: IndexConfig, public: str, pages: Mapping[tuple[str, str], Mapping[str, Any]]
               ) -> list[str]:
    """Projects taken from a private index whose name the public index also has, with other files."""
    if all(u == public for u in idx.search_order):
        return []
    out = []
    for pin in pins:
        if any(f.origin for f in pin.files):
            continue
        source = source_index(pages, idx, pin.name)
        public_page = pages.get((public, pin.name))
        if source is None or source == public or not public_page:
            continue
        public_hashes = {st.sha256 for st in public_page.values()}
        if all(f.sha256 in public_hashes for f in pin.files):
            continue  # the private index proxies the public one: the same files
        out.append(f"dependency confusion risk: {pin.name} {pin.version} is taken from {strip_credentials(source)} "
                   f"(the first index that has it), but {strip_credentials(public)} also has a project named "
                   f"{pin.name} with other files; check it is yours, and rename or reserve the name (--strict makes this an error)")
    return out


def _compiled_only(page: Mapping[str, Any]) -> bool:
    """Whether a project page lists wheels, none of them pure (`any`). A wheel's platform tags are
    the last part of its name (`...-cp311-cp311-manylinux_2_28_x86_64.whl`, several joined by dots):
    read off the name, stopping at the first pure one (pages list thousands)."""
    wheels = False
    for fname in page:
        if fname.endswith(".whl") and fname.count("-") >= 4:
            wheels = True
            if "any" in fname[:-4].rsplit("-", 1)[1].split("."):
                return False
    return wheels


def compiled_sdists(target: PythonTarget, pins: list[Pin], idx: IndexConfig,
                     pages: Mapping[tuple[str, str], Mapping[str, Any]], known: dict[tuple[str, str], bool]) -> list[str]:
    """Projects the target gets only as an sdist although they have compiled code (the index has
    platform wheels and no pure one): they are built inside the gap, which needs a compiler there.
    `known`: the answer by page, for the sync (the same pages come up in app after app)."""
    out = []
    for pin in pins:
        if not all(f.kind == "sdist" and not f.origin for f in pin.files):
            continue
        source = source_index(pages, idx, pin.name)
        if source is None:
            continue
        key = (source, pin.name)
        if key not in known:
            known[key] = _compiled_only(pages.get(key, {}))
        if known[key]:
            out.append(f"{pin.name} {pin.version}: {target.id} gets only the sdist, and the project ships compiled "
                       f"wheels for other platforms, so it will be built inside the gap (a compiler and headers "
                       f"needed there). --prefer-binary takes the newest version with a wheel for {target.id}; "
                       f"--only-binary {pin.name} fails instead (flags of sync, [python] in mirror.toml, or lines "
                       f"in the app's requirements.txt)")
    return out
