"""The floor of serving a published tree from Python on granian, for scripts/bench's serve section.

Each request is one dict lookup: a page (its gzipped JSON or HTML, by the Accept header) or a
`.metadata` is sent from memory once read, any other path is handed to granian to send as a file
(`response_file`). No validators, no ranges, no metrics, no access log, no path checks, no 404s
worth the name: nothing a server for users may leave out. What `mirror serve` does per request
costs on top of this; what this costs is granian's RSGI bridge and the interpreter's, which no app
on granian goes below. Not for any use but measuring: it serves whatever path it is asked for.

    FLOOR_TREE=STORE/published/current granian --interface rsgi --working-dir scripts floor_app:app
"""

from __future__ import annotations

import os
from typing import Any

ROOT = os.environ.get("FLOOR_TREE", ".")
_JSON = "application/vnd.pypi.simple.v1+json"
_kept: dict[tuple[str, bool], tuple[list[tuple[str, str]], bytes]] = {}


class Floor:
    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        path: str = scope.path
        if path.endswith("/") or path.endswith(".metadata"):
            as_json = path.endswith("/") and "json" in (scope.headers.get("accept") or "")
            kept = _kept.get((path, as_json))
            if kept is None:
                if path.endswith("/"):
                    name = path + ("index.json" if as_json else "index.html")
                    headers = [("content-type", _JSON if as_json else "text/html"), ("content-encoding", "gzip")]
                    with open(ROOT + name + ".gz", "rb") as fh:
                        kept = headers, fh.read()
                else:
                    with open(ROOT + path, "rb") as fh:
                        kept = [("content-type", "application/octet-stream")], fh.read()
                _kept[(path, as_json)] = kept
            proto.response_bytes(200, kept[0], kept[1])
        else:
            proto.response_file(200, [("content-type", "application/octet-stream")], ROOT + path)


app = Floor()
