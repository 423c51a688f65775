"""PEP 740 provenance carried across: where the upstream's page names a file's provenance, the sync
keeps it beside the file, a bundle carries it, and the mirror serves it at the Integrity API's path,
named by its own pages; inside, offline, the real `pypi-attestations` verifies the file against it.

The distribution and its provenance are real (what PyPI served for them: the test assets of the
pypi-attestations sdist, fetched once by scripts/test set-up)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from tests.builders import make_wheel
from tests.builders.cli import Served, run_mirror
from tests.builders.upstreams import X86, StaticServer, clean_env, write_json_index

REPO = Path(__file__).resolve().parents[2]
ATTEST = REPO / ".cache" / "attest"  # pypi-attestations 0.0.31 and its sdist (scripts/test set-up)
SDIST = ATTEST / "pypi_attestations-0.0.31.tar.gz"
WHEEL = "circleci_sign_publish_example-0.0.1.dev137-py3-none-any.whl"
PUBLISHER = ("--circleci-project-id", "fdd9283f-e619-46af-8f9c-851f7d3e8b2b",
             "--circleci-pipeline-definition-id", "8e4f8ab2-8d7c-4827-9f15-de076d6d647f")

pytestmark = pytest.mark.skipif(not (ATTEST / "bin" / "pypi-attestations").is_file() or not SDIST.is_file(),
                                reason="no pypi-attestations in .cache/attest (scripts/test set-up)")


def _asset(name: str) -> bytes:
    with tarfile.open(SDIST) as tar:
        member = tar.extractfile(f"pypi_attestations-0.0.31/test/assets/{name}")
        assert member is not None
        return member.read()


@pytest.fixture
def attested_upstream(tmp_path):
    """A PEP 691 upstream serving the real wheel with its real provenance, and beta, whose page
    names a provenance that attests another file (the same one)."""
    root = tmp_path / "up"
    files = root / "files"
    files.mkdir(parents=True)
    (files / WHEEL).write_bytes(_asset(WHEEL))
    make_wheel(files, "beta", "1.0")
    prov = root / "integrity" / "circleci-sign-publish-example" / "0.0.1.dev137" / WHEEL / "provenance"
    prov.parent.mkdir(parents=True)
    prov.write_bytes(_asset(WHEEL + ".provenance"))
    rel = f"../../integrity/circleci-sign-publish-example/0.0.1.dev137/{WHEEL}/provenance"
    write_json_index(files, root / "simple", {}, provenances={WHEEL: rel, "beta-1.0-py3-none-any.whl": rel})
    server = StaticServer(root, json_pages=True)
    server.provenance = prov.read_bytes()  # type: ignore[attr-defined]
    yield server
    server.stop()


def _verify(dist: Path, provenance: Path) -> subprocess.CompletedProcess[str]:
    """`pypi-attestations verify pypi --offline` in a network namespace of its own: no network at all."""
    return subprocess.run(["unshare", "--net", str(ATTEST / "bin" / "pypi-attestations"), "verify", "pypi", "--offline",
                           "--provenance-file", str(provenance), *PUBLISHER, str(dist)],
                          capture_output=True, text=True, env=clean_env(HOME=str(dist.parent)))


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare (util-linux)")
def test_provenance_is_carried_served_and_verifies_inside_offline(attested_upstream, tmp_path):
    app = tmp_path / "apps" / "attested"
    app.mkdir(parents=True)
    (app / "requirements.txt").write_text("circleci-sign-publish-example==0.0.1.dev137\nbeta==1.0\n")
    outside = tmp_path / "outside"
    sync = json.loads(run_mirror("sync", str(app), "--store", str(outside), "--python", "3.11", "--platform", X86,
                                 "--index-url", attested_upstream.url + "/simple", "--installers", "", "--json").stdout)
    assert sync["ok"], sync
    # beta's page names a provenance that attests another file: not kept, and said
    assert any("beta-1.0-py3-none-any.whl: the provenance its index names" in w and "not this file" in w
               for w in sync["warnings"]), sync["warnings"]
    snap = json.loads((outside / "store-v1" / "snapshots" / f"{sync['snapshot']}.json").read_text())
    by_name = {f["filename"]: f for f in snap["python"]["files"].values()}
    assert "provenance_sha256" in by_name[WHEEL] and "provenance_sha256" not in by_name["beta-1.0-py3-none-any.whl"]

    # Across the gap: a signed bundle, verified and imported into a store that never saw the upstream.
    run_mirror("keygen", "--out", str(tmp_path / "keys" / "site"))
    run_mirror("bundle", "create", "--store", str(outside), "--key", str(tmp_path / "keys" / "site.key"),
               "-o", str(tmp_path / "media" / "full.bundle"))
    inside = tmp_path / "inside"
    run_mirror("trust", "add", str(tmp_path / "keys" / "site.pub"), "--store", str(inside))
    run_mirror("bundle", "import", str(tmp_path / "media" / "full.bundle"), "--store", str(inside))
    attested_upstream.stop()
    served = Served(inside)
    try:
        page_url = served.simple + "circleci-sign-publish-example/"
        page = httpx.get(page_url, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        (entry,) = page.json()["files"]
        assert page.json()["meta"]["api-version"] == "1.4"
        prov_url = urljoin(page_url, entry["provenance"])
        assert prov_url.endswith(f"/integrity/circleci-sign-publish-example/0.0.1.dev137/{WHEEL}/provenance")
        got = httpx.get(prov_url)
        assert got.status_code == 200 and got.headers["content-type"] == "application/vnd.pypi.integrity.v1+json"
        assert got.content == attested_upstream.provenance  # as the upstream served it, byte for byte
        html = httpx.get(page_url, headers={"Accept": "text/html"}).text
        assert f'data-provenance="{entry["provenance"]}"' in html
        beta = httpx.get(served.simple + "beta/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}).json()
        assert "provenance" not in beta["files"][0]
        dist = tmp_path / "fetched" / WHEEL
        dist.parent.mkdir()
        dist.write_bytes(httpx.get(urljoin(page_url, entry["url"])).content)
        (tmp_path / "fetched" / "provenance.json").write_bytes(got.content)
    finally:
        served.stop()
    ok = _verify(dist, tmp_path / "fetched" / "provenance.json")
    assert ok.returncode == 0 and f"OK: {WHEEL}" in ok.stdout + ok.stderr, ok.stdout + ok.stderr
    dist.write_bytes(dist.read_bytes() + b"x")  # a file changed on the way: the provenance refuses it
    bad = _verify(dist, tmp_path / "fetched" / "provenance.json")
    assert bad.returncode != 0 and "does not match distribution digest" in bad.stdout + bad.stderr


def test_an_upstream_page_names_provenance_in_json_and_html():
    from airgap_mirror.resolve.upstream import parse_project_page

    base = "https://idx.example/simple/x/"
    html = b'<a href="../../f/x-1.whl#sha256=ab" data-provenance="../../integrity/x/1/x-1.whl/provenance">x-1.whl</a>'
    js = json.dumps({"files": [{"filename": "x-1.whl", "url": "../../f/x-1.whl", "hashes": {"sha256": "ab"},
                                "provenance": "https://idx.example/integrity/x/1/x-1.whl/provenance"},
                               {"filename": "x-1.tar.gz", "url": "../../f/x-1.tar.gz", "hashes": {}, "provenance": None}]})
    for page in (parse_project_page(html, "text/html", base), parse_project_page(js.encode(), "application/json", base)):
        assert page["x-1.whl"].provenance == "https://idx.example/integrity/x/1/x-1.whl/provenance"
    assert parse_project_page(js.encode(), "application/json", base)["x-1.tar.gz"].provenance is None


def test_what_is_no_provenance_object_is_refused_by_its_reading():
    from airgap_mirror.sync.provenance import provenance_subjects

    real = json.loads(_asset(WHEEL + ".provenance"))
    assert (WHEEL, __import__("hashlib").sha256(_asset(WHEEL)).hexdigest()) in provenance_subjects(real)
    for bad in ({}, {"attestation_bundles": [{"attestations": [{"envelope": {"statement": "!!"}}]}]}, [1]):
        with pytest.raises(ValueError):
            provenance_subjects(bad)


def test_a_file_mirrored_before_its_index_named_a_provenance_gets_it_on_refresh(attested_upstream, tmp_path):
    root = Path(attested_upstream.httpd.RequestHandlerClass.keywords["directory"])  # type: ignore[attr-defined]
    write_json_index(root / "files", root / "simple", {})  # no provenance named yet
    app = tmp_path / "attested"
    app.mkdir()
    (app / "requirements.txt").write_text("circleci-sign-publish-example==0.0.1.dev137\n")
    store = tmp_path / "s"
    args = ("sync", str(app), "--store", str(store), "--python", "3.11", "--platform", X86,
            "--index-url", attested_upstream.url + "/simple", "--installers", "", "--json")

    def wheel_entry(sid: str) -> dict:
        snap = json.loads((store / "store-v1" / "snapshots" / f"{sid}.json").read_text())
        return next(f for f in snap["python"]["files"].values() if f["filename"] == WHEEL)

    first = json.loads(run_mirror(*args).stdout)
    assert "provenance_sha256" not in wheel_entry(first["snapshot"])
    write_json_index(root / "files", root / "simple", {}, provenances={
        WHEEL: f"../../integrity/circleci-sign-publish-example/0.0.1.dev137/{WHEEL}/provenance"})
    again = json.loads(run_mirror(*args, "--refresh").stdout)
    assert again["ok"] and again["snapshot"] != first["snapshot"]
    assert wheel_entry(again["snapshot"])["provenance_size"] == len(attested_upstream.provenance)


def test_a_lock_apps_files_get_their_provenance_when_pages_are_read(attested_upstream, tmp_path):
    """A lock app's files from the public index are taken from the lock, no page read (for speed);
    `sync --refresh` reads their pages, and so their provenance."""
    import hashlib

    app = tmp_path / "locked"
    app.mkdir()
    sha = hashlib.sha256(_asset(WHEEL)).hexdigest()
    (app / "pylock.toml").write_text(
        'lock-version = "1.0"\ncreated-by = "hand"\n\n[[packages]]\nname = "circleci-sign-publish-example"\n'
        f'version = "0.0.1.dev137"\nindex = "{attested_upstream.url}/simple"\n'
        f'wheels = [{{ url = "{attested_upstream.url}/files/{WHEEL}", hashes = {{ sha256 = "{sha}" }} }}]\n')
    store = tmp_path / "s"
    args = ("sync", str(app), "--store", str(store), "--python", "3.11", "--platform", X86,
            "--index-url", attested_upstream.url + "/simple", "--installers", "", "--json")

    def entry(sid: str) -> dict:
        snap = json.loads((store / "store-v1" / "snapshots" / f"{sid}.json").read_text())
        return snap["python"]["files"][sha]

    plain = json.loads(run_mirror(*args).stdout)
    assert plain["ok"] and "provenance_sha256" not in entry(plain["snapshot"])
    again = json.loads(run_mirror(*args, "--refresh").stdout)
    assert again["ok"] and entry(again["snapshot"])["provenance_size"] == len(attested_upstream.provenance)
