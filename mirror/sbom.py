"""A CycloneDX 1.6 SBOM of a snapshot: every Python distribution file and every plug-in package
(Debian's, through the `airgap_mirror.sbom` hook) with its purl, version, sha256, licence where the
metadata names one, and the apps and targets that need it.

Built with cyclonedx-python-lib (the CycloneDX project's own model, serializer and schema
validation) rather than by hand. The same snapshot gives the same bytes, outside and inside: the
serial number derives from the snapshot id and the timestamp is the snapshot's creation time.
"""

from __future__ import annotations

import email.parser
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from airgap_mirror.store import Store
from airgap_mirror.store.snapshots import Snapshot

__all__ = ["components", "build_sbom", "sbom_blob", "SBOM_MEDIA_TYPE"]

SBOM_MEDIA_TYPE = "application/vnd.cyclonedx+json"
_PART = 2000  # components built through cyclonedx-python-lib at a time
_KEEP_PREVIOUS = 3  # SBOMs kept with what their entries were read from, for the next snapshot's
_NS = uuid.UUID("6f1c3c8e-5b0e-4d55-9d0b-7a0f5e1b2c3d")  # airgap-mirror's namespace for SBOM serial numbers


def _pypi_purl(project: str, version: str, filename: str) -> str:
    name = project.lower().replace("_", "-").replace(".", "-")
    return f"pkg:pypi/{quote(name)}@{quote(version, safe='')}?file_name={quote(filename, safe='')}"


def components(snap: Snapshot) -> list[dict[str, Any]]:
    """Every package file of the snapshot, sorted by purl: {purl, name, version, sha256, size, kind,
    needed_by: [APP/TARGET, APP/apt:TARGET, installers/TARGET, build/TARGET ...], metadata_sha256}.
    What both the SBOM and `bundle show` list."""
    from airgap_mirror.interfaces import sbom_hooks

    needed: dict[str, set[str]] = {}
    for app, entry in snap.apps.items():
        for tid, t in entry.all_targets():  # Python's by id, a plug-in's as SECTION:TARGET
            for sha in t.files:
                needed.setdefault(sha, set()).add(f"{app}/{tid}")
    # per target: pip/setuptools for the target, sdists' build requirements
    for role, groups in (("installers", snap.python.installers), ("build", snap.python.build)):
        for tid, shas in groups.items():
            for sha in shas:
                needed.setdefault(sha, set()).add(f"{role}/{tid}")
    out = []
    for sha, meta in snap.python.files.items():
        project, version = meta.project or "", meta.version or ""
        out.append({"purl": _pypi_purl(project, version, meta.filename), "name": project,
                    "version": version, "sha256": sha, "size": meta.size, "kind": "python",
                    "needed_by": sorted(needed.get(sha, ())), "metadata_sha256": meta.metadata_sha256})
    hooks = {h.section: h for h in sbom_hooks()}
    for name, section in snap.sections.items():
        hook = hooks.get(name)
        for sha, f in section.files.items():
            pname, pversion, purl = hook.describe(f) if hook else (f.filename or sha, "", f"pkg:generic/{sha}")
            out.append({"purl": purl, "name": pname, "version": pversion, "sha256": sha, "size": f.size,
                        "kind": name, "needed_by": sorted(needed.get(sha, ())), "metadata_sha256": None})
    return sorted(out, key=lambda c: (c["purl"], c["sha256"]))


def _licence(store: Store | None, metadata_sha: str | None) -> str | None:
    """What a distribution's core metadata says of its licence: License-Expression (PEP 639), else a
    one-line License field, else the licence classifiers."""
    if store is None or not metadata_sha or not store.has_blob(metadata_sha):
        return None
    msg = email.parser.BytesParser().parsebytes(store.blob_path(metadata_sha).read_bytes(), headersonly=True)
    expr = str(msg.get("License-Expression") or "").strip()
    if expr:
        return expr
    text = str(msg.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 100 and text.upper() not in ("UNKNOWN", "NONE"):
        return text
    classifiers = [str(c).split("::")[-1].strip() for c in msg.get_all("Classifier") or []
                   if str(c).startswith("License ::") and str(c).count("::") >= 2]
    return " OR ".join(classifiers) if classifiers else None


def _cyclonedx_json(store: Store | None, snap: Snapshot, comps: list[dict[str, Any]], created: str | None) -> dict[str, Any]:
    """The SBOM document of `comps` as cyclonedx-python-lib writes it (parsed)."""
    try:
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # cyclonedx-python-lib before 11.6
        from cyclonedx.factory.license import LicenseFactory  # type: ignore[no-redef, unused-ignore]
    import json

    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.dependency import Dependency
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    bom = Bom(serial_number=uuid.uuid5(_NS, snap.id or "unnamed"))
    bom.metadata.timestamp = (datetime.fromisoformat(created) if created else datetime(1970, 1, 1, tzinfo=UTC))
    root = Component(name="airgap-mirror snapshot", version=(snap.id or "")[:16], type=ComponentType.APPLICATION,
                     bom_ref=f"snapshot:{snap.id}")
    bom.metadata.component = root
    factory = LicenseFactory()
    parts = []
    for c in comps:
        licence = _licence(store, c["metadata_sha256"]) if c["kind"] == "python" else None
        comp = Component(
            name=c["name"], version=c["version"], type=ComponentType.LIBRARY, bom_ref=c["purl"],
            purl=PackageURL.from_string(c["purl"]), hashes=[HashType(alg=HashAlgorithm.SHA_256, content=c["sha256"])],
            licenses=[factory.make_from_string(licence)] if licence else [],
            properties=[Property(name="airgap-mirror:needed-by", value=n) for n in c["needed_by"]]
            + [Property(name="airgap-mirror:kind", value=c["kind"])])
        bom.components.add(comp)
        parts.append(comp)
    # The dependency graph as `register_dependency` makes it (the root needs every component, each
    # needs nothing), built at once: that method looks its target up by a scan of every dependency so
    # far, and the JSON output's validation calls it once per component again, which made a
    # 20,000-file snapshot's SBOM take minutes (n² comparisons). The same graph, with the lookups
    # made against a dict.
    bom.dependencies.update([Dependency(ref=root.bom_ref, dependencies=[Dependency(ref=c.bom_ref) for c in parts]),
                             *(Dependency(ref=c.bom_ref) for c in parts)])
    known = {d.ref: d for d in bom.dependencies}

    def register(target: Any, depends_on: Any = None) -> None:
        if target.bom_ref in known and not depends_on:
            return
        Bom.register_dependency(bom, target, depends_on)
        known.update((d.ref, d) for d in bom.dependencies)

    bom.register_dependency = register  # type: ignore[method-assign]  # (this Bom only)
    doc: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string(indent=None))
    return doc


def _order(entry: dict[str, Any]) -> tuple[Any, ...]:
    """cyclonedx-python-lib's order of our components (all libraries without a group): name, then
    version (a missing one last), then bom-ref."""
    version = entry.get("version")
    return entry["name"], (1, "") if version is None else (0, version), entry["bom-ref"]


Previous = tuple[bytes, dict[str, "str | None"]]  # an SBOM, and the core metadata of each of its entries


def _reusable(previous: Previous, comps: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The previous SBOM's entries that a new build would write the same, by bom-ref: the same file
    (purl and sha256), needed by the same, with the same core metadata (where its licence comes from)."""
    import json

    data, metadata = previous
    try:
        old = {e["bom-ref"]: e for e in json.loads(data).get("components", []) if isinstance(e, dict) and "bom-ref" in e}
    except (ValueError, TypeError, KeyError):
        return {}
    out = {}
    for c in comps:
        e = old.get(c["purl"])
        if e is None or c["purl"] not in metadata or metadata[c["purl"]] != c["metadata_sha256"]:
            continue
        props = sorted((p.get("name"), p.get("value")) for p in e.get("properties", []))
        wanted = sorted([("airgap-mirror:needed-by", n) for n in c["needed_by"]] + [("airgap-mirror:kind", c["kind"])])
        if props == wanted and e.get("hashes") == [{"alg": "SHA-256", "content": c["sha256"]}]:
            out[c["purl"]] = e
    return out


def build_sbom(store: Store | None, snap: Snapshot, *, created: str | None = None,
               previous: Previous | None = None) -> bytes:
    """The SBOM as canonical JSON bytes (validated against the CycloneDX 1.6 schema by the tests).
    `previous`: an earlier snapshot's SBOM and the core metadata each of its components was read
    from (`sbom_blob` keeps both): its entries for the same files are taken as they are, and only the
    rest built (a nightly's SBOM of 20,000 files took 15 s, for a few new ones). The bytes are those
    of a build from nothing."""
    return _build(store, snap, components(snap), created, previous)


def _build(store: Store | None, snap: Snapshot, comps: list[dict[str, Any]], created: str | None,
           previous: Previous | None) -> bytes:
    from airgap_mirror.store.canonical import canonical_json

    reused = _reusable(previous, comps) if previous is not None else {}
    fresh = [c for c in comps if c["purl"] not in reused]
    # cyclonedx-python-lib in parts: its model of 20,000 components at once took 580 MiB; parts of a
    # few thousand, put together in its own order, give the same bytes (tested) in 170 MiB, in the
    # same time (its cost is per component).
    parts = [fresh[i:i + _PART] for i in range(0, len(fresh), _PART)] or [[]]
    doc = _cyclonedx_json(store, snap, parts[0], created)
    if reused or len(parts) > 1:
        entries = [*doc.get("components", []), *reused.values()]
        for part in parts[1:]:
            entries.extend(_cyclonedx_json(store, snap, part, created).get("components", []))
        doc["components"] = sorted(entries, key=_order)
        refs = sorted(c["purl"] for c in comps)
        doc["dependencies"] = sorted([{"ref": f"snapshot:{snap.id}", "dependsOn": refs}, *({"ref": r} for r in refs)],
                                     key=lambda d: d["ref"])
    return canonical_json(doc)


def sbom_blob(store: Store, snap: Snapshot, *, created: str | None) -> str:
    """The SBOM of a snapshot as a blob in the store (its sha256), built once per snapshot: what it
    says depends on the snapshot and its immutable files only, so a bundle per site of the same
    snapshot reuses it (`cache/sbom/ID`; a blob gc removed is built again). Built from the newest
    SBOM kept for another snapshot (`build_sbom`'s `previous`), with what its entries were read from
    (`cache/sbom/ID.metadata.json`)."""
    import json

    from airgap_mirror.store import atomic_write

    folder = store.cache / "sbom"
    record = folder / f"{snap.id}"
    if snap.id:
        try:
            sha = record.read_text().strip()
        except OSError:
            sha = ""
        if len(sha) == 64 and store.has_blob(sha):
            return sha
    comps = components(snap)
    sha = store.put_bytes(_build(store, snap, comps, created, _previous(store, snap.id)))
    if snap.id:
        metadata = {c["purl"]: c["metadata_sha256"] for c in comps}
        atomic_write(folder / f"{snap.id}.metadata.json", json.dumps(metadata, separators=(",", ":")).encode())
        atomic_write(record, sha.encode() + b"\n")
        # Only the newest few are ever read (megabytes each for a large store: a year of nightlies is not kept).
        for old in sorted(folder.glob("*.metadata.json"), key=lambda p: p.stat().st_mtime, reverse=True)[_KEEP_PREVIOUS:]:
            old.unlink(missing_ok=True)
    return sha


def _previous(store: Store, sid: str | None) -> Previous | None:
    """The newest SBOM kept for another snapshot, with its components' metadata; None if none is."""
    import contextlib
    import json

    folder = store.cache / "sbom"
    records = [p for p in folder.glob("*") if len(p.name) == 64 and p.name != sid] if folder.is_dir() else []
    for record in sorted(records, key=lambda p: p.stat().st_mtime, reverse=True)[:_KEEP_PREVIOUS]:
        with contextlib.suppress(OSError, ValueError):
            sha = record.read_text().strip()
            metadata = json.loads((folder / f"{record.name}.metadata.json").read_bytes())
            if len(sha) == 64 and store.has_blob(sha) and isinstance(metadata, dict):
                return store.blob_path(sha).read_bytes(), metadata
    return None
