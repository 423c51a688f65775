"""`mirror lock`, `mirror client-config` and `mirror apps`: what an app installs from, how clients point at
the mirror, the store's apps."""

from __future__ import annotations

import json
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
)
from airgap_mirror.errors import InputError, MirrorError
from airgap_mirror.store import open_store


@app.command()
def lock(
    app_dir: Annotated[Path, typer.Argument(help="The app folder (its name is the app's name in the mirror).")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    python: Annotated[str | None, typer.Option("--python", help="Target Python X.Y (needed when the app has several targets).")] = None,
    platform: Annotated[str | None, typer.Option("--platform", help="Target platform tag (needed when the app has several).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write the lock here [default: stdout].")] = None,
    snapshot: Annotated[str, typer.Option("--snapshot", help="Snapshot: an id or unique prefix, current, previous, last-exported[:SITE] or a bundle file.")] = "current",
) -> None:
    """Write the app's air-gap requirements: every package pinned with --hash, git / path / URL lines as name==version.

    Example: `mirror lock apps/dash-app --python 3.11 -o requirements.lock`, then inside the gap
    `pip install --require-hashes -r requirements.lock --index-url http://mirror.internal:8080/simple/`
    """
    from airgap_mirror.maintenance.history import resolve_snapshot
    from airgap_mirror.publish.lockview import choose_target

    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        snap = st.snapshot(resolve_snapshot(st, snapshot))
        tid, part = choose_target(snap, app_dir, python, platform)
        if not part.requirements_lock:
            raise InputError(f"{tid}: the snapshot has no requirements lock for this target")
        data = st.blob_path(part.requirements_lock).read_bytes()
    if output is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        output.write_bytes(data)
        console.print(f"wrote {output} ({tid})", highlight=False)


@app.command("client-config")
def client_config(
    url: Annotated[str, typer.Option("--url", help="The mirror's base URL as clients reach it.")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    app_dir: Annotated[Path | None, typer.Option("--app", help="Also say what, if anything, to change in this app folder.")] = None,
    ca_cert: Annotated[str, typer.Option("--ca-cert", help="Where clients keep the CA certificate of an https:// mirror.")] = "/etc/ssl/certs/airgap-mirror-ca.pem",
    user: Annotated[str | None, typer.Option("--user", help="The mirror asks for credentials: show how each client passes them for this user.")] = None,
) -> None:
    """Print how pip, uv, requirements files and apt point at the mirror (and, for https:// or
    --user, how each trusts its CA and passes credentials).

    Example: `mirror client-config --url https://mirror.internal --user ci --app apps/dash-app`
    """
    if app_dir is not None:
        from airgap_mirror.publish.lockview import app_advice

        with cli_errors():
            cfg, root = config_and_store(config, store)
            print(app_advice(open_store(root), app_dir, url, extra_files=cfg.requirement_files,
                             extras=cfg.app_extras, groups=cfg.app_groups))
        if any((app_dir / n).is_file() for n in ("Aptfile", "packages.txt", "environment.yml", "environment.yaml")):
            _plugin_client_config(url.rstrip("/").removesuffix("/simple"), config, store, app=app_dir.resolve().name)
        return
    base = url.rstrip("/")
    if base.endswith("/simple"):
        base = base[: -len("/simple")]
    simple = f"{base}/simple/"
    host = base.split("://", 1)[-1].split("/", 1)[0].split(":")[0]
    trusted = f"trusted-host = {host}\n" if base.startswith("http://") else ""
    print(f"""# pip: /etc/pip.conf (system), ~/.config/pip/pip.conf (user) or $VIRTUAL_ENV/pip.conf
[global]
index-url = {simple}
{trusted}
# pip or uv through the environment
export PIP_INDEX_URL={simple}
export UV_DEFAULT_INDEX={simple}   # uv ignores pip.conf (uv before 0.4.23: UV_INDEX_URL)
{"export PIP_TRUSTED_HOST=" + host if trusted else ""}
# uv: /etc/uv/uv.toml or ~/.config/uv/uv.toml
[[index]]
url = "{simple}"
default = true

# a requirements file: first line
--index-url {simple}
""".replace("\n\n\n", "\n\n"))
    if base.startswith("https://"):
        print(f"""# TLS: the mirror's certificate comes from your CA; copy the CA certificate to {ca_cert}
#   (or add it to the system store: cp CA.pem /usr/local/share/ca-certificates/airgap-mirror.crt && update-ca-certificates)
# pip: in pip.conf [global]  cert = {ca_cert}   (or export PIP_CERT={ca_cert}; where REQUESTS_CA_BUNDLE
#      is set, as on many managed machines, pip takes that instead: point it at the same file)
# uv:  export SSL_CERT_FILE={ca_cert}   (or, with the CA in the system store, uv --native-tls / UV_NATIVE_TLS=1)
""")
    if user:
        cred_host = base.split("://", 1)[-1].split("/", 1)[0]
        scheme = base.split("://", 1)[0]
        print(f"""# credentials for {user} (the password, or a token from the mirror's tokens file)
# pip: the index URL carries them:  index-url = {scheme}://{user}:PASSWORD@{cred_host}/simple/
#      or ~/.netrc:  machine {cred_host.split(':')[0]} login {user} password PASSWORD
# uv:  name the index, and give its credentials in the environment:
#      [[index]] name = "mirror", url = "{simple}", default = true
#      export UV_INDEX_MIRROR_USERNAME={user} UV_INDEX_MIRROR_PASSWORD=PASSWORD
# apt: /etc/apt/auth.conf.d/airgap-mirror.conf (mode 600):  machine {cred_host.split(':')[0]} login {user} password PASSWORD
#      (a host name alone matches any port, for apt and for curl --netrc-file alike)
# anything else: Authorization: Bearer TOKEN
""")
    _plugin_client_config(base, config, store, user=user)


def _plugin_client_config(base: str, config: Path | None, store: Path | None, app: str | None = None,
                          user: str | None = None) -> None:
    """What each plug-in adds to `client-config` (the APT side: a deb822 .sources entry)."""
    from airgap_mirror.interfaces import client_config_hooks
    from airgap_mirror.store import Store

    try:
        _, root = config_and_store(config, store)
    except MirrorError:
        return
    for hook in client_config_hooks():
        text = hook(base, Store(root), app=app, user=user)
        if text:
            print(text)


apps_app = typer.Typer(name="apps", help="The store's apps: list them, remove one.\n\nExample: `mirror apps`; `mirror apps remove old-dashboard`",
                       invoke_without_command=True, rich_markup_mode="markdown")


app.add_typer(apps_app)


@apps_app.callback()
def apps_list(ctx: typer.Context, store: StoreOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """List the apps of the store's current snapshot: name, targets, files, and the folder a sync reads it from.

    Example: `mirror apps --store /srv/mirror-store`
    """
    if ctx.invoked_subcommand:
        return
    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        sid = st.ref("current")
        snap = st.snapshot(sid) if sid else None
        folders = st.app_folders()
    rows: list[dict[str, Any]] = []
    for name, entry in sorted((snap.apps if snap else {}).items()):
        targets = sorted(tid for tid, _t in entry.all_targets())
        rows.append({"name": name, "targets": targets, "files": len(entry.files()), "folder": folders.get(name)})
    if as_json:
        print(json.dumps({"snapshot": sid, "apps": rows}, indent=2))
        return
    if not rows:
        print("no apps: `mirror sync APP_FOLDER` adds one")
    for r in rows:
        print(f"{r['name']:<32} {r['files']:>5} files  {', '.join(r['targets']) or '-'}  ({r['folder'] or 'folder not known here'})")


@apps_app.command("remove")
def apps_remove(
    names: Annotated[list[str], typer.Argument(help="App names, as `mirror apps` lists them.")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove apps from the store: a new snapshot without them and what only they used (their
    blobs go at the next `mirror gc`); `mirror diff` and the next bundle show them removed.

    Example: `mirror apps remove old-dashboard && mirror publish`
    """
    with cli_errors():
        _, root = config_and_store(config, store)
        st = open_store(root)
        with st.lock("apps remove"):
            sid = st.ref("current")
            snap = st.snapshot(sid) if sid else None
            unknown = [n for n in names if snap is None or n not in snap.apps]
            if unknown:
                known = ", ".join(sorted(snap.apps)) if snap else "none"
                raise InputError(f"no app named {', '.join(unknown)} in the current snapshot (its apps: {known})")
            assert snap is not None
            kept = snap.restricted_to(sorted(set(snap.apps) - set(names)))
            files, nbytes = kept.counts()
            new = st.put_snapshot(kept.to_dict(), origin="sync", summary={
                "apps": len(kept.apps), "targets": len(kept.target_ids()), "files": files, "bytes": nbytes})
            st.remember_app_folders({}, forget=names)
    if as_json:
        print(json.dumps({"snapshot": new, "previous": sid, "removed_apps": sorted(names)}, indent=2))
        return
    console.print(f"removed {', '.join(sorted(names))}: snapshot {new[:16]} ({files} files); "
                  "`mirror publish` serves it, `mirror gc` frees what only they used", highlight=False)
