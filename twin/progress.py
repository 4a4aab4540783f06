"""Progress reporting that the core can call without knowing about terminals."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, total: int, description: str) -> None: ...
    def advance(self, description: str) -> None: ...


class NoProgress:
    def start(self, total: int, description: str) -> None:
        pass

    def advance(self, description: str) -> None:
        pass


class RichProgress:
    """A rich progress bar over the stages of a long command."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as _P, TextColumn, TimeElapsedColumn

        self._p = _P(TextColumn("[bold blue]{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
                     TimeElapsedColumn(), transient=False)
        self._task = None

    def __enter__(self):
        self._p.__enter__()
        return self

    def __exit__(self, *exc):
        return self._p.__exit__(*exc)

    def start(self, total: int, description: str) -> None:
        self._task = self._p.add_task(description, total=total)

    def advance(self, description: str) -> None:
        if self._task is not None:
            self._p.update(self._task, advance=1, description=description)

    def steps(self):
        """A `(label, done, total)` callback with one bar per label (used by the tiler)."""
        tasks: dict[str, int] = {}

        def update(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = self._p.add_task(label, total=max(total, 1))
            self._p.update(tasks[label], completed=done, total=max(total, 1))

        return update
