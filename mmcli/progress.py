"""Rich progress bars and console shared by every command (stderr, so `--json` stdout stays clean)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")

console = Console(stderr=True, highlight=False)


def quiet() -> bool:
    return bool(os.environ.get("MM_QUIET"))


def make_progress(*extra: object) -> Progress:
    """A progress display with bar, count, elapsed and ETA; extra columns are appended."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *extra,
        console=console,
        disable=quiet() or not console.is_terminal,  # logs get plain lines instead (see `log_line`)
        transient=False,
    )


def track(items: Iterable[T], total: int | None, description: str) -> Iterator[T]:
    """Iterate with a progress bar (shown on stderr; hidden with MM_QUIET=1)."""
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


def info(message: str) -> None:
    if not quiet():
        console.print(message)


def warn(message: str) -> None:
    console.print(f"[yellow]warning:[/yellow] {message}")


def log_line(message: str) -> None:
    """A line for non-interactive output (CI logs, pipes), where live progress bars are off."""
    if not quiet() and not console.is_terminal:
        console.print(message, soft_wrap=True)
