"""What an index's project page says of each file, in either form a simple index serves it."""

from __future__ import annotations

import json

from airgap_mirror.resolve.upstream import FileStatus, parse_project_page

PAGE = "https://pkgs.example.com/simple/demo/"


def test_a_json_page_gives_each_file_its_status_and_absolute_url():
    body = json.dumps({"meta": {"api-version": "1.1"}, "name": "demo", "files": [
        {"filename": "demo-1.0-py3-none-any.whl", "url": "https://files.example.com/a/demo-1.0-py3-none-any.whl#sha256=aa",
         "hashes": {"sha256": "aa"}, "requires-python": ">=3.9", "yanked": False},
        {"filename": "demo-0.9.tar.gz", "url": "../../files/demo-0.9.tar.gz", "hashes": {"sha256": "bb"},
         "yanked": "broken build"},
        {"filename": "demo-0.8.tar.gz", "url": "/files/demo-0.8.tar.gz", "hashes": {}, "yanked": True},
    ]}).encode()
    files = parse_project_page(body, "application/vnd.pypi.simple.v1+json", PAGE)
    assert files == {
        "demo-1.0-py3-none-any.whl": FileStatus(yanked=None, requires_python=">=3.9", sha256="aa",
                                                url="https://files.example.com/a/demo-1.0-py3-none-any.whl"),
        "demo-0.9.tar.gz": FileStatus(yanked="broken build", requires_python=None, sha256="bb",
                                      url="https://pkgs.example.com/files/demo-0.9.tar.gz"),
        "demo-0.8.tar.gz": FileStatus(yanked="", requires_python=None, sha256=None,
                                      url="https://pkgs.example.com/files/demo-0.8.tar.gz"),
    }


def test_an_html_page_gives_the_same_with_its_escapes_undone():
    body = (b'<html><body>'
            b'<a href="../../files/demo-1.0-py3-none-any.whl?x=1&amp;y=2#sha256=aa" '
            b'data-requires-python="&gt;=3.9">demo-1.0-py3-none-any.whl</a>'
            b'<a href="https://files.example.com/demo-0.9.tar.gz#sha256=bb" data-yanked="">demo-0.9.tar.gz</a>'
            b'</body></html>')
    files = parse_project_page(body, "text/html", PAGE)
    assert files == {
        "demo-1.0-py3-none-any.whl": FileStatus(yanked=None, requires_python=">=3.9", sha256="aa",
                                                url="https://pkgs.example.com/files/demo-1.0-py3-none-any.whl?x=1&y=2"),
        "demo-0.9.tar.gz": FileStatus(yanked="", requires_python=None, sha256="bb",
                                      url="https://files.example.com/demo-0.9.tar.gz"),
    }
