"""CLI commands of the APT side (`mirror apt-key ...`), added to `mirror` through an entry point."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from airgap_mirror.cli.common import StoreOpt, cli_errors, config_and_store, console
from airgap_mirror.interfaces import SbomHook, SyncOptionHook

if TYPE_CHECKING:
    from airgap_mirror.store import Store
    from airgap_mirror.store.model import SectionFile

__all__ = ["register", "client_config", "SYNC_OPTIONS"]


def client_config(base: str, store: Store, app: str | None = None, user: str | None = None) -> str | None:
    """`mirror client-config`'s apt part: a deb822 .sources entry for every suite the published tree
    holds, and how to fetch the key (the `airgap_mirror.client_config` hook). For an `app` whose
    Aptfile names its own repository or .deb URLs, its component too (and only that app's). With
    `user` (the mirror asks for credentials), the key is fetched with apt's own credentials file."""
    from airgap_mirror.publish import current_tree

    from .publish import app_component

    tree = current_tree(store)
    dists = tree / "debian" / "dists" if tree else None
    suites = sorted(p.name for p in dists.iterdir()) if dists and dists.is_dir() else []
    if not suites:
        return None
    components = ["main"]
    if app is not None and any((dists / s / app_component(app)).is_dir() for s in suites):  # type: ignore[operator]
        components.append(app_component(app))
    return f"""# apt: the signing key, then /etc/apt/sources.list.d/airgap-mirror.sources
#   curl -fsSL {"--netrc-file /etc/apt/auth.conf.d/airgap-mirror.conf " if user else ""}{base}/debian/airgap-mirror.asc -o /etc/apt/keyrings/airgap-mirror.asc
Types: deb
URIs: {base}/debian
Suites: {' '.join(suites)}
Components: {' '.join(components)}
Signed-By: /etc/apt/keyrings/airgap-mirror.asc
""" + ("""# apt over https: /etc/apt/apt.conf.d/50airgap-mirror (unless the CA is in the system store); the CA
# certificate beside the key, in a folder every apt has (a minbase image has no /etc/ssl/certs)
Acquire::https::CaInfo "/etc/apt/keyrings/airgap-mirror-ca.pem";
""" if base.startswith("https://") else "")


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="The site's OpenPGP key that signs the published APT repository.", no_args_is_help=True)

    @keys.command("generate")
    def generate(
        store: StoreOpt = None,
        name: Annotated[str, typer.Option("--name", help="User ID of the key.")] = "airgap-mirror APT repository",
    ) -> None:
        """Create the Ed25519 key that signs InRelease (kept in STORE/keys/gnupg).

        Example: `mirror apt-key generate --store /srv/mirror-store`
        """
        from airgap_mirror.store import open_store

        from .publish import signing_key

        with cli_errors():
            st = open_store(config_and_store(None, store)[1], create=True)
            fpr = signing_key(st).generate(name)
        console.print(f"APT signing key {fpr} created; `mirror apt-key export` prints the public half")

    @keys.command("export")
    def export(
        store: StoreOpt = None,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Write here instead of stdout.")] = None,
        binary: Annotated[bool, typer.Option("--binary", help="Binary keyring (.gpg) instead of ASCII armor.")] = False,
    ) -> None:
        """Print the public key clients name in `Signed-By`.

        Example: `mirror apt-key export -o /usr/share/keyrings/airgap-mirror.asc`
        """
        from airgap_mirror.store import open_store

        from .publish import signing_key

        with cli_errors():
            st = open_store(config_and_store(None, store)[1])
            data = signing_key(st).export(armor=not binary)
        if out:
            out.write_bytes(data)
        else:
            typer.echo(data.decode() if not binary else data, nl=False)

    app.add_typer(keys, name="apt-key")


def _collect(values: Mapping[str, Any], table: Mapping[str, Any]) -> dict[str, Any]:
    """The APT side's sync options: flags first, then mirror.toml's [apt] table, then defaults."""
    from airgap_mirror.errors import ConfigError

    base = values.get("apt_base")
    if base is not None and base not in ("required", "none"):
        raise ConfigError(f"--apt-base {base!r}: use 'required' or 'none' (or --apt-base-status FILE)")
    status = values.get("apt_base_status")
    return {
        "distros": list(values.get("distro") or table.get("distros") or []),
        "architectures": list(values.get("arch") or table.get("architectures") or []),
        "with_recommends": bool(values.get("with_recommends")) or bool(table.get("with-recommends", False)),
        "base": str(status) if status else (base or table.get("base") or "required"),
        "sources": table.get("sources") or [],
        "patch_base": (not values.get("no_apt_patch_base")) and bool(table.get("patch-base", True)),
    }


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


SYNC_OPTIONS = SyncOptionHook(extension="apt", collect=_collect, parameters=(
    _option("distro", Annotated[list[str] | None, typer.Option("--distro", help="Target Debian suite for Aptfiles; repeatable [default: bookworm].")], None),
    _option("arch", Annotated[list[str] | None, typer.Option("--arch", help="Target Debian architecture; repeatable [default: amd64].")], None),
    _option("with_recommends", Annotated[bool, typer.Option("--with-recommends", help="Also mirror Recommends of APT packages.")], False),
    _option("apt_base", Annotated[str | None, typer.Option("--apt-base", help="What the target already has: 'required' (a lower bound of a minimal system of the suite) or 'none' (mirror the complete closure).")], None),
    _option("apt_base_status", Annotated[Path | None, typer.Option("--apt-base-status", help="A dpkg status file from the target image (`docker run --rm IMAGE cat /var/lib/dpkg/status`): its packages are not mirrored.")], None),
    _option("no_apt_patch_base", Annotated[bool, typer.Option("--no-apt-patch-base", help="Do not carry the base's updates (by default the newer versions the updates and security suites have of the target's base packages are mirrored, so `apt-get upgrade` patches the image inside).")], False),
))


def _describe(meta: SectionFile) -> tuple[str, str, str]:
    """A .deb as an SBOM component: (package, version, purl `pkg:deb/debian/NAME@VERSION?arch=ARCH`)."""
    from urllib.parse import quote

    name, version, arch = str(meta.get("package", "")), str(meta.get("version", "")), str(meta.get("architecture", ""))
    return name, version, f"pkg:deb/debian/{quote(name)}@{quote(version, safe='')}?arch={quote(arch)}"


SBOM = SbomHook(section="apt", describe=_describe)
