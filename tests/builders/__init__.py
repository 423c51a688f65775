"""Builders of tiny real distributions: wheels pip installs, sdists pip builds (with no setuptools).

Every sdist carries an in-tree PEP 517 backend (standard library only), so building it needs
nothing from the network: only what its `build-system.requires` names, which is the point of the
build-requirement tests.
"""

from __future__ import annotations

import base64
import hashlib
import io
import tarfile
import textwrap
import zipfile
from pathlib import Path

from packaging.utils import canonicalize_name

_FIXED_TIME = (2024, 1, 1, 0, 0, 0)


def _dist_name(name: str) -> str:
    return canonicalize_name(name).replace("-", "_")


def metadata_text(name: str, version: str, requires: list[str] = (), requires_python: str | None = None) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if requires_python:
        lines.append(f"Requires-Python: {requires_python}")
    lines += [f"Requires-Dist: {r}" for r in requires]
    return "\n".join(lines) + "\n\n"


def make_wheel(dest: Path, name: str, version: str, *, tag: str = "py3-none-any", requires: list[str] = (),
               requires_python: str | None = None, module_text: str | None = None) -> Path:
    """A real, installable wheel with one module named after the project."""
    dist = _dist_name(name)
    filename = f"{dist}-{version}-{tag}.whl"
    distinfo = f"{dist}-{version}.dist-info"
    purelib = tag.endswith("-none-any")
    files = {
        f"{dist}/__init__.py": (module_text or f"__version__ = {version!r}\nTAG = {tag!r}\n").encode(),
        f"{distinfo}/METADATA": metadata_text(name, version, list(requires), requires_python).encode(),
        f"{distinfo}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: airgap-mirror-tests\nRoot-Is-Purelib: {'true' if purelib else 'false'}\n"
            + "".join(f"Tag: {t}\n" for t in _expand(tag))
        ).encode(),
    }
    record_lines = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record_lines.append(f"{path},sha256={digest},{len(data)}")
    record_lines.append(f"{distinfo}/RECORD,,")
    files[f"{distinfo}/RECORD"] = ("\n".join(record_lines) + "\n").encode()
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / filename
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data in files.items():
            zf.writestr(zipfile.ZipInfo(path, _FIXED_TIME), data)
    return out


def _expand(tag: str) -> list[str]:
    py, abi, plat = tag.split("-")
    return [f"{a}-{b}-{c}" for a in py.split(".") for b in abi.split(".") for c in plat.split(".")]


def make_sdist(dest: Path, name: str, version: str, *, requires: list[str] = (), build_requires: list[str] = (),
               requires_python: str | None = None, legacy: bool = False) -> Path:
    """A real sdist whose in-tree backend imports each build requirement before building."""
    dist = _dist_name(name)
    root = f"{dist}-{version}"
    metadata = metadata_text(name, version, list(requires), requires_python)
    imports = [_dist_name(canonicalize_name(r.split(";")[0].split("=")[0].split(">")[0].split("<")[0].strip()))
               for r in build_requires]
    files: dict[str, bytes] = {
        f"{root}/PKG-INFO": metadata.encode(),
        f"{root}/{dist}/__init__.py": f"__version__ = {version!r}\nBUILT_FROM = 'sdist'\n".encode(),
        f"{root}/_build/backend.py": textwrap.dedent(_TREE_BACKEND.format(
            name=name, version=version, dist=dist, imports=imports, metadata=metadata)).encode(),
    }
    if not legacy:
        reqs = ", ".join(f'"{r}"' for r in build_requires)
        files[f"{root}/pyproject.toml"] = (
            f'[build-system]\nrequires = [{reqs}]\nbuild-backend = "backend"\nbackend-path = ["_build"]\n'
        ).encode()
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"{dist}-{version}.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 1704067200
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    import gzip

    out.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return out


def write_simple_index(files_dir: Path, index_dir: Path, *, yanked: dict[str, str] | None = None,
                       requires_python: dict[str, str] | None = None) -> None:
    """A static PEP 503 index over a folder of distributions (what a plain upstream mirror serves)."""
    from packaging.utils import parse_sdist_filename, parse_wheel_filename

    by_project: dict[str, list[Path]] = {}
    for f in sorted(files_dir.iterdir()):
        name = parse_wheel_filename(f.name)[0] if f.name.endswith(".whl") else parse_sdist_filename(f.name)[0]
        by_project.setdefault(str(canonicalize_name(name)), []).append(f)
    index_dir.mkdir(parents=True, exist_ok=True)
    root_links = []
    for project, paths in sorted(by_project.items()):
        root_links.append(f'<a href="{project}/">{project}</a>')
        rows = []
        for p in paths:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            attrs = f'href="../../files/{p.name}#sha256={digest}"'
            if requires_python and p.name in requires_python:
                attrs += f' data-requires-python="{requires_python[p.name].replace(">", "&gt;").replace("<", "&lt;")}"'
            if yanked and p.name in yanked:
                attrs += f' data-yanked="{yanked[p.name]}"'
            rows.append(f"<a {attrs}>{p.name}</a><br/>")
        (index_dir / project).mkdir(exist_ok=True)
        (index_dir / project / "index.html").write_text(
            "<!DOCTYPE html><html><body>\n" + "\n".join(rows) + "\n</body></html>\n")
    (index_dir / "index.html").write_text("<!DOCTYPE html><html><body>\n" + "\n".join(root_links) + "\n</body></html>\n")



_TREE_BACKEND = '''
"""In-tree PEP 517 backend (sdists and source trees): sdist and pure wheel, standard library only."""
import base64, gzip, hashlib, io, os, tarfile, zipfile


NAME = {name!r}


VERSION = {version!r}


DIST = {dist!r}


IMPORTS = {imports!r}


METADATA = {metadata!r}


HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _check_build_deps():
    for mod in IMPORTS:
        __import__(mod)  # fails unless the build requirement was installed from the index


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def _tree():
    out = {{}}
    for top in ("pyproject.toml", "_build/backend.py"):
        if os.path.exists(os.path.join(HERE, top)):  # a legacy sdist has no pyproject.toml
            with open(os.path.join(HERE, top), "rb") as fh:
                out[top] = fh.read()
    for fn in sorted(os.listdir(os.path.join(HERE, DIST))):
        if fn.endswith(".py"):
            with open(os.path.join(HERE, DIST, fn), "rb") as fh:
                out[f"{{DIST}}/{{fn}}"] = fh.read()
    return out


def build_sdist(sdist_directory, config_settings=None):
    root = f"{{DIST}}-{{VERSION}}"
    files = dict(_tree())
    files["PKG-INFO"] = METADATA.encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(f"{{root}}/{{path}}")
            info.size, info.mtime, info.mode = len(data), int(os.environ.get("SOURCE_DATE_EPOCH", "1704067200")), 0o644
            tf.addfile(info, io.BytesIO(data))
    name = f"{{root}}.tar.gz"
    with open(os.path.join(sdist_directory, name), "wb") as fh:
        fh.write(gzip.compress(buf.getvalue(), mtime=0))
    return name


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    d = os.path.join(metadata_directory, f"{{DIST}}-{{VERSION}}.dist-info")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w") as fh:
        fh.write(METADATA)
    return os.path.basename(d)


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return build_wheel(wheel_directory, config_settings, metadata_directory, _editable=True)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None, _editable=False):
    _check_build_deps()
    name = f"{{DIST}}-{{VERSION}}-py3-none-any.whl"
    info = f"{{DIST}}-{{VERSION}}.dist-info"
    if _editable:
        files = {{f"_{{DIST}}_editable.pth": (HERE + "\\n").encode()}}
    else:
        files = {{p: d for p, d in _tree().items() if p.startswith(DIST + "/")}}
    files[f"{{info}}/METADATA"] = METADATA.encode()
    files[f"{{info}}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: in-tree\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    rec = []
    for p, data in files.items():
        dg = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rec.append(f"{{p}},sha256={{dg}},{{len(data)}}")
    rec.append(f"{{info}}/RECORD,,")
    files[f"{{info}}/RECORD"] = ("\\n".join(rec) + "\\n").encode()
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as zf:
        for p, data in sorted(files.items()):
            zf.writestr(zipfile.ZipInfo(p, (2024, 1, 1, 0, 0, 0)), data)
    return name
'''


def make_project(dest: Path, name: str, version: str, *, requires: list[str] = (), marker: str = "") -> Path:
    """A source tree (what a git repository or an app's own folder holds) that builds offline."""
    dist = _dist_name(name)
    metadata = metadata_text(name, version, list(requires))
    (dest / "_build").mkdir(parents=True, exist_ok=True)
    (dest / dist).mkdir(exist_ok=True)
    (dest / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["_build"]\n\n'
        f'[project]\nname = "{name}"\nversion = "{version}"\n')
    (dest / "_build" / "backend.py").write_text(textwrap.dedent(_TREE_BACKEND.format(
        name=name, version=version, dist=dist, imports=[], metadata=metadata)))
    (dest / dist / "__init__.py").write_text(f"__version__ = {version!r}\nFROM = {marker!r}\n")
    return dest
