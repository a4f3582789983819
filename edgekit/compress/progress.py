"""Progress reporting for long steps (fine-tuning, calibration) without tying the library to a UI.

The library reports through a :class:`Progress`; the default draws Rich bars on
stderr, ``NullProgress`` draws nothing (``progress=False``, ``--json``). A
Keras callback turns fine-tuning batches into progress steps.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Any, Iterator


class NullProgress:
    """Reports nothing."""

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator["_Task"]:
        yield _Task(None, None)

    def note(self, text: str) -> None:
        pass


class RichProgress(NullProgress):
    """Rich progress bars on stderr, one per step, removed when the step ends; notes printed as lines."""

    def __init__(self, console: Any = None):
        from rich.console import Console

        self.console = console or Console(file=_stderr_copy(), highlight=False)

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator["_Task"]:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as bar:
            tid = bar.add_task(description, total=max(int(total), 1), info="")
            yield _Task(bar, tid)

    def note(self, text: str) -> None:
        self.console.print(text, soft_wrap=True)


_STDERR_COPY: Any = None


def _stderr_copy() -> Any:
    """A file on a duplicate of fd 2, so bars stay visible while TF's C++ chatter on fd 2 is silenced.

    (:func:`edgekit._tf.quiet_native_logs` points fd 2 at /dev/null around conversions.)
    """
    global _STDERR_COPY
    if _STDERR_COPY is None:
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # pytest/CliRunner capture: no real descriptor
            return sys.stderr
        _STDERR_COPY = os.fdopen(os.dup(fd), "w", buffering=1, encoding="utf-8", errors="replace", closefd=True)
    return _STDERR_COPY


class _Task:
    def __init__(self, bar: Any, tid: Any):
        self._bar, self._tid = bar, tid

    def advance(self, n: int = 1, info: str | None = None) -> None:
        if self._bar is not None:
            kwargs = {"info": info} if info is not None else {}
            self._bar.update(self._tid, advance=n, **kwargs)


def as_progress(progress: bool | NullProgress) -> NullProgress:
    """``True`` → Rich bars, ``False`` → nothing, or pass a reporter through."""
    if isinstance(progress, NullProgress):
        return progress
    return RichProgress() if progress else NullProgress()


def keras_callback(task: _Task, keras: Any, epochs: int) -> Any:
    """A Keras callback advancing ``task`` once per training batch, with epoch and loss."""

    class _Cb(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.epoch = epoch + 1

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            loss = (logs or {}).get("loss")
            info = f"epoch {self.epoch}/{epochs}" + (f" loss {float(loss):.3f}" if loss is not None else "")
            task.advance(1, info)

    return _Cb()
