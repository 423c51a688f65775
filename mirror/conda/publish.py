"""Publishing the conda side of a snapshot: one static channel per upstream channel, and a lock per
app and target that `conda create --file` (and micromamba, pixi) reads.

    conda/CHANNEL/SUBDIR/<package>.conda|.tar.bz2     hard-linked from the store
    conda/CHANNEL/SUBDIR/repodata.json (+ .zst)        the upstream records as they were (patches kept)
    conda/CHANNEL/SUBDIR/repodata_shards.msgpack.zst   CEP 16: package name → its shard's sha256
    conda/CHANNEL/SUBDIR/shards/<sha256>.msgpack.zst   one per package name, content-named (immutable)
    conda/CHANNEL/noarch/repodata.json                 always, as clients require
    locks/APP/TARGET/conda-explicit.txt                @EXPLICIT, each package URL#sha256

Repodata is written from the records the sync took from the channel, not re-indexed from the
archives: a channel's repodata patches (fixed dependencies) are part of what was solved.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from airgap_mirror.conda import channel_folder
from airgap_mirror.publish import base_url, link_or_copy
from airgap_mirror.publish.layout import Rule, Stage, TreeLayout
from airgap_mirror.store import Store
from airgap_mirror.store.names import safe_join
from airgap_mirror.store.snapshots import Snapshot

__all__ = ["publish_conda", "LAYOUT", "folders"]

LAYOUT = TreeLayout((
    Rule("conda/*/*/repodata.json*", Stage.INDEXES),
    Rule("conda/*/*/repodata_shards.msgpack.zst", Stage.INDEXES),
    Rule("conda/*/*/shards/*.msgpack.zst", Stage.SIDECARS, immutable=True),
    Rule("conda/*/*/*.conda", Stage.FILES, immutable=True),
    Rule("conda/*/*/*.tar.bz2", Stage.FILES, immutable=True),
))


def folders(channels: set[str]) -> dict[str, str]:
    """Channel URL → folder under conda/: its last segment; two channels of the same last segment
    (a private conda-forge copy and the public one) get a short hash of their URL as well."""
    by_name: dict[str, list[str]] = defaultdict(list)
    for url in sorted(channels):
        by_name[channel_folder(url)].append(url)
    out = {}
    for name, urls in by_name.items():
        for url in urls:
            out[url] = name if len(urls) == 1 else f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"
    return out


def publish_conda(store: Store, snapshot: Snapshot, root: Path) -> None:
    files = snapshot.section("conda").files  # each file's channel, subdir and repodata record are the plug-in's own
    if not files:
        return
    where = folders({str(m.get("channel")) for m in files.values()})
    repodata: dict[tuple[str, str], dict[str, Any]] = {}
    for sha, meta in files.items():
        folder, subdir, name = where[str(meta.get("channel"))], str(meta.get("subdir")), meta.filename or sha
        link_or_copy(store.blob_path(sha), safe_join(root, "conda", folder, subdir, name))
        key = "packages.conda" if name.endswith(".conda") else "packages"
        doc = repodata.setdefault((folder, subdir), {"info": {"subdir": subdir}, "packages": {}, "packages.conda": {},
                                                     "removed": [], "repodata_version": 1})
        doc[key][name] = meta.get("record")
    for folder in set(where.values()):
        repodata.setdefault((folder, "noarch"), {"info": {"subdir": "noarch"}, "packages": {}, "packages.conda": {},
                                                 "removed": [], "repodata_version": 1})
    import zstandard

    for (folder, subdir), doc in repodata.items():
        d = safe_join(root, "conda", folder, subdir)
        d.mkdir(parents=True, exist_ok=True)
        data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        (d / "repodata.json").write_bytes(data)
        (d / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor(level=10).compress(data))
        _write_shards(d, subdir, doc)

    base = base_url(store)
    prefix = f"{base}/conda" if base else "../../../conda"
    for app in snapshot.apps:
        for tid, t in snapshot.app_part(app, "conda").items():
            lines = [f"# {app} for {tid}: conda create --name {app} --file conda-explicit.txt", "@EXPLICIT"]
            for sha in t.files:
                rec = files.get(sha)
                if rec is not None:
                    lines.append(f"{prefix}/{where[str(rec.get('channel'))]}/{rec.get('subdir')}/{rec.filename}#{sha}")
            d = safe_join(root, "locks", app, tid)
            d.mkdir(parents=True, exist_ok=True)
            (d / "conda-explicit.txt").write_text("\n".join(lines) + "\n")


def _write_shards(d: Path, subdir: str, doc: dict[str, Any]) -> None:
    """CEP 16 sharded repodata beside repodata.json, from the same records: a shard per package name
    (its records, with sha256 and md5 as bytes), zstd-compressed msgpack named by the sha256 of those
    bytes, as rattler writes and reads them (pixi by default, conda 26.5 on request); and the index of
    names to shard hashes. A client reads only the shards of the names it needs."""
    import msgpack
    import zstandard

    by_name: dict[str, dict[str, dict[str, Any]]] = {}
    for key in ("packages", "packages.conda"):
        for filename, record in sorted((doc.get(key) or {}).items()):
            if not isinstance(record, dict) or not isinstance(record.get("name"), str):
                continue
            packed = dict(record)
            for field in ("sha256", "md5"):
                if isinstance(packed.get(field), str):
                    packed[field] = bytes.fromhex(packed[field])
            shard = by_name.setdefault(record["name"], {"packages": {}, "packages.conda": {}})
            shard[key][filename] = packed
    compress = zstandard.ZstdCompressor(level=10).compress
    index: dict[str, bytes] = {}
    shards = d / "shards"
    shards.mkdir(exist_ok=True)
    for name, shard in sorted(by_name.items()):
        encoded = compress(msgpack.packb({**shard, "removed": []}))
        digest = hashlib.sha256(encoded).digest()
        (shards / f"{digest.hex()}.msgpack.zst").write_bytes(encoded)
        index[name] = digest
    info = {"subdir": subdir, "base_url": "./", "shards_base_url": "./shards/"}
    (d / "repodata_shards.msgpack.zst").write_bytes(compress(msgpack.packb({"version": 1, "info": info, "shards": index})))


def client_config(base: str, store: Store, app: str | None = None, user: str | None = None) -> str | None:
    """`mirror client-config`'s conda part (the `airgap_mirror.client_config` hook): a .condarc that
    reaches every published channel through the mirror alone, and how to build an app's environment
    from its explicit lock."""
    from airgap_mirror.publish import current_tree

    tree = current_tree(store)
    conda = tree / "conda" if tree else None
    channels = sorted(p.name for p in conda.iterdir() if p.is_dir()) if conda and conda.is_dir() else []
    if not channels:
        return None
    locks = sorted(p.relative_to(tree).as_posix() for p in (tree / "locks").glob("*/*/conda-explicit.txt")) if tree else []
    listed = "\n".join(f"  - {base}/conda/{c}" for c in channels)
    text = f"""# conda, mamba, micromamba, pixi: ~/.condarc (or /opt/conda/.condarc); channel names resolve here too
channel_alias: {base}/conda
channels:
{listed}
default_channels: []
"""
    if locks:
        text += "# an app's exact environment (every package by URL and sha256):\n"
        text += "".join(f"#   conda create --name {rel.split('/')[1]} --file {base}/{rel}\n" for rel in locks[:10])
    if base.startswith("https://"):
        text += "# over https: ssl_verify: /etc/ssl/certs/airgap-mirror-ca.pem   (in .condarc)\n"
    return text
