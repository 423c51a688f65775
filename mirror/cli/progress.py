"""Progress bars of long commands on a terminal (rich's; loaded only when there is one)."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from airgap_mirror.cli.common import rich_console

__all__ = ["RichReporter"]


class _AmountColumn(ProgressColumn):
    """Downloads in MB of a known total; everything else (resolutions, apps, targets) as M/N."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes, self._count = DownloadColumn(), MofNCompleteColumn()

    def render(self, task: Task) -> RenderableType:
        return (self._bytes if task.fields.get("bytes") else self._count).render(task)


class RichReporter:
    """Progress bars on a terminal, one per phase; lanes share the display."""

    enabled = True

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress or Progress(
            TextColumn("{task.description:<30}"), BarColumn(), _AmountColumn(),
            TimeElapsedColumn(), console=rich_console(), transient=True,
        )
        self.task: TaskID | None = None

    def lane(self) -> RichReporter:
        """Bars of their own on the same display, for work running alongside (the APT side)."""
        return RichReporter(self.progress)

    def __enter__(self) -> RichReporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)

    def phase(self, name: str, total: int | None) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(name, total=total, bytes=name.startswith(("download", "fetch", "verif")))

    def advance(self, n: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def note(self, message: str) -> None:
        self.progress.console.print(message)

    def finished(self, what: str) -> None:
        self.progress.console.print(f"  {what}", highlight=False, markup=False)
