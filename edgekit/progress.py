"""The one progress reporter of compress, build and bench (no TensorFlow, no UI tie in the library).

Library code reports through a :class:`NullProgress`-shaped object: ``task(description, total)``
opens a step, its ``advance``/``update`` move it, ``note`` prints a line. :class:`RichProgress`
draws one Rich bar per step on a duplicate of fd 2, so the bar stays visible while
:func:`edgekit._tf.quiet_native_logs` points fd 2 at /dev/null around conversions;
:class:`NullProgress` draws nothing (``progress=False``, ``--json``).

Example:
    >>> p = as_progress(False)
    >>> with p.task("converting", 3) as t:
    ...     t.advance(info="cpu")
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator


class NullProgress:
    """Reports nothing."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator["Task"]:
        yield Task(None, None)

    def note(self, text: str) -> None:
        pass


class RichProgress(NullProgress):
    """Rich progress bars on stderr, one per step, removed when the step ends; notes printed as lines.

    Off a terminal (CI logs, pipes) each step is one plain line instead of a bar.
    """

    def __init__(self, console: Any = None):
        from rich.console import Console

        self.console = console or Console(file=_stderr_copy(), highlight=False)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator["Task"]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        if not self.console.is_terminal:
            # A CI log or a pipe: a transient bar leaves only an empty line there, so say the step once instead.
            self.console.print(f"{description} …", soft_wrap=True, markup=False, highlight=False)
            yield Task(None, None)
            return
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as bar:
            tid = bar.add_task(description, total=None if total is None else max(int(total), 1), info="")
            yield Task(bar, tid)

    def note(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)


_STDERR_COPY: Any = None


def _stderr_copy() -> Any:
    """A file on a duplicate of fd 2, so bars stay visible while native logs on fd 2 are silenced."""
    global _STDERR_COPY
    if _STDERR_COPY is None:
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # pytest/CliRunner capture: no real descriptor
            return sys.stderr
        _STDERR_COPY = os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace", closefd=True)
    return _STDERR_COPY


class Task:
    """One step's bar (or nothing)."""

    def __init__(self, bar: Any, tid: Any):
        self._bar, self._tid = bar, tid

    def advance(self, n: int = 1, info: str | None = None) -> None:
        if self._bar is not None:
            kwargs = {"info": info} if info is not None else {}
            self._bar.update(self._tid, advance=n, **kwargs)

    def update(self, *, completed: int | None = None, total: int | None = None, info: str | None = None,
               description: str | None = None) -> None:
        """Set the position, total, info text or description (what a callback-style caller has)."""
        if self._bar is not None:
            kwargs: dict[str, Any] = {k: v for k, v in (("completed", completed), ("total", total), ("info", info),
                                                        ("description", description)) if v is not None}  # fmt: skip
            self._bar.update(self._tid, **kwargs)


_Task = Task  # the name edgekit.compress.progress used


def as_progress(progress: bool | NullProgress) -> NullProgress:
    """``True`` → Rich bars, ``False`` → nothing, or pass a reporter through."""
    if isinstance(progress, NullProgress):
        return progress
    return RichProgress() if progress else NullProgress()
