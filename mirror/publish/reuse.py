"""Pages a new tree shares with the tree before it: a page made from the same inputs as one the
current tree holds is hard-linked from there instead of rendered, compressed and written again.

A publish after a nightly sync that changed one app wrote every project's pages anew (20,000
projects: 80,000 files created, 40,000 gzip -9 runs, 7 s); most are the same bytes. Each tree keeps,
beside it (`trees/.NAME.pages.json`, not served), the digest of what each of its page sets was made
from; a digest that matches names the same bytes. The digest covers the renderer's own source, so
a new version of the tool that renders differently renders again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from functools import cache
from pathlib import Path

__all__ = ["PageReuse"]

_SUFFIX = ".pages.json"


@cache
def renderer() -> str:
    """What the pages' bytes depend on besides their inputs: this package's rendering code."""
    h = hashlib.blake2b(digest_size=16)
    here = Path(__file__).parent
    for name in ("simple.py", "tree.py", "reuse.py", "recycle.py"):
        with contextlib.suppress(OSError):
            h.update((here / name).read_bytes())
    return h.hexdigest()


def manifest_path(tree: Path) -> Path:
    return tree.parent / f".{tree.name}{_SUFFIX}"


def orphaned_manifests(trees: Path) -> list[Path]:
    """Manifests whose tree is gone (pruned, or a partial never finished)."""
    return [m for m in trees.glob(f".*{_SUFFIX}") if not (trees / m.name[1:].removesuffix(_SUFFIX)).is_dir()]


class PageReuse:
    """Links a page set from `previous` (the tree being replaced) when its inputs are unchanged, and
    records the digests of the tree being built (`save`)."""

    def __init__(self, previous: Path | None, *, in_place: dict[str, str] | None = None) -> None:
        """`in_place`: the digests of the tree being mended (`recycle`), whose pages are where they
        are: one whose digest matches is kept as it is."""
        self.previous = str(previous) if previous is not None else None
        self.old: dict[str, str] = {}
        self.new: dict[str, str] = in_place if in_place is not None else {}
        self.in_place = in_place is not None
        self.changed: dict[str, int] = {}  # what a mending changed, for the publish's report
        if previous is not None:
            with contextlib.suppress(OSError, ValueError, TypeError):
                doc = json.loads(manifest_path(previous).read_bytes())
                if isinstance(doc, dict) and doc.get("renderer") == renderer() and isinstance(doc.get("pages"), dict):
                    self.old = doc["pages"]

    @property
    def how(self) -> str:
        """How the tree was made, for the publish's report: "mended" (the tree before brought up to
        date) or "whole"."""
        return "mended" if self.in_place else "whole"

    @staticmethod
    def digest(inputs: object) -> str:
        """The digest of a page set's inputs: a value whose repr is deterministic (tuples, frozen
        dataclasses, strings, numbers)."""
        return hashlib.blake2b(repr(inputs).encode("utf-8", "surrogateescape"), digest_size=16).hexdigest()

    def take(self, rel: str, digest: str, dest: str, names: tuple[str, ...]) -> bool:
        """Link `names` of folder `rel` from the previous tree into `dest` (an existing folder) when
        they were made from the same inputs; False (nothing left half-linked) when they must be made."""
        if self.in_place:
            same = self.new.get(rel) == digest
            self.new[rel] = digest
            return same
        self.new[rel] = digest
        if self.previous is None or self.old.get(rel) != digest:
            return False
        done = []
        try:
            for name in names:
                os.link(f"{self.previous}/{rel}/{name}", f"{dest}/{name}")
                done.append(name)
        except OSError:
            for name in done:
                with contextlib.suppress(OSError):
                    os.unlink(f"{dest}/{name}")
            return False
        return True

    def save(self, tree: Path) -> None:
        """The digests of the pages of `tree` (the name it is switched in under), for the next publish."""
        from airgap_mirror.store import atomic_write

        atomic_write(manifest_path(tree), json.dumps({"renderer": renderer(), "pages": self.new},
                                                    separators=(",", ":")).encode())
