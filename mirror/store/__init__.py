"""The content-addressed store: immutable blobs by sha256, a SQLite catalog, snapshots, refs.

Step 4 of the flow. Also here: names (validated names, safe joins), canonical (canonical JSON),
distinfo (what a wheel or sdist says of itself), snapshots (what a snapshot references, name
checks), history (listing, diff, naming snapshots), health (verify, repair, gc).


Layout (versioned, append-only):
    store-v1/blobs/sha256/ab/<hex>     immutable file contents
    store-v1/tmp/                      in-flight writes (same filesystem, renamed in)
    store-v1/snapshots/<id>.json       canonical-JSON snapshot manifests, id = sha256 of bytes
    store-v1/refs/current              id of the newest snapshot
    store-v1/apps.json                 the app folders syncs named, by app name (`mirror sync` alone syncs them)
    store-v1/catalog.sqlite            what each blob is and where it came from
    published/                         built index trees and the `current` link (see publish)
    cache/                             resolver and page caches; safe to delete
"""

from airgap_mirror.store.repository import CatalogFile, Ingest, Store, atomic_write, open_store

__all__ = ["CatalogFile", "Ingest", "Store", "atomic_write", "open_store"]
