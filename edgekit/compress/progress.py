"""Progress for compress: the shared reporter (:mod:`edgekit.progress`) plus a Keras callback.

The reporter itself lives in :mod:`edgekit.progress`, one for compress, build and
bench; this module keeps its old names and adds what only fine-tuning needs.
"""
from __future__ import annotations

from typing import Any

from edgekit.progress import NullProgress, RichProgress, Task, _stderr_copy, _Task, as_progress

__all__ = ["NullProgress", "RichProgress", "Task", "as_progress", "keras_callback", "_stderr_copy", "_Task"]


def keras_callback(task: Task, keras: Any, epochs: int) -> Any:
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
