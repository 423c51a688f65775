"""The conda side's flags on `mirror sync` and its [conda] table in mirror.toml (the
`airgap_mirror.sync_options` hook)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Annotated, Any

import typer

from airgap_mirror.interfaces import SyncOptionHook

__all__ = ["SYNC_OPTIONS"]


def _collect(values: Mapping[str, Any], table: Mapping[str, Any]) -> dict[str, Any]:
    """Flags first, then [conda] in mirror.toml, then defaults (on; CUDA none)."""
    enabled = values.get("conda")
    return {
        "enabled": bool(table.get("enabled", True)) if enabled is None else bool(enabled),
        "cuda": values.get("conda_cuda") or table.get("cuda"),
        "channel-alias": table.get("channel-alias"),
    }


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


SYNC_OPTIONS = SyncOptionHook(extension="conda", collect=_collect, parameters=(
    _option("conda", Annotated[bool | None, typer.Option("--conda/--no-conda", help="Mirror environment.yml's conda packages (on by default; off: its pip: list only, the conda packages reported) [[conda] enabled].")], None),
    _option("conda_cuda", Annotated[str | None, typer.Option("--conda-cuda", help="The CUDA version the targets' machines have (the __cuda virtual package), e.g. 12.2 [[conda] cuda].")], None),
))
