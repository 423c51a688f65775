"""The pip-tools-style hashed lock an app installs from inside the gap (`--require-hashes`)."""

from __future__ import annotations

from collections.abc import Mapping

from packaging.utils import canonicalize_name

from airgap_mirror.resolve import Pin
from airgap_mirror.resolve.targets import PythonTarget

__all__ = ["render_requirements_lock"]


def render_requirements_lock(app: str, target: PythonTarget, pins: list[Pin],
                             origins: Mapping[str, str] | None = None) -> str:
    """Every pin with the hashes of every file mirrored for it; sorted, so the same pins give the same text.

    `origins` (canonical name → "git+URL@COMMIT (requirements.txt:3)") notes which pins replace a
    git, path or URL line of the app: inside they come from the mirror by name like any other.
    """
    lines = [
        f"# airgap-mirror lock for {app}, target {target.id} (Python {target.python}, {target.platform})",
        "# Install inside the gap with:",
        "#   pip install --require-hashes -r requirements.lock --index-url MIRROR/simple/",
    ]
    for pin in sorted(pins, key=lambda p: p.name):
        origin = (origins or {}).get(canonicalize_name(pin.name))
        if origin:
            lines.append(f"# {pin.name} was {origin}")
        head = f"{pin.name}=={pin.version}"
        if pin.marker:
            head += f" ; {pin.marker}"
        hashes = sorted({f.sha256 for f in pin.files})
        lines.append(head + " \\")
        lines.extend(f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "") for i, h in enumerate(hashes))
    return "\n".join(lines) + "\n"
