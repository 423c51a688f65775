"""`mirror publish`, `mirror status` and `mirror serve`: the tree built and uploaded, what is published where,
and the server inside the gap."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from airgap_mirror.cli.app import app
from airgap_mirror.cli.common import (
    ConfigOpt,
    JsonOpt,
    StoreOpt,
    cli_errors,
    config_and_store,
    console,
    fail_with,
    interactive,
)
from airgap_mirror.errors import ConfigError, MirrorError, StoreError
from airgap_mirror.store import open_store


@app.command()
def publish(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    base_url: Annotated[str | None, typer.Option("--base-url", help="The URL clients reach the mirror at (default: [serve] url, else the last one given); published pylock.toml files point there.")] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="Also upload the tree to object storage, s3://BUCKET/PREFIX (repeatable) [default: [publish] targets]. Endpoint, region and credentials from AWS_* variables or ~/.aws.")] = None,
    grace: Annotated[str | None, typer.Option("--grace", help="How long an object the new tree no longer has stays in the bucket before it is deleted (1d, 12h, 0) [default: [publish] grace, else 1d].")] = None,
    local_only: Annotated[bool, typer.Option("--local-only", help="Publish the local tree only, not to [publish] targets.")] = False,
    check: Annotated[bool, typer.Option("--check", help="With --to: list the bucket instead of trusting the last publish's record of it (puts back objects removed behind our back).")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=256, help="With --to: uploads at once.")] = 32,
    force: Annotated[bool, typer.Option("--force", help="Build the tree again even when it is the current snapshot's, published for the same URL, every page made anew (none linked from the current tree): after a signing key changed, or a tree damaged by hand.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build the static index tree for the newest snapshot and switch it in atomically; then upload
    it to object storage when asked (--to, or [publish] targets in mirror.toml). With --to and the
    local tree already of the current snapshot, that tree is uploaded as it is.

    Example: `mirror publish --store /srv/mirror-store --base-url https://pypi.internal.example`;
    `AWS_ENDPOINT_URL=https://s3.internal:9000 mirror publish --to s3://pypi-mirror/prod`
    """
    from airgap_mirror.cli.common import push_to_buckets
    from airgap_mirror.publish import current_tree, hold_tree, published_snapshot, up_to_date
    from airgap_mirror.publish import publish as do_publish

    with cli_errors():
        cfg, root = config_and_store(config, store)
        targets = list(to or ([] if local_only else cfg.publish_targets))
        st = open_store(root)
        built: dict[str, Any] = {}  # how the tree was made (none: the one published is kept)
        with contextlib.ExitStack() as held:
            with st.lock("publish", wait=60):
                # The tree kept when it is the current snapshot's for the same URL, or (for an upload
                # with no --base-url) of the current snapshot whatever URL it was built for.
                tree = None if force else (up_to_date(st, base_url or cfg.serve_url) or (
                    current_tree(st) if to and base_url is None and published_snapshot(st) == st.ref("current") else None))
                if tree is not None:
                    if not as_json:
                        console.print(f"snapshot {(st.ref('current') or '')[:16]} is published already at "
                                      f"{st.published / 'current'}: nothing to build (`mirror verify` checks it; "
                                      "--force builds it again)")
                else:
                    tree = do_publish(st, url=base_url or cfg.serve_url, fresh=force, report=built)
                    if not as_json:
                        how = (f"the tree before brought up to date: {built['files_in']} files in, {built['files_out']} out, "
                               f"{built['projects']} projects' pages written" if built.get("built") == "mended" else "built whole")
                        console.print(f"published snapshot {(st.ref('current') or '')[:16]} at {st.published / 'current'} ({how})")
                if targets:  # the tree held, not the store: syncs and imports go on while it uploads
                    held.enter_context(hold_tree(tree))
            buckets = push_to_buckets(tree, targets, grace or cfg.publish_grace, shown=interactive(as_json), check=check,
                                      concurrency=jobs, store=st)
    if as_json:
        print(json.dumps({"tree": str(tree), "snapshot": st.ref("current"), "built": built.get("built", "kept"),
                          **{k: v for k, v in built.items() if k != "built"}, "buckets": buckets}))


@app.command()
def status(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="Also say what this bucket holds, s3://BUCKET/PREFIX (repeatable) [default: [publish] targets].")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Which snapshot is current, which is published, and which each object-storage target holds.

    Example: `mirror status`; `mirror status --to s3://pypi-mirror/prod --json`
    """
    from airgap_mirror.publish import published_snapshot
    from airgap_mirror.publish.s3 import Target, bucket_state

    with cli_errors():
        cfg, root = config_and_store(config, store)
        st = open_store(root)
        current, published = st.ref("current"), published_snapshot(st)
        buckets = []
        for t in to or cfg.publish_targets:
            target = Target.parse(t)
            state = bucket_state(target)
            entry: dict[str, Any] = {"target": str(target), "snapshot": None}
            if state is not None:
                objects = state["objects"].values()
                entry.update(snapshot=state.get("snapshot"), published=state.get("published"), objects=len(objects),
                             bytes=sum(o[1] for o in objects), retired=len(state.get("retired", {})))
            entry["up_to_date"] = entry["snapshot"] is not None and entry["snapshot"] == current
            buckets.append(entry)
    if as_json:
        print(json.dumps({"store": str(root), "current": current, "published": published, "buckets": buckets}, indent=2))
        return
    console.print(f"current snapshot:   {current[:16] if current else 'none (run `mirror sync`)'}", highlight=False)
    console.print(f"published locally:  {published[:16] if published else 'nothing'}"
                  + ("" if not current or published == current else "  (behind: run `mirror publish`)"), highlight=False)
    for b in buckets:
        if b["snapshot"] is None:
            console.print(f"{b['target']}: holds nothing published (run `mirror publish --to {b['target']}`)", highlight=False)
            continue
        console.print(f"{b['target']}: snapshot {b['snapshot'][:16]}, published {b['published']}, {b['objects']} objects, "
                      f"{b['bytes'] / 1e6:.1f} MB, {b['retired']} retired awaiting deletion"
                      + ("" if b["up_to_date"] else f"  (behind: run `mirror publish --to {b['target']}`)"), highlight=False)


@app.command()
def serve(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option("--host", help="Address to bind [default 127.0.0.1].")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Port [default 8080; 0 picks a free one].")] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="TLS certificate (PEM, with its chain); serves HTTPS.")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="TLS private key (PEM).")] = None,
    htpasswd: Annotated[Path | None, typer.Option("--htpasswd", help="Require HTTP basic auth from this htpasswd file (bcrypt: `htpasswd -B`).")] = None,
    tokens: Annotated[Path | None, typer.Option("--tokens", help="Accept bearer tokens from this file (NAME:TOKEN per line).")] = None,
    auth_failures: Annotated[int | None, typer.Option("--auth-failures", help="Wrong passwords one client address may send per minute before it gets 429 until the oldest is a minute old [default 20; 0: no limit]; [serve] auth-failures.")] = None,
    access_log: Annotated[str | None, typer.Option("--access-log", help="Log every request in combined format to this file, or - for stdout.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Worker processes [default: one per core]; 0 serves from one process with Python's own HTTP server (for debugging).")] = None,
) -> None:
    """Serve the published tree (PEP 503/691 index, APT repository, /health, /metrics, a front page),
    publishing first if missing or stale.

    Example: `mirror serve --host 0.0.0.0 --port 443 --tls-cert fullchain.pem --tls-key key.pem --htpasswd /etc/airgap-mirror/htpasswd`,
    then `pip install --index-url https://USER:PASSWORD@HOST/simple/ ...`

    Auth is off by default and read-only always; /health answers without it. The htpasswd and
    tokens files are re-read when they change.
    """
    from airgap_mirror.publish import publish as do_publish
    from airgap_mirror.publish import published_snapshot
    from airgap_mirror.serve import make_server, tls_context
    from airgap_mirror.serve.auth import Auth

    log = None
    try:
        cfg, root = config_and_store(config, store)
        st = open_store(root)
        cert, key = tls_cert or cfg.tls_cert, tls_key or cfg.tls_key
        if (cert is None) != (key is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key (or tls-cert and tls-key under [serve])")
        tls = tls_context(cert, key) if cert is not None and key is not None else None
        pw, tok = htpasswd or cfg.htpasswd, tokens or cfg.tokens
        failures = auth_failures if auth_failures is not None else cfg.auth_failures
        auth = Auth(pw, tok, failure_limit=failures) if pw or tok else None
        where = access_log or cfg.access_log
        if where == "-":
            log = sys.stdout
        elif where:
            log = open(where, "a", encoding="utf-8")  # noqa: SIM115  (open for the server's life)
        if st.ref("current") and published_snapshot(st) != st.ref("current"):
            try:
                with st.lock("publish"):
                    do_publish(st, url=cfg.serve_url)
            except StoreError as exc:  # a sync or import is running: serve what is published
                console.print(f"[yellow]warning:[/] not republishing now: {exc}")
            except OSError as exc:  # a read-only store (the hardened unit): serve what is published
                console.print(f"[yellow]warning:[/] not republishing (the store is not writable here: {exc.strerror})")
        bind_host, bind_port = host or cfg.host, cfg.port if port is None else port
        n_workers = (os.cpu_count() or 1) if workers is None else workers
        if n_workers > 0:
            from airgap_mirror.serve.rsgi import serve as serve_rsgi

            if log is not None and log is not sys.stdout:
                log.close()
                log = None
            settings = {"htpasswd": str(pw) if pw else None, "tokens": str(tok) if tok else None, "url": cfg.serve_url,
                        "auth_failures": failures,
                        "access_log": os.path.abspath(where) if where and where != "-" else where}
            serve_rsgi(st.published, bind_host, bind_port, workers=n_workers, settings=settings,
                       tls=(cert, key) if cert is not None and key is not None else None,
                       on_ready=lambda url: print(f"serving {st.published / 'current'} at {url}/simple/", flush=True))
            return
        server = make_server(st.published, bind_host, bind_port, access_log=log, tls=tls, auth=auth, url=cfg.serve_url)
    except MirrorError as exc:
        raise fail_with(exc) from exc
    except OSError as exc:
        console.print(f"[red]error:[/] cannot listen on {host or cfg.host}:{port if port is not None else cfg.port}: {exc}")
        raise typer.Exit(2) from exc
    print(f"serving {st.published / 'current'} at {server.url}/simple/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if log is not None and log is not sys.stdout:
            log.close()
