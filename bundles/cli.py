"""CLI of the bundle side: `mirror keygen`, `mirror trust ...`, `mirror bundle ...` (added through an entry point)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from airgap_bundles import DEFAULT_LEVEL, MAX_LEVEL, MIN_LEVEL
from airgap_mirror.cli.common import JsonOpt, StoreOpt, byte_progress, cli_errors, config_and_store, console, interactive

__all__ = ["register"]

PASSWORD_ENV = "MIRROR_KEY_PASSWORD"
TrustOpt = Annotated[list[Path] | None, typer.Option("--trust", help="A trusted public key (.pub) for this command; repeatable.")]


def _store_root(store: Path | None) -> Path:
    return config_and_store(None, store)[1]


def _progress(enabled: bool, total: int | None, label: str):  # type: ignore[no-untyped-def]
    progress, advance, _ = byte_progress(enabled, total, label)
    return progress, advance


def _blob_bytes(files: list[Path], shown: bool) -> int | None:
    """The bytes a bundle carries, for a progress bar's total (read before verification: display only)."""
    if not shown:
        return None
    from airgap_bundles.reader import read_manifest_unverified
    from airgap_mirror.errors import MirrorError

    try:
        return read_manifest_unverified(files).blob_bytes
    except MirrorError:
        return None  # the verification that follows says what is wrong


def _load_secret(path: Path):  # type: ignore[no-untyped-def]
    from airgap_bundles.errors import KeyFormatError
    from airgap_bundles.keys import SecretKey

    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError) as exc:
        raise KeyFormatError(f"secret key {path} does not exist or is not a minisign key file") from exc
    password = os.environ.get(PASSWORD_ENV)
    try:
        return SecretKey.from_text(text, password)
    except KeyFormatError as exc:
        if "password-protected" in str(exc) and sys.stdin.isatty():
            return SecretKey.from_text(text, typer.prompt(f"password for {path}", hide_input=True))
        raise


def _trusted(store_root: Path | None, extra: list[Path] | None):  # type: ignore[no-untyped-def]
    from airgap_bundles.state import BundleState, read_public_key
    from airgap_mirror.store import Store

    keys = [read_public_key(p) for p in extra or []]
    st = Store(_store_root(store_root))
    if st.exists():
        keys += BundleState(st).trusted()
    return keys


def keygen(
    out: Annotated[Path, typer.Option("--out", "-o", help="Key name: writes NAME.key (secret) and NAME.pub.")],
    protect: Annotated[bool, typer.Option("--protect", help=f"Encrypt the secret key with a password (from ${PASSWORD_ENV}, else a prompt).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing key files.")] = False,
) -> None:
    """Create an Ed25519 signing key pair in minisign format (the stock `minisign` reads both).

    Example: `mirror keygen --out /secure/site-bundles --protect`, then give site-bundles.pub to the inside.
    """
    from airgap_bundles.keys import generate

    secret, public = out.with_name(out.name + ".key"), out.with_name(out.name + ".pub")
    if not force and (secret.exists() or public.exists()):
        console.print(f"[red]error:[/] {secret} or {public} exists (use --force to overwrite)")
        raise typer.Exit(2)
    password = None
    if protect:
        password = os.environ.get(PASSWORD_ENV) or typer.prompt("password", hide_input=True, confirmation_prompt=True)
    key = generate()
    from airgap_mirror.store import atomic_write

    atomic_write(secret, key.to_text(password).encode(), durable=True, private=True)
    public.write_text(key.public.to_text())
    console.print(f"key {key.public.id_hex}: secret {secret} (keep it outside the gap), public {public}")


trust = typer.Typer(help="Public keys this store accepts bundles from.", no_args_is_help=True)


@trust.command("add")
def trust_add(key: Annotated[Path, typer.Argument(help="A minisign public key file (.pub).")], store: StoreOpt = None,
              replace: Annotated[bool, typer.Option("--replace", help="Replace a different trusted key that has the same id.")] = False) -> None:
    """Trust bundles signed by KEY.

    Example: `mirror trust add site-bundles.pub --store /srv/mirror-store`
    """
    from airgap_bundles.state import BundleState
    from airgap_mirror.store import open_store

    with cli_errors():
        pk = BundleState(open_store(_store_root(store), create=True)).trust(key, replace=replace)
    console.print(f"trusted key {pk.id_hex}")


@trust.command("list")
def trust_list(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List trusted keys and the last sequence imported from each.

    Example: `mirror trust list --store /srv/mirror-store`
    """
    from airgap_bundles.state import BundleState
    from airgap_mirror.store import open_store

    with cli_errors():
        state = BundleState(open_store(_store_root(store)))
        rows = [{"key": k.id_hex, "last_sequence": state.last_sequence(k.id_hex)} for k in state.trusted()]
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            print(f"{r['key']}  last sequence imported: {r['last_sequence'] or '-'}")
        if not rows:
            console.print("no trusted keys: `mirror trust add KEY.pub`")


@trust.command("remove")
def trust_remove(key_id: Annotated[str, typer.Argument(help="Key id as `trust list` shows it.")], store: StoreOpt = None) -> None:
    """Stop trusting a key.

    Example: `mirror trust remove 1A2B3C4D5E6F7A8B`
    """
    from airgap_bundles.state import BundleState
    from airgap_mirror.store import open_store

    if not BundleState(open_store(_store_root(store))).untrust(key_id):
        console.print(f"[red]error:[/] key {key_id} is not trusted")
        raise typer.Exit(2)
    console.print(f"key {key_id} removed")



bundle = typer.Typer(help="Signed bundles that carry a snapshot across the air gap.", no_args_is_help=True)


@bundle.command("create")
def create(
    out: Annotated[Path, typer.Option("--out", "-o", help="Bundle file to write (OUT.001, OUT.002 ... with --split).")],
    key: Annotated[Path, typer.Option("--key", help="Secret key (NAME.key from `mirror keygen`).")],
    store: StoreOpt = None,
    since: Annotated[str | None, typer.Option("--since", help="Delta on a snapshot the site has: an id or prefix, an earlier bundle file, `last-exported` (this site's).")] = None,
    site: Annotated[str, typer.Option("--site", help="The destination: each site's chain of deltas is its own.")] = "default",
    since_receipt: Annotated[Path | None, typer.Option("--since-receipt", help="Delta with exactly what the site lacks, from its receipt (`mirror bundle receipt` inside).")] = None,
    split: Annotated[str | None, typer.Option("--split", help="Split into parts of this size (4G, 700M ...).")] = None,
    sequence: Annotated[int | None, typer.Option("--sequence", help="Sequence number [default: one more than this key's last].")] = None,
    snapshot: Annotated[str | None, typer.Option("--snapshot", help="Snapshot: an id or unique prefix, current, previous, last-exported[:SITE] or a bundle file [default: current].")] = None,
    level: Annotated[int, typer.Option("--level", help=f"zstd level, {MIN_LEVEL} (fastest) to {MAX_LEVEL} (smallest); what a bundle carries is mostly compressed already.")] = DEFAULT_LEVEL,
    force: Annotated[bool, typer.Option("--force", help="With --sequence: reuse a sequence this key already exported (the site imports it with --allow-older).")] = False,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Write a delta even when the site already has the snapshot.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Pack a snapshot into a signed bundle for a site (full, or a delta with --since / --since-receipt).

    Example: `mirror bundle create --key site.key --site plant-b -o /media/usb/mirror.bundle --since last-exported --split 4G`

    `--since last-exported` is the last bundle made for that --site (or what its last receipt says it
    holds): a one-off bundle for another site never moves it.
    """
    from airgap_bundles.receipt import read_receipt
    from airgap_bundles.state import BundleState, check_site
    from airgap_bundles.writer import create_bundle, parse_size
    from airgap_mirror.store import open_store

    with cli_errors():
        st = open_store(_store_root(store))
        secret = _load_secret(key)
        from airgap_mirror.maintenance.history import resolve_snapshot

        check_site(site)
        if since == "last-exported":
            since = f"last-exported:{site}"
        receipt = None
        if since_receipt is not None:
            receipt = read_receipt(since_receipt, BundleState(st), site=None if site == "default" else site)
            site = receipt.site
        sid = resolve_snapshot(st, snapshot) if snapshot else st.ref("current")
        total = sum(st.blob_size(s) for s in st.snapshot(sid).blobs() if st.has_blob(s)) if sid else None
        progress, advance = _progress(interactive(as_json), total, "bundling")
        with progress, st.lock("bundle create", wait=5):
            result = create_bundle(st, secret, out, since=since, split=parse_size(split) if split else None,
                                   sequence=sequence, snapshot_id=sid, level=level, on_bytes=advance,
                                   site=site, receipt=receipt, force=force, allow_empty=allow_empty)
    if as_json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        console.print(
            f"bundle {result.bundle_id} for site {result.site} ({'delta on ' + result.base_snapshot[:16] if result.base_snapshot else 'full'}),"
            f" sequence {result.sequence}, key {result.signer}: {result.dist_files} files ({result.blobs} blobs with"
            f" locks and metadata), {result.blob_bytes / 1e6:.1f} MB"
            f" → {result.bundle_bytes / 1e6:.1f} MB in {len(result.files)} file(s)", highlight=False)
        for f in result.files:
            print(f)


@bundle.command("verify")
def verify_cmd(
    files: Annotated[list[Path], typer.Argument(help="The bundle (or all its parts).")],
    trust: TrustOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a bundle's signature and every byte, without importing; print what it brings.

    Example: `mirror bundle verify /media/usb/mirror.bundle --trust site.pub`

    Exit code 0 only if everything holds.
    """
    from airgap_bundles.importer import verify_bundle

    with cli_errors():
        keys = _trusted(store, trust)
        progress, advance = _progress(interactive(as_json), _blob_bytes(files, interactive(as_json)), "verifying")
        with progress:
            manifest, signer = verify_bundle(files, keys, on_bytes=advance)
    _report(manifest, signer.id_hex, as_json, verified=True)


@bundle.command("show")
def show(files: Annotated[list[Path], typer.Argument(help="The bundle (or its parts).")], as_json: JsonOpt = False) -> None:
    """Print a bundle's manifest summary WITHOUT checking it (use `verify` for that).

    Example: `mirror bundle show /media/usb/mirror.bundle`
    """
    from airgap_bundles.reader import read_manifest_unverified

    with cli_errors():
        manifest = read_manifest_unverified(files)
    _report(manifest, manifest.signer, as_json, verified=False)


@bundle.command("import")
def import_cmd(
    files: Annotated[list[Path], typer.Argument(help="The bundle (or all its parts).")],
    store: StoreOpt = None,
    trust: TrustOpt = None,
    allow_older: Annotated[bool, typer.Option("--allow-older", help="Import a bundle not newer than the last from its key (never made current).")] = False,
    any_site: Annotated[bool, typer.Option("--any-site", help="Import a bundle made for another site than this store's.")] = False,
    no_publish: Annotated[bool, typer.Option("--no-publish", help="Do not republish the served tree.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify and import a bundle into this store in one pass, then republish.

    Example: `mirror bundle import /media/usb/mirror.bundle --store /srv/mirror-store`
    """
    from airgap_bundles.importer import import_bundle
    from airgap_mirror.store import open_store

    with cli_errors():
        st = open_store(_store_root(store), create=True)
        keys = _trusted(store, trust)
        progress, advance = _progress(interactive(as_json), _blob_bytes(files, interactive(as_json)), "importing")
        with progress, st.lock("bundle import"):
            result = import_bundle(st, files, keys, allow_older=allow_older, publish=not no_publish,
                                   any_site=any_site, on_bytes=advance)
        cfg = config_and_store(None, store)[0]
        buckets = []
        if result.current and not no_publish and cfg.publish_targets:  # the fleet's bucket follows the import
            from airgap_mirror.cli.common import push_to_buckets
            from airgap_mirror.publish import current_tree

            with st.lock("publish", wait=60):
                tree = current_tree(st)
                if tree is not None:  # (the import published it)
                    buckets = push_to_buckets(tree, cfg.publish_targets, cfg.publish_grace,
                                              shown=interactive(as_json))
    if as_json:
        print(json.dumps({**result.to_dict(), **({"buckets": buckets} if buckets else {})}, indent=2))
    else:
        m = result.manifest
        console.print(
            f"imported bundle {m.bundle_id} (sequence {m.sequence}, key {result.signer}): snapshot {m.snapshot_id[:16]}"
            f"{' is now current' if result.current else ' recorded, NOT current (older than the last import)'};"
            f" {result.blobs_written} files written, {result.blobs_present} already present", highlight=False)


@bundle.command("receipt")
def receipt_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Receipt file to write (carry it out of the gap).")],
    store: StoreOpt = None,
    site: Annotated[str | None, typer.Option("--site", help="This store's site name [default: the site its bundles were made for].")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Inside: write a signed receipt of the snapshots and bundles this store holds.

    Example: `mirror bundle receipt -o /media/usb/plant-b.receipt`, then outside
    `mirror bundle create --since-receipt /media/usb/plant-b.receipt --key site.key -o next.bundle`

    Signed with this store's own key (made on first use under site-key/ in the store); the outside
    pins that key for the site the first time it reads a receipt.
    """
    from airgap_bundles.receipt import make_receipt
    from airgap_mirror.store import atomic_write, open_store

    with cli_errors():
        st = open_store(_store_root(store))
        data, rec = make_receipt(st, site)
        atomic_write(out, data)
    if as_json:
        print(json.dumps({"receipt": rec.receipt_id, "site": rec.site, "current": rec.current,
                          "snapshots": list(rec.snapshots), "key": rec.key.id_hex, "file": str(out)}, indent=2))
    else:
        console.print(f"receipt {rec.receipt_id} of site {rec.site}: {len(rec.snapshots)} snapshots, current"
                      f" {(rec.current or '-')[:16]}, signed by key {rec.key.id_hex} → {out}", highlight=False)


sites = typer.Typer(help="Outside: the destination sites and what each was sent or holds.", no_args_is_help=False,
                    invoke_without_command=True)


@sites.callback()
def sites_list(ctx: typer.Context, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List each site with its last bundle sent, its last receipt, and the base of its next delta.

    Example: `mirror bundle sites`
    """
    if ctx.invoked_subcommand is not None:
        return
    from airgap_bundles.state import BundleState
    from airgap_mirror.store import open_store

    with cli_errors():
        state = BundleState(open_store(_store_root(store)))
        rows = []
        for name in state.sites():
            log = state.site_log(name)
            sent = [r for r in log if r.kind == "sent"]
            got = [r for r in log if r.kind == "receipt"]
            rows.append({"site": name, "next_delta_base": state.last_exported(name),
                         "last_sent": sent[-1].ref if sent else None, "last_sent_at": sent[-1].at if sent else None,
                         "last_receipt": got[-1].ref if got else None, "last_receipt_at": got[-1].at if got else None,
                         "holds": list(got[-1].held) if got else None})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{r['site']}: next delta on {(r['next_delta_base'] or '-')[:16]}; last sent {r['last_sent'] or '-'}"
              f" ({r['last_sent_at'] or '-'}); last receipt {r['last_receipt'] or '-'} ({r['last_receipt_at'] or '-'})")
    if not rows:
        console.print("no bundle made yet: `mirror bundle create --site NAME ...`")


@sites.command("forget-key")
def forget_key(site: Annotated[str, typer.Argument(help="The site whose receipt key to forget.")], store: StoreOpt = None) -> None:
    """Forget the receipt key pinned for a site (after its inside store was rebuilt with a new key).

    Example: `mirror bundle sites forget-key plant-b`
    """
    from airgap_bundles.state import BundleState
    from airgap_mirror.store import open_store

    with cli_errors():
        state = BundleState(open_store(_store_root(store)))
        if state.site_key(site) is None:
            console.print(f"[red]error:[/] no receipt key is pinned for site {site}")
            raise typer.Exit(2)
        state.forget_site_key(site)
    console.print(f"the next receipt of site {site} pins its key anew")

bundle.add_typer(sites, name="sites")


def register(app: typer.Typer) -> None:
    """The bundle side's commands on the core's command line (the `airgap_mirror.commands` entry point):
    keygen, trust and bundle, in that order."""
    app.command()(keygen)
    app.add_typer(trust, name="trust")
    app.add_typer(bundle, name="bundle")


def _report(manifest, signer: str, as_json: bool, *, verified: bool) -> None:  # type: ignore[no-untyped-def]
    from airgap_mirror.sbom import components
    from airgap_mirror.store.snapshots import Snapshot

    snap = Snapshot.from_dict(manifest.snapshot, id=manifest.snapshot_id)
    files, nbytes = snap.counts()
    packages = components(snap)
    doc = {"verified": verified, "bundle_id": manifest.bundle_id, "signer": signer, "sequence": manifest.sequence,
           "created": manifest.created, "mode": manifest.mode, "base": manifest.base_snapshot, "site": manifest.site,
           "requires": list(manifest.requires), "snapshot": manifest.snapshot_id, "apps": manifest.summary.get("apps", []),
           "targets": manifest.summary.get("targets", []), "snapshot_files": files, "snapshot_bytes": nbytes,
           "carried_files": sum(1 for s, _ in manifest.blobs if s != manifest.sbom),
           "carried_bytes": sum(n for s, n in manifest.blobs if s != manifest.sbom), "sbom": manifest.sbom,
           "packages": [p["purl"] for p in packages]}
    if as_json:
        print(json.dumps(doc, indent=2))
        return
    head = "VERIFIED" if verified else "UNVERIFIED (not checked against any key)"
    print(f"{head} bundle {doc['bundle_id']}\n  signer   {signer}\n  sequence {doc['sequence']}\n  created  {doc['created']}\n"
          f"  mode     {doc['mode']}{' on ' + str(doc['base']) if doc['base'] else ''}\n  snapshot {doc['snapshot']}\n"
          f"  site     {doc['site']}\n"
          f"  apps     {', '.join(doc['apps']) or '-'}\n  targets  {', '.join(doc['targets']) or '-'}\n"
          f"  snapshot {files} files ({nbytes / 1e6:.1f} MB), {len(packages)} packages\n"
          f"  carried  {doc['carried_files']} files ({doc['carried_bytes'] / 1e6:.1f} MB)")
