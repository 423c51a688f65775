"""The SBOM every bundle carries: CycloneDX 1.6 valid by the CycloneDX project's own schema check,
the same bytes outside, in the bundle and inside, and the same package list as `bundle show`."""

from __future__ import annotations

import io
import json
import tarfile

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator

from airgap_mirror.sbom import _licence, build_sbom, components
from airgap_mirror.store import Store
from airgap_mirror.store.snapshots import Snapshot
from tests.builders.bundles import raw_tar
from tests.builders.cli import run_mirror
from tests.builders.upstreams import DATA, X86


def _valid(data: bytes) -> dict:
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode())
    assert errors is None, errors
    return json.loads(data)


def test_the_sbom_travels_in_the_bundle_and_agrees_inside(upstream, tmp_path):
    out, inside = tmp_path / "out", tmp_path / "in"
    run_mirror("sync", str(DATA / "apps" / "shop"), "--store", str(out), "--python", "3.11", "--platform", X86,
               "--index-url", upstream.url + "/simple", "--installers", "")
    outside_sbom = run_mirror("sbom", "--store", str(out)).stdout.strip().encode()
    doc = _valid(outside_sbom)
    snap = Store(out).snapshot(Store(out).ref("current"))
    files = snap.python.files
    comps = {c["hashes"][0]["content"]: c for c in doc["components"]}
    assert set(comps) == set(files)                      # every distribution file, nothing else
    for sha, meta in files.items():
        c = comps[sha]
        assert c["purl"].startswith(f"pkg:pypi/{(meta.project or '').lower()}@{meta.version}?file_name=")
        assert c["version"] == meta.version
        needed = {p["value"] for p in c["properties"] if p["name"] == "airgap-mirror:needed-by"}
        assert needed and all(n.startswith(("shop/cp311", "build/cp311")) for n in needed), needed

    run_mirror("keygen", "--out", str(tmp_path / "k"))
    bundle = tmp_path / "b.bundle"
    made = json.loads(run_mirror("bundle", "create", "--store", str(out), "--key", str(tmp_path / "k.key"), "-o",
                                 str(bundle), "--json").stdout)
    with tarfile.open(fileobj=io.BytesIO(raw_tar(bundle))) as tar:
        carried = tar.extractfile(f"blobs/sha256/{made['sbom']}").read()
    assert carried == outside_sbom                       # covered by the signed manifest (its sha256 is listed)
    show = json.loads(run_mirror("bundle", "show", str(bundle), "--json").stdout)
    assert show["sbom"] == made["sbom"] and sorted(show["packages"]) == sorted(c["purl"] for c in doc["components"])
    assert (show["snapshot_files"], show["carried_files"]) == (len(files), made["blobs"])
    run_mirror("bundle", "import", str(bundle), "--store", str(inside), "--trust", str(tmp_path / "k.pub"), "--no-publish")
    assert run_mirror("sbom", "--store", str(inside)).stdout.strip().encode() == outside_sbom


def test_debian_packages_and_licences(tmp_path):
    store = Store(tmp_path / "s").create()
    meta = {
        "expr": b"Metadata-Version: 2.4\nName: a\nVersion: 1\nLicense-Expression: MIT OR Apache-2.0\n\n",
        "field": b"Metadata-Version: 2.1\nName: b\nVersion: 1\nLicense: BSD-3-Clause\n\n",
        "classifier": b"Metadata-Version: 2.1\nName: c\nVersion: 1\nLicense: UNKNOWN\n"
                      b"Classifier: License :: OSI Approved :: MIT License\n\n",
        "none": b"Metadata-Version: 2.1\nName: d\nVersion: 1\n\n",
    }
    shas = {k: store.put_bytes(v) for k, v in meta.items()}
    assert _licence(store, shas["expr"]) == "MIT OR Apache-2.0"
    assert _licence(store, shas["field"]) == "BSD-3-Clause"
    assert _licence(store, shas["classifier"]) == "MIT License"
    assert _licence(store, shas["none"]) is None
    doc = {
        "format_version": 1, "kind": "airgap-mirror/snapshot", "targets": {},
        "apps": {"web": {"targets": {"cp311-x": {"files": ["a" * 64]}}, "apt": {"bookworm-amd64": {"files": ["b" * 64]}}}},
        "python": {"files": {"a" * 64: {"filename": "a-1-py3-none-any.whl", "project": "A_b", "version": "1",
                                        "size": 5, "metadata_sha256": shas["expr"]}}},
        "apt": {"targets": {"bookworm-amd64": {}}, "files": {"b" * 64: {"filename": "libx_2.0-1_amd64.deb", "package": "libx",
                                                                        "version": "2.0-1+b1", "architecture": "amd64", "size": 7}}},
    }
    snap = Snapshot.from_dict(doc, id="c" * 64)
    data = build_sbom(store, snap, created="2026-12-01T00:00:00+00:00")
    assert data == build_sbom(store, snap, created="2026-12-01T00:00:00+00:00")   # the same bytes every time
    sbom = _valid(data)
    by_purl = {c["purl"]: c for c in sbom["components"]}
    deb = by_purl["pkg:deb/debian/libx@2.0-1%2Bb1?arch=amd64"]
    assert deb["version"] == "2.0-1+b1" and deb["hashes"][0]["content"] == "b" * 64
    assert {p["value"] for p in deb["properties"] if p["name"] == "airgap-mirror:needed-by"} == {"web/apt:bookworm-amd64"}
    py = by_purl["pkg:pypi/a-b@1?file_name=a-1-py3-none-any.whl"]
    assert py["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert [c["purl"] for c in components(snap)] == sorted(by_purl)


def test_an_sbom_built_in_parts_is_the_same_bytes(tmp_path, monkeypatch):
    """cyclonedx-python-lib builds a few thousand components at a time (its model of 20,000 took 580
    MiB): the parts put together are byte for byte the document it writes whole."""
    import airgap_mirror.sbom as sbom_mod

    store = Store(tmp_path / "s").create()
    meta = store.put_bytes(b"Metadata-Version: 2.1\nName: p\nVersion: 1\nLicense: MIT\n\n")
    files = {f"{i:064x}": {"filename": f"{n}-{v}-py3-none-any.whl", "project": n, "version": v, "size": 5,
                          "metadata_sha256": meta if i % 2 else None}
             for i, (n, v) in enumerate([("b", "1"), ("a", "2"), ("a", "10"), ("C", "1"), ("b", "1.0"), ("z", "0")])}
    snap = Snapshot.from_dict({"format_version": 1, "kind": "airgap-mirror/snapshot", "targets": {},
                               "apps": {"web": {"targets": {"cp311-x": {"files": sorted(files)[:4]}}}},
                               "python": {"files": files}}, id="e" * 64)
    whole = build_sbom(store, snap, created="2026-12-01T00:00:00+00:00")
    monkeypatch.setattr(sbom_mod, "_PART", 2)
    assert build_sbom(store, snap, created="2026-12-01T00:00:00+00:00") == whole
    assert len(_valid(whole)["components"]) == 6


def test_a_snapshot_s_sbom_is_built_once_and_again_after_gc(tmp_path, monkeypatch):
    """Bundles for several sites of one snapshot reuse its SBOM blob; one gc removed is built again."""
    import airgap_mirror.sbom as sbom_mod
    from airgap_bundles.keys import generate
    from airgap_bundles.writer import create_bundle
    from tests.builders.bundles import snapshot_of

    store = Store(tmp_path / "s").create()
    snapshot_of(store, [b"one" * 100, b"two" * 100])
    key = generate()
    built = []
    real = sbom_mod._build
    monkeypatch.setattr(sbom_mod, "_build", lambda *a, **k: built.append(1) or real(*a, **k))
    first = create_bundle(store, key, tmp_path / "a.bundle", site="a")
    second = create_bundle(store, key, tmp_path / "b.bundle", site="b")
    assert first.sbom == second.sbom and len(built) == 1
    store.blob_path(first.sbom).unlink()
    third = create_bundle(store, key, tmp_path / "c.bundle", site="c")
    assert third.sbom == first.sbom and len(built) == 2 and store.has_blob(third.sbom)


def test_a_nightly_s_sbom_is_built_from_the_last_one_with_the_same_bytes(tmp_path, monkeypatch):
    """The SBOM of a snapshot that changed a few files takes the previous SBOM's entries for the
    rest (20,000 files: 15 s for a few new ones) and is byte for byte the one built from nothing: a
    file added, one gone, one needed by another app, one whose metadata (its licence) changed."""
    import airgap_mirror.sbom as sbom_mod

    store = Store(tmp_path / "s").create()
    lic = {k: store.put_bytes(f"Metadata-Version: 2.1\nName: p\nVersion: 1\nLicense: {k}\n\n".encode())
           for k in ("MIT", "BSD", "ISC")}

    def doc(files: dict, needed: dict) -> dict:
        return {"format_version": 1, "kind": "airgap-mirror/snapshot", "targets": {},
                "apps": {app: {"targets": {"cp311-x": {"files": shas}},
                               "apt": {"bookworm-amd64": {"files": ["d" * 64] if app == "web" else []}}}
                         for app, shas in needed.items()},
                "python": {"files": files},
                "apt": {"targets": {"bookworm-amd64": {}}, "files": {"d" * 64: {
                    "filename": "libx_2.0-1_amd64.deb", "package": "libx", "version": "2.0-1", "architecture": "amd64", "size": 7}}}}

    def wheel(name: str, version: str, licence: str) -> dict:
        return {"filename": f"{name}-{version}-py3-none-any.whl", "project": name, "version": version, "size": 5,
                "metadata_sha256": lic[licence]}

    one = {"1" * 64: wheel("zeta", "1", "MIT"), "2" * 64: wheel("alpha", "2", "BSD"), "3" * 64: wheel("alpha", "1", "MIT"),
           "4" * 64: wheel("mid", "1.0", "MIT")}
    two = {**{s: m for s, m in one.items() if s != "2" * 64}, "5" * 64: wheel("beta", "1", "ISC"),
           "4" * 64: {**one["4" * 64], "metadata_sha256": lic["ISC"]}}
    snap1 = Snapshot.from_dict(doc(one, {"web": ["1" * 64, "2" * 64, "3" * 64, "4" * 64]}), id="a" * 64)
    snap2 = Snapshot.from_dict(doc(two, {"web": ["1" * 64, "5" * 64, "4" * 64], "api": ["3" * 64]}), id="b" * 64)
    built: list[int] = []
    real = sbom_mod._cyclonedx_json
    monkeypatch.setattr(sbom_mod, "_cyclonedx_json", lambda s, snap, comps, c: built.append(len(comps)) or real(s, snap, comps, c))
    first = sbom_mod.sbom_blob(store, snap1, created="2026-12-01T00:00:00+00:00")
    second = sbom_mod.sbom_blob(store, snap2, created="2026-12-02T00:00:00+00:00")
    # beta (new), alpha 1 (needed by another app now) and mid (other metadata) built; zeta and the .deb taken
    assert built == [5, 3]
    scratch = build_sbom(store, snap2, created="2026-12-02T00:00:00+00:00")
    assert store.blob_path(second).read_bytes() == scratch and first != second
    assert {c["name"]: c.get("licenses") for c in _valid(scratch)["components"]}["mid"] == [{"license": {"id": "ISC"}}]
    for n in range(4):  # what the next is built from is kept for the newest three only
        sbom_mod.sbom_blob(store, Snapshot.from_dict(doc(one, {"web": ["1" * 64]}), id=str(n) * 64), created=None)
    assert len(list((store.cache / "sbom").glob("*.metadata.json"))) == 3
