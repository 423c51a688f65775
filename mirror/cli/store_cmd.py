"""`mirror snapshots`, `sbom`, `diff`, `verify` and `gc`: the store's history, its contents, its health."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from airgap_mirror.cli.app import app, progress_reporter
from airgap_mirror.cli.common import (
    ConfigOpt,
    JsonOpt,
    StoreOpt,
    cli_errors,
    config_and_store,
    console,
    interactive,
)
from airgap_mirror.errors import StoreError
from airgap_mirror.store import open_store
from airgap_mirror.store.model import PythonFile


@app.command()
def snapshots(store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List the store's snapshots: id, time, how it came (sync or import), apps, targets, files, bytes.

    Example: `mirror snapshots --store /srv/mirror-store`
    """
    from airgap_mirror.maintenance.history import list_snapshots

    with cli_errors():
        _, root = config_and_store(config, store)
        rows = list_snapshots(open_store(root))
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(f"{'*' if r['current'] else ' '} {r['id'][:16]}  {r['created']}  {r['origin']:<6}  apps {r.get('apps', '-'):>3}"
              f"  targets {r.get('targets', '-'):>2}  files {r.get('files', '-'):>5}  {r.get('bytes', 0) / 1e6:8.1f} MB")


@app.command()
def sbom(
    snapshot: Annotated[str, typer.Argument(help="Snapshot: an id or unique prefix, current, previous, last-exported[:SITE] or a bundle file.")] = "current",
    store: StoreOpt = None, config: ConfigOpt = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the SBOM here [default: stdout].")] = None,
) -> None:
    """Print the CycloneDX 1.6 SBOM of a snapshot: every Python distribution and Debian package with
    purl, version, sha256, licence where its metadata names one, and the apps and targets that need it.

    Example: `mirror sbom current -o mirror.cdx.json` (the same bytes every bundle of it carries)
    """
    from airgap_mirror.maintenance.history import resolve_snapshot
    from airgap_mirror.sbom import build_sbom

    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        sid = resolve_snapshot(st, snapshot)
        data = build_sbom(st, st.snapshot(sid), created=st.snapshot_created(sid))
    if output is None:
        sys.stdout.write(data.decode("utf-8") + "\n")
    else:
        output.write_bytes(data)
        console.print(f"wrote {output} (snapshot {sid[:16]})", highlight=False)


@app.command()
def diff(
    old: Annotated[str, typer.Argument(help="Snapshot: an id or unique prefix, current, previous, last-exported[:SITE] or a bundle file.")] = "previous",
    new: Annotated[str, typer.Argument(help="Snapshot, named as OLD is.")] = "current",
    store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Show what changed between two snapshots, per app and target, and the bytes a delta would carry.

    Example: `mirror diff last-exported current` (review before `mirror bundle create --since last-exported`)
    """
    from airgap_mirror.maintenance.history import diff_snapshots, resolve_snapshot

    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        d = diff_snapshots(st, resolve_snapshot(st, old), resolve_snapshot(st, new))
    if as_json:
        print(json.dumps(d.to_dict(), indent=2))
        return
    print(f"{d.old[:16]} → {d.new[:16]}")
    for label, names in (("apps added", d.apps_added), ("apps removed", d.apps_removed),
                         ("targets added", d.targets_added), ("targets removed", d.targets_removed)):
        if names:
            print(f"{label}: {', '.join(names)}")
    for app_name, per in d.changes.items():
        print(f"{app_name}:")
        for tid, c in per.items():
            print(f"  {tid}:")
            for n, v in c.get("added", []):
                print(f"    + {n} {v}")
            for n, v in c.get("removed", []):
                print(f"    - {n} {v}")
            for n, a, b in c.get("changed", []):
                print(f"    ~ {n} {a} → {b}")
    for project, was, now in d.statuses:
        print(f"project status (PEP 792): {project} {was} → {now}")
    if d.empty:
        print("no changes")
    print(f"a delta bundle carries {d.files_to_carry} files, {d.bytes_to_carry / 1e6:.1f} MB (with locks and metadata)")


@app.command()
def verify(
    store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
    repair: Annotated[bool, typer.Option("--repair", help="Re-fetch corrupt or missing files from upstream (outside), or say which bundle to re-import (inside).")] = False,
    to: Annotated[list[str] | None, typer.Option("--to", help="Check this object-storage target instead of the store, s3://BUCKET/PREFIX (repeatable): every object there, re-hashed, against its snapshot.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="With --to: compare sizes from one listing, do not download and re-hash.")] = False,
) -> None:
    """Re-hash every blob (in parallel) and check catalog, snapshots and the published tree agree.

    Example: `mirror verify --store /srv/mirror-store` (exit 0 only if the store is whole);
    `mirror verify --repair` puts back what it can and verifies again;
    `mirror verify --to s3://pypi-mirror/prod` checks what the bucket serves.
    """
    from airgap_mirror.maintenance.health import repair_store, verify_store

    if to:
        _verify_buckets(store, config, to, quick=quick, as_json=as_json)
        return
    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        with st.db() as db:
            total = db.execute("SELECT COALESCE(SUM(size), 0) FROM blobs").fetchone()[0]
        rep = progress_reporter(interactive(as_json))
        with rep:
            rep.phase("verifying", total or None)
            report = verify_store(st, on_bytes=rep.advance)
        fixed = None
        if repair and not report.ok:
            with st.lock("verify --repair", wait=60):
                fixed = repair_store(st, report)
            for line in fixed.removed_corrupt:
                console.print(f"removed corrupt blob {line}", highlight=False)
            for name in fixed.refetched + fixed.restored_from_cache:
                console.print(f"[green]restored[/] {name}", highlight=False)
            for name in fixed.relinked:
                console.print(f"[green]put back in the published tree[/] {name}", highlight=False)
            again = progress_reporter(rep.enabled)
            with again:
                again.phase("verifying again", total or None)
                report = verify_store(st, on_bytes=again.advance)
    if as_json:
        print(json.dumps({**report.to_dict(), **({"repair": fixed.to_dict()} if fixed else {})}, indent=2))
    else:
        for line in (fixed.advice if fixed else []):
            console.print(f"[yellow]to do:[/] {line}", highlight=False)
        for sha in report.corrupt:
            console.print(f"[red]corrupt blob[/] {sha} (its content does not match its name)", highlight=False)
        for sha, users in report.missing.items():
            console.print(f"[red]missing blob[/] {sha}, needed by snapshot {'; '.join(users)}", highlight=False)
        for sid in report.bad_snapshots:
            console.print(f"[red]damaged snapshot[/] {sid}", highlight=False)
        for p in report.problems:
            console.print(f"[yellow]{p}[/]", highlight=False)
        console.print(f"{report.blobs_checked} blobs, {report.bytes_checked / 1e6:.1f} MB checked: "
                      + ("store is whole" if report.ok else "PROBLEMS FOUND (`mirror verify --repair` re-fetches them"
                         " outside and names the bundle to re-import inside)"), highlight=False)
    raise typer.Exit(0 if report.ok else 5)


def _verify_buckets(store: Path | None, config: Path | None, targets: list[str], *, quick: bool, as_json: bool) -> None:
    from airgap_mirror.cli.common import byte_progress
    from airgap_mirror.publish.s3 import Target, verify_bucket

    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)

        def blobs(sid: str) -> dict[str, int | None] | None:
            """The files a client installs (distributions, .debs, .metadata); locks are published rewritten."""
            try:
                files = st.snapshot(sid).files()
            except (StoreError, FileNotFoundError, ValueError):
                return None
            out: dict[str, int | None] = {sha: m.size for sha, m in files.items()}
            out.update((m.metadata_sha256, None) for m in files.values()
                       if isinstance(m, PythonFile) and m.metadata_sha256)
            return out

        reports = []
        for t in targets:
            target = Target.parse(t)
            progress, advance, _ = byte_progress(interactive(as_json) and not quick, None, f"checking {target}")
            with progress:
                reports.append(verify_bucket(target, blobs, quick=quick, on_bytes=advance))
    ok = all(r.ok for r in reports)
    if as_json:
        print(json.dumps({"ok": ok, "buckets": [r.to_dict() for r in reports]}, indent=2))
    else:
        for r in reports:
            for rel in r.missing:
                console.print(f"[red]missing[/] {r.target}/{rel}", highlight=False)
            for rel in r.mismatched:
                console.print(f"[red]wrong content[/] {r.target}/{rel} (not the bytes published)", highlight=False)
            for sha in r.not_carried:
                console.print(f"[red]not in the bucket[/] blob {sha} of snapshot {str(r.snapshot)[:16]}", highlight=False)
            for p in r.problems:
                console.print(f"[yellow]{p}[/]", highlight=False)
            how = "sizes listed" if quick else f"{r.bytes_checked / 1e6:.1f} MB re-hashed"
            console.print(f"{r.target}: snapshot {str(r.snapshot)[:16]}, {r.objects} objects, {how}: "
                          + ("whole" if r.ok else "PROBLEMS FOUND (`mirror publish --to` puts back what is missing)"),
                          highlight=False)
    raise typer.Exit(0 if ok else 5)


@app.command()
def gc(
    keep: Annotated[int, typer.Option("--keep", help="Keep this many newest snapshots (and the current, published and last exported ones).")] = 5,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would be removed.")] = False,
    store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Remove snapshots beyond --keep and every blob no kept snapshot needs.

    Example: `mirror gc --keep 10 --dry-run`
    """
    from airgap_mirror.maintenance.health import collect_garbage

    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        with st.lock("gc"):
            report = collect_garbage(st, keep=keep, dry_run=dry_run)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        verb = "would remove" if dry_run else "removed"
        console.print(f"{verb} {len(report.removed_snapshots)} snapshots, {report.removed_blobs} blobs"
                      f" ({report.removed_bytes / 1e6:.1f} MB), {report.removed_temp} temp files, {report.removed_records} expired resolution records;"
                      f" kept {len(report.kept_snapshots)} snapshots", highlight=False)
