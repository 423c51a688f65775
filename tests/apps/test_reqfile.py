"""Requirements files read as pip reads them, and bad lines named with file, line and fix."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from airgap_mirror.apps import load_app
from airgap_mirror.apps.reqfile import parse_requirements_file
from airgap_mirror.errors import NotYetSupported, RequirementsError

TEXT = 'alpha==1.0\r\nbeta[x,y]>=2 ; python_version < "3.12"  # why\r\n\r\n# comment\r\ngamma \\\r\n  ==3.0\r\n'


@pytest.mark.parametrize(
    "encoded",
    [
        TEXT.encode("utf-8"),
        codecs.BOM_UTF8 + TEXT.encode("utf-8"),
        codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
        codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
    ],
    ids=["utf8-crlf", "utf8-bom", "utf16-le-bom", "utf16-be-bom"],
)
def test_encodings_and_line_endings(tmp_path: Path, encoded: bytes):
    f = tmp_path / "requirements.txt"
    f.write_bytes(encoded)
    parsed = parse_requirements_file(f)
    reqs = [(str(r.requirement), r.lineno) for r in parsed.requirements]
    assert reqs == [("alpha==1.0", 1), ('beta[x,y]>=2; python_version < "3.12"', 2), ("gamma==3.0", 5)]


def test_includes_constraints_options_hashes(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.txt").write_text("beta==1.0 --hash=sha256:" + "a" * 64 + "\n")
    (tmp_path / "c.txt").write_text("gamma<3\n")
    f = tmp_path / "requirements.txt"
    f.write_text("-r sub/base.txt\n-c c.txt\n--extra-index-url https://example.invalid/simple\n--pre\nalpha\n")
    parsed = parse_requirements_file(f)
    assert [str(r.requirement) for r in parsed.requirements] == ["beta==1.0", "alpha"]
    assert parsed.requirements[0].hashes == ("sha256:" + "a" * 64,)
    assert parsed.requirements[0].source == (tmp_path / "sub" / "base.txt").resolve()
    assert [str(c.requirement) for c in parsed.constraints] == ["gamma<3"]
    assert parsed.options.extra_index_urls == ("https://example.invalid/simple",)
    assert parsed.options.pre


@pytest.mark.parametrize(
    ("line", "error", "words"),
    [
        ("alpha>=>1", RequirementsError, "invalid requirement"),
        ("numpy=1.21.0", RequirementsError, "numpy==1.21.0"),
        ("--frobnicate", RequirementsError, "unknown option"),
        ("-r missing.txt", RequirementsError, "does not exist"),
        ("hg+https://example.invalid/org/pkg#egg=pkg", NotYetSupported, "only git"),
        ("git+ftp://example.invalid/org/pkg.git", RequirementsError, "git+https://"),
        ("https://example.invalid/project/page", RequirementsError, "not a wheel or sdist URL"),
        ("--extra-index-url https://user:pa55word@example.invalid/simple", RequirementsError, "${USER}:${PASSWORD}"),
        ("-e alpha==1.0", RequirementsError, "neither a path nor a git URL"),
        ("-c constraints-missing.txt", RequirementsError, "does not exist"),
        ("--index-url https://bot:${token}@example.invalid/simple", RequirementsError, "capitals"),
        ("pkg @ https://user:pa55word@example.invalid/pkg-1.0.tar.gz", RequirementsError, "literal password"),
        ("--index-url http://[::1/simple", RequirementsError, "not a valid URL"),
        ("-r " + "x/" * 10 + "../../../../../../../../../../../etc/passwd", RequirementsError, "outside the app folder"),
    ],
)
def test_bad_line_names_file_line_and_fix(tmp_path: Path, line: str, error: type, words: str):
    f = tmp_path / "requirements.txt"
    f.write_text(f"alpha==1.0\n\n{line}\n")
    with pytest.raises(error) as info:
        parse_requirements_file(f)
    msg = str(info.value)
    assert msg.startswith(f"{f}:3: ")
    assert words in msg
    assert "pa55word" not in msg  # a literal password is named as such, never shown


def test_credentials_never_echoed(tmp_path: Path):
    f = tmp_path / "requirements.txt"
    f.write_text("--index-url https://user:s3cret@example.invalid/simple\nalpha\n")
    with pytest.raises(RequirementsError) as info:
        parse_requirements_file(f)
    assert "s3cret" not in str(info.value)


def test_conda_export_recognised(tmp_path: Path):
    f = tmp_path / "requirements.txt"
    f.write_text("# platform: linux-64\nnumpy=1.21.0=py39h89e85a6_0\npandas=1.3.0=py39hde0f152_0\n")
    with pytest.raises(RequirementsError, match="conda export"):
        parse_requirements_file(f)


def test_not_utf8_is_an_error(tmp_path: Path):
    f = tmp_path / "requirements.txt"
    f.write_bytes("alpha==1.0\nb\xe9ta==1\n".encode("latin-1"))
    with pytest.raises(RequirementsError, match=r"requirements.txt:2: file is not UTF-8"):
        parse_requirements_file(f)


def test_app_folder(tmp_path: Path):
    (tmp_path / "requirements.txt").write_text("alpha\n")
    (tmp_path / "runtime.txt").write_text("python-3.10.12\n")
    (tmp_path / "Aptfile").write_text("libpq5\n")
    (tmp_path / "environment.yml").write_text("dependencies:\n  - numpy=1.26\n  - pip\n  - pip:\n    - beta==1.0\n")
    app = load_app(tmp_path)
    assert app.python == "3.10.12"
    assert [str(r.requirement) for r in app.requirements] == ["alpha", "beta==1.0"]
    assert app.requirements[1].lineno == 5
    assert app.conda_packages == ("numpy=1.26",)
    assert app.apt_files == (tmp_path / "Aptfile",)


def test_environment_yml_bad_pip_line_points_at_yaml_line(tmp_path: Path):
    (tmp_path / "environment.yml").write_text("name: x\ndependencies:\n  - pip:\n    - ok==1\n    - bad==\n")
    with pytest.raises(RequirementsError, match=r"environment.yml:5: invalid requirement"):
        load_app(tmp_path)


def test_bad_runtime(tmp_path: Path):
    (tmp_path / "runtime.txt").write_text("ruby-3.2\n")
    with pytest.raises(RequirementsError, match="python-3.11"):
        load_app(tmp_path)


@pytest.mark.parametrize(("text", "python"), [("python-3.10.12", "3.10.12"), ("python-3.9.x", "3.9"),
                                              ("Python 3.10.2", "3.10.2"), ("3.11", "3.11")])
def test_runtime_forms_seen_in_real_apps(tmp_path: Path, text: str, python: str):
    (tmp_path / "runtime.txt").write_text(text + "\n")
    assert load_app(tmp_path).python == python



def test_option_words_split_as_shlex_splits_them():
    """A line's options are split as shlex splits them (pip's rule), whatever the line holds: the
    fast split of a plain line gives the same words (random lines of quotes, escapes, every kind
    of whitespace, non-ASCII ones)."""
    import random
    import shlex

    from airgap_mirror.apps.reqfile import _words

    rnd = random.Random(7)
    alphabet = "ab-=:#/ \t\r\x0b\x0c\x1c\x1f\x85\xa0\u2003\"'\\"
    fast = 0
    for _ in range(20_000):
        line = "--hash=" + "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 14)))
        try:
            expected = shlex.split(line, posix=True)
        except ValueError:
            continue
        assert _words(line) == expected, repr(line)
        fast += line.isascii() and not set(line) & set("'\"\\\x0b\x0c\x1c\x1f")
    assert fast > 1000  # (the fast split was tried)
