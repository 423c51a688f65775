"""Rendering the simple repository API pages: PEP 503 HTML and PEP 691 JSON, with PEP 658/700/714 fields.

Pure functions of values: each returns the page as a string; writing it is the publisher's job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

__all__ = ["IndexFile", "render_root_html", "render_root_json", "render_project_html", "render_project_json", "render_find_links",
           "API_VERSION", "JSON_TYPE", "HTML_TYPE"]

API_VERSION = "1.4"  # PEP 700 upload times (1.1), PEP 792 project status (1.4); 1.2 and 1.3 add nothing required
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
HTML_TYPE = "application/vnd.pypi.simple.v1+html"


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexFile:
    filename: str
    url: str  # relative to the project page
    sha256: str
    size: int
    requires_python: str | None = None
    yanked: str | None = None  # None: not yanked; "": yanked without a reason
    upload_time: str | None = None
    metadata_sha256: str | None = None
    provenance: str | None = None  # its PEP 740 provenance's URL, relative as `url` is


def _file_version(filename: str) -> Version | None:
    try:
        if filename.endswith(".whl"):
            return parse_wheel_filename(filename)[1]
        return parse_sdist_filename(filename)[1]
    except (ValueError, InvalidVersion):
        return None


def render_root_html(projects: list[str]) -> str:
    names = sorted({canonicalize_name(p) for p in projects})
    links = "\n".join(f'    <a href="{escape(n)}/">{escape(n)}</a>' for n in names)
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n'
        "    <title>Simple index</title>\n  </head>\n  <body>\n"
        f"{links}\n  </body>\n</html>\n"
    )


def render_root_json(projects: list[str]) -> str:
    names = sorted({canonicalize_name(p) for p in projects})
    return json.dumps({"meta": {"api-version": API_VERSION}, "projects": [{"name": n} for n in names]},
                      sort_keys=True, indent=None, separators=(",", ":"))


def _anchors(files: list[IndexFile], drop: str = "") -> str:
    """The files' anchors; `drop`: a prefix taken off their URLs (a page at another depth)."""
    return "\n".join(anchor_rows(files, drop))


def anchor_rows(files: list[IndexFile], drop: str = "") -> list[str]:
    """The files' anchors, a line each, by filename (then sha256: two builds of one wheel name, from
    two hosts, are in the same order whatever order they came in)."""
    rows = []
    for f in sorted(files, key=lambda f: (f.filename, f.sha256)):
        attrs = [f'href="{escape(f.url.removeprefix(drop))}#sha256={f.sha256}"']
        if f.requires_python:
            attrs.append(f'data-requires-python="{escape(f.requires_python)}"')
        if f.yanked is not None:
            attrs.append(f'data-yanked="{escape(f.yanked)}"')
        if f.metadata_sha256:
            # PEP 714 names the attribute data-core-metadata; older clients read data-dist-info-metadata.
            attrs.append(f'data-core-metadata="sha256={f.metadata_sha256}"')
            attrs.append(f'data-dist-info-metadata="sha256={f.metadata_sha256}"')
        if f.provenance:
            attrs.append(f'data-provenance="{escape(f.provenance.removeprefix(drop))}"')  # (PEP 740)
        rows.append(f"    <a {' '.join(attrs)}>{escape(f.filename)}</a><br/>")
    return rows


def render_project_html(project: str, files: list[IndexFile], status: tuple[str, str | None] | None = None) -> str:
    """A project's PEP 503 page; with its PEP 792 status (and reason) as meta tags, when not active."""
    name = canonicalize_name(project)
    meta = ""
    if status is not None:
        meta = f'    <meta name="pypi:project-status" content="{escape(status[0])}">\n'
        if status[1]:
            meta += f'    <meta name="pypi:project-status-reason" content="{escape(status[1])}">\n'
    return (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        f'    <meta name="pypi:repository-version" content="{API_VERSION}">\n{meta}'
        f"    <title>Links for {escape(name)}</title>\n  </head>\n  <body>\n"
        f"    <h1>Links for {escape(name)}</h1>\n{_anchors(files)}\n  </body>\n</html>\n"
    )


def render_find_links(files: list[IndexFile], drop: str = "") -> str:
    """Every file on one page, as pip's and uv's `--find-links` read it: for a host that cannot map
    /simple/NAME/ to a page (a bare bucket), `--no-index --find-links URL/find-links.html`. `drop`: a
    prefix taken off the files' URLs (the pages' `../../`: this page is at the top)."""
    return find_links_page(anchor_rows(files, drop))


FIND_LINKS_HEAD = "<!DOCTYPE html>\n<html>\n  <head>\n    <title>Every file of this mirror</title>\n  </head>\n  <body>\n"
FIND_LINKS_TAIL = "\n  </body>\n</html>\n"


def find_links_page(rows: list[str]) -> str:
    """The find-links page of these anchor rows (`anchor_rows`, in their order)."""
    return FIND_LINKS_HEAD + "\n".join(rows) + FIND_LINKS_TAIL


def render_project_json(project: str, files: list[IndexFile], status: tuple[str, str | None] | None = None) -> str:
    """A project's PEP 691 page; with its PEP 792 `project-status` when not active."""
    name = canonicalize_name(project)
    out_files = []
    versions: set[Version] = set()
    for f in sorted(files, key=lambda f: (f.filename, f.sha256)):
        entry: dict[str, object] = {
            "filename": f.filename,
            "url": f.url,
            "hashes": {"sha256": f.sha256},
            "requires-python": f.requires_python,
            "size": f.size,
            "yanked": (f.yanked or True) if f.yanked is not None else False,
        }
        if f.upload_time:
            entry["upload-time"] = f.upload_time
        if f.metadata_sha256:
            # PEP 714: JSON carries core-metadata only. pip 22.3 to 23.1 (Debian bookworm's 23.0.1,
            # the pip CPython 3.9.18 and 3.10.13 bundle) crash on a dict under the legacy key.
            entry["core-metadata"] = {"sha256": f.metadata_sha256}
        else:
            entry["core-metadata"] = False
        if f.provenance:
            entry["provenance"] = f.provenance  # (PEP 740)
        out_files.append(entry)
        v = _file_version(f.filename)
        if v is not None:
            versions.add(v)
    doc = {
        "meta": {"api-version": API_VERSION},
        "name": name,
        "files": out_files,
        "versions": [str(v) for v in sorted(versions)],
    }
    if status is not None:
        doc["project-status"] = {"status": status[0], **({"reason": status[1]} if status[1] else {})}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))
