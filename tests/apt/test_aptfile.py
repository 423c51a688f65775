"""Aptfile / packages.txt parsing: the forms real apps use, and errors that name file, line and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from airgap_apt.aptfile import parse_aptfile, read_aptfile
from airgap_apt.errors import AptfileError


def test_names_versions_arches_urls_and_repos(tmp_path: Path) -> None:
    text = """# system libraries
libpq-dev
unixodbc unixodbc-dev   # two on a line
tesseract-ocr=5.3.0-2
libc6:arm64
https://example.org/pool/tool_1.0_amd64.deb
:repo:deb [signed-by=keys/ms.gpg] https://packages.example.com/debian bookworm main contrib
:repo:deb [trusted=yes] http://repo.example.com/debian stable main

"""
    af = parse_aptfile(text, tmp_path / "Aptfile")
    assert [str(p) for p in af.packages] == ["libpq-dev", "unixodbc", "unixodbc-dev", "tesseract-ocr=5.3.0-2", "libc6:arm64"]
    assert af.packages[3].line == 4
    assert [d.url for d in af.debs] == ["https://example.org/pool/tool_1.0_amd64.deb"]
    first, second = af.repos
    assert (first.url, first.suite, first.components) == ("https://packages.example.com/debian", "bookworm", ("main", "contrib"))
    assert first.signed_by == str((tmp_path / "keys/ms.gpg").resolve()) and not first.trusted
    assert second.trusted and second.signed_by is None


def test_utf16_bom_and_crlf_read_like_utf8(tmp_path: Path) -> None:
    f = tmp_path / "Aptfile"
    f.write_bytes("\ufefflibpq-dev\r\nunixodbc-dev\r\n".encode("utf-16-le"))
    assert [p.name for p in read_aptfile(f).packages] == ["libpq-dev", "unixodbc-dev"]
    f.write_bytes(b"\xef\xbb\xbffreetds-dev\r\n")
    assert [p.name for p in read_aptfile(f).packages] == ["freetds-dev"]


@pytest.mark.parametrize(("line", "problem", "fix"), [
    ("apt-get install -y libpq-dev", "is a command", "write only the package names"),
    ("libpq-dev>=15", "not a package name", "name=VERSION"),
    ("libpq dev (>= 1)", "not a package name", "name=VERSION"),
    ("tool=latest", "not a Debian version", "name=1.2.3-1"),
    ("https://example.org/tool.tar.gz", "does not name a .deb", ":repo:"),
    (":repo:deb http://example.org/debian", "needs a URL and a suite", ":repo:deb"),
    (":repo:deb http://example.org/debian bookworm", "at least one component", ":repo:deb"),
    (":repo:deb [foo=bar] http://example.org/debian bookworm main", "unknown repository option", "signed-by="),
    (":repo:deb-src http://example.org/debian bookworm main", "sources, not packages", "deb"),
    (":repo:deb http://example.org/debian ./ ", "flat repositories", "dists/SUITE"),
    (":ppa:foo/bar", "unknown directive", ":repo:"),
])
def test_bad_lines_name_file_line_and_fix(tmp_path: Path, line: str, problem: str, fix: str) -> None:
    path = tmp_path / "app" / "Aptfile"
    with pytest.raises(AptfileError) as info:
        parse_aptfile(f"libpq-dev\n\n{line}\n", path)
    message = str(info.value)
    assert message.startswith(f"{path}:3: ")
    assert problem in message and fix in message


def test_rpm_style_names_parse_and_are_left_to_the_closure(tmp_path: Path) -> None:
    # unixODBC-devel is not a Debian name, but it is a plausible word: the closure suggests unixodbc-dev.
    assert [p.name for p in parse_aptfile("unixODBC-devel\n", tmp_path / "Aptfile").packages] == ["unixODBC-devel"]


def test_a_repo_line_comment_is_not_a_component():
    from airgap_apt.aptfile import parse_aptfile

    af = parse_aptfile(":repo:deb [trusted=yes] http://h/debian stable main  # our vendor\n", "Aptfile")
    assert af.repos[0].components == ("main",)
