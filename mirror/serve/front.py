"""The front page (`/`): what is served, the last import, each app's locks, and how clients are set up."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airgap_mirror import logs

_log = logs.get(__name__)

__all__ = ["front_page", "epoch"]


def epoch(stamp: object) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        dt = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def front_page(status: dict[str, Any] | None, base: str, tree: Path | None, store_root: Path) -> str:
    e = html.escape
    if status is None:
        body = "<p><strong>Nothing is published yet.</strong> Run <code>mirror publish</code> (or import a bundle).</p>"
        return _page(body)
    simple = f"{base}/simple/"
    rows = []
    for app, parts in status.get("apps", {}).items():
        for kind, targets in parts.items():
            for tid in targets:
                links = ""
                if kind == "python":
                    q = f"/locks/{quote(app)}/{quote(tid)}/"
                    links = (f'<a href="{e(q)}pylock.toml">pylock.toml</a> '
                             f'<a href="{e(q)}requirements.lock">requirements.lock</a>')
                rows.append(f"<tr><td>{e(app)}</td><td>{e(kind)}</td><td>{e(tid)}</td><td>{links}</td></tr>")
    last = status.get("last_import")
    imported = (f"bundle <code>{e(str(last.get('bundle_id')))}</code>, signer <code>{e(str(last.get('signer')))}</code>,"
                f" sequence {e(str(last.get('sequence')))}, imported {e(str(last.get('imported')))}"
                if isinstance(last, dict) else "none (this store syncs itself)")
    apt = _plugin_setup(base, tree, store_root)
    setup = (f"# pip\npip install --index-url {simple} PACKAGE\nexport PIP_INDEX_URL={simple}\n"
             f"# uv\nexport UV_DEFAULT_INDEX={simple}\n{apt}"
             f"# everything, with TLS and credentials: mirror client-config --url {base or 'URL'}\n")
    body = f"""<h1>airgap-mirror</h1>
<p>Serving snapshot <code id="snapshot">{e(status['id'])}</code>, made {e(str(status.get('created')))},
published <span id="published">{e(str(status.get('published')))}</span>: {status.get('files', 0)} files,
{status.get('bytes', 0) / 1e6:.1f} MB.</p>
<p>Last bundle imported: <span id="last-import">{imported}</span>.</p>
<p>{' &middot; '.join(f'<a href="/{e(d)}">/{e(d)}</a>' for d in _sections(tree))}
&middot; <a href="/health">/health</a> &middot; <a href="/metrics">/metrics</a></p>
<h2>Apps and targets</h2>
<table id="apps"><tr><th>app</th><th>kind</th><th>target</th><th>locks</th></tr>
{''.join(rows) or '<tr><td colspan="4">no apps</td></tr>'}
</table>
<h2>Client set-up</h2>
<pre id="setup">{e(setup)}</pre>"""
    return _page(body)


def _sections(tree: Path | None) -> list[str]:
    """What of the tree's top-level parts answers a visitor (every link on the page works): a part
    with an index page (simple/), else the files at its top (a plug-in's signing key, say). A part
    of folders only (locks/, each app's linked in the table) has no link of its own."""
    if tree is None:
        return []
    out = []
    for part in sorted(p for p in tree.iterdir() if p.is_dir() and p.name != "packages"):
        if (part / "index.html").is_file():
            out.append(f"{part.name}/")
        else:
            out.extend(f"{part.name}/{f.name}" for f in sorted(part.iterdir())[:20]
                       if f.is_file() and not f.name.endswith(".gz"))
    return out


def _plugin_setup(base: str, tree: Path | None, store_root: Path) -> str:
    """What each plug-in adds to the client set-up (the APT side: a deb822 entry), as
    `mirror client-config` prints it."""
    if tree is None:
        return ""
    from airgap_mirror.interfaces import client_config_hooks
    from airgap_mirror.store import Store

    store = Store(store_root)
    out = []
    for hook in client_config_hooks():
        try:
            text = hook(base, store)
        except Exception:  # noqa: BLE001  (a front page never fails for a plug-in's text)
            _log.warning("a plug-in's client set-up text failed", exc_info=True)
            text = None
        if text:
            out.append("\n" + text)
    return "".join(out)


def _page(body: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>airgap-mirror</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.2em .6em;text-align:left}}
pre{{background:#f4f4f4;padding:1em;overflow-x:auto}}</style></head>
<body>
{body}
</body></html>
"""
