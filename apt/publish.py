"""Publishing the APT side of a snapshot: a standard, signed Debian repository under `debian/`.

    debian/dists/SUITE/{InRelease,Release,Release.gpg}
    debian/dists/SUITE/main/binary-ARCH/Packages{,.gz,.xz} and by-hash/SHA256/<hex>
    debian/dists/SUITE/app-APP/binary-ARCH/...     what APP's own `:repo:` lines and .deb URLs brought
    debian/pool/main/<ab>/<sha256>/<file>.deb      hard-linked from the store
    debian/airgap-mirror.{asc,gpg}                 the public key clients put in Signed-By

Debian's packages are in `main`; a third-party package (an app's `:repo:` line or `.deb` URL) is
only in that app's own component, so it is never apt's candidate on a machine that lists `main`
alone: one app's `libfoo 9.9` cannot shadow Debian's `libfoo` for every other app.

Stanzas are upstream's text with only `Filename` rewritten. by-hash files of the tree being
replaced are carried into the new one, so a client that read the old InRelease still finds what
it names (apt's Acquire-By-Hash contract).
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import lzma
import re
from collections.abc import Mapping
from pathlib import Path

from airgap_mirror.publish import current_tree, link_or_copy
from airgap_mirror.publish.layout import Rule, Stage, TreeLayout
from airgap_mirror.store import Store
from airgap_mirror.store.model import SectionFile, SectionTarget
from airgap_mirror.store.names import safe_join
from airgap_mirror.store.snapshots import Snapshot

from .gpg import SigningKey

__all__ = ["publish_apt", "signing_key", "app_component", "KEY_NAME", "LAYOUT"]

# What the paths above are, for caching and for the order of an upload to object storage: the pool
# and by-hash files first (content-named), then Packages, then the signed Release files that name them.
LAYOUT = TreeLayout((
    Rule("debian/pool/**", Stage.FILES, immutable=True),
    Rule("debian/dists/*/*/binary-*/by-hash/**", Stage.SIDECARS, immutable=True),
    Rule("debian/dists/*/*/binary-*/Packages*", Stage.INDEXES),
    Rule("debian/dists/*/Release", Stage.ROOTS),
    Rule("debian/dists/*/Release.gpg", Stage.ROOTS),
    Rule("debian/dists/*/InRelease", Stage.ROOTS),
))

KEY_NAME = "airgap-mirror"
_FILENAME = re.compile(r"^Filename:.*$", re.M)


def app_component(app: str) -> str:
    """The component that holds an app's third-party packages (apt's component names: no spaces or slashes)."""
    return "app-" + re.sub(r"[^A-Za-z0-9._+-]", "-", app).lower()


def signing_key(store: Store) -> SigningKey:
    return SigningKey(store.root / "keys" / "gnupg")


def _pool_path(sha: str, filename: str) -> str:
    return f"pool/main/{sha[:2]}/{sha}/{filename}"


def _packages_text(files: Mapping[str, SectionFile], shas: set[str]) -> str:
    """The Packages index of these .debs: each one's stanza (the plug-in's own field) with its pool path."""
    entries = sorted((str(files[s].get("package")), str(files[s].get("version")), str(files[s].get("architecture")), s)
                     for s in shas)
    out = []
    for _, _, _, sha in entries:
        meta = files[sha]
        raw = str(meta.get("stanza", "")).strip("\n")
        new = f"Filename: {_pool_path(sha, meta.filename or sha)}"
        raw = _FILENAME.sub(new, raw, count=1) if _FILENAME.search(raw) else raw + "\n" + new
        out.append(raw)
    return "\n\n".join(out) + "\n" if out else ""


def _previous_by_hash(store: Store, distro: str) -> list[Path]:
    tree = current_tree(store)
    if tree is None:
        return []
    d = tree / "debian" / "dists" / distro
    return [p for p in d.glob("*/binary-*/by-hash/SHA256/*") if p.is_file()]


def publish_apt(store: Store, snapshot: Snapshot, root: Path) -> None:
    section = snapshot.section("apt")
    files = section.files
    if not files:
        return
    key = signing_key(store)
    if not key.exists():
        key.generate()
    repo = root / "debian"
    # target → component → files: Debian's in main, each app's third-party ones in its own.
    by_target: dict[str, dict[str, set[str]]] = {
        tid: {"main": {s for s in t.files() if s in files}}  # (its parts: the base's updates)
        for tid, t in section.targets.items()}
    for name in snapshot.apps:
        for tid, entry in snapshot.app_part(name, "apt").items():
            comps = by_target.setdefault(tid, {"main": set()})
            for s in entry.files:
                if s in files:
                    comps.setdefault(app_component(name) if files[s].get("third_party") else "main", set()).add(s)
    for sha, meta in files.items():
        link_or_copy(store.blob_path(sha), safe_join(repo, *_pool_path(sha, meta.filename or sha).split("/")))

    distros: dict[str, dict[str, dict[str, set[str]]]] = {}
    for tid, comps in by_target.items():
        t = section.targets.get(tid) or SectionTarget()
        distro, arch = str(t.get("distro") or tid.rsplit("-", 1)[0]), str(t.get("arch") or tid.rsplit("-", 1)[1])
        for comp, shas in comps.items():
            distros.setdefault(distro, {}).setdefault(arch, {}).setdefault(comp, set()).update(shas)

    for distro, arches in sorted(distros.items()):
        dist = safe_join(repo, "dists", distro)
        listed: list[tuple[str, bytes]] = []
        components = sorted({c for comps in arches.values() for c in comps}, key=lambda c: (c != "main", c))
        for arch, comp, shas in sorted((a, c, arches[a].get(c, set())) for a in arches for c in components):
            text = _packages_text(files, shas).encode("utf-8")
            rel = f"{comp}/binary-{arch}"
            variants = {"Packages": text, "Packages.gz": gzip.compress(text, 9, mtime=0),
                        "Packages.xz": lzma.compress(text, preset=6)}
            for name, data in variants.items():
                path = safe_join(dist, *rel.split("/"), name)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                by_hash = path.parent / "by-hash" / "SHA256" / hashlib.sha256(data).hexdigest()
                by_hash.parent.mkdir(parents=True, exist_ok=True)
                if not by_hash.exists():
                    link_or_copy(path, by_hash)
                listed.append((f"{rel}/{name}", data))
        for old in _previous_by_hash(store, distro):
            dest = dist / old.relative_to(old.parents[4])
            if not dest.exists():
                link_or_copy(old, dest)
        release = _release(distro, sorted(arches), components, listed)
        (dist / "Release").write_bytes(release)
        inrelease, detached = key.sign_release(release)
        (dist / "InRelease").write_bytes(inrelease)
        (dist / "Release.gpg").write_bytes(detached)
    (repo / f"{KEY_NAME}.asc").write_bytes(key.export(armor=True))
    (repo / f"{KEY_NAME}.gpg").write_bytes(key.export(armor=False))


def _release(distro: str, arches: list[str], components: list[str], listed: list[tuple[str, bytes]]) -> bytes:
    lines = [
        "Origin: airgap-mirror",
        "Label: airgap-mirror",
        f"Suite: {distro}",
        f"Codename: {distro}",
        f"Date: {email.utils.formatdate(usegmt=True)}",
        f"Architectures: {' '.join(arches)}",
        f"Components: {' '.join(components)}",
        "Acquire-By-Hash: yes",
        "Description: airgap-mirror snapshot",
        "MD5Sum:",
    ]
    lines += [f" {hashlib.md5(d, usedforsecurity=False).hexdigest()} {len(d):>10} {p}" for p, d in listed]
    lines.append("SHA256:")
    lines += [f" {hashlib.sha256(d).hexdigest()} {len(d):>10} {p}" for p, d in listed]
    return ("\n".join(lines) + "\n").encode("utf-8")
