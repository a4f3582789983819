"""One fine-tuning loop for every phase (after pruning, QAT), with a progress bar.

Plain ``model.fit`` so tfmot's callbacks (``UpdatePruningStep``) work as
documented; distillation enters only through the loss (see :mod:`.distill`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.compress.distill import make_loss, pack_targets
from edgekit.compress.progress import NullProgress, keras_callback


@dataclass(frozen=True)
class Teacher:
    """The original model's log-probabilities on the training images, and how to weigh them."""

    logp: np.ndarray
    temperature: float
    alpha: float


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))


def fine_tune(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    output_kind: str,
    teacher: Teacher | None = None,
    callbacks: list[Any] | None = None,
    progress: NullProgress | None = None,
    description: str = "fine-tuning",
    seed: int = 0,
) -> dict[str, float]:
    """Train ``model`` in place on (x, y); returns the last epoch's loss.

    Args:
        model: a tf_keras model (possibly wrapped by tfmot).
        output_kind: "probabilities" or "logits": what the model's output is. A model
            with one output unit trains with binary cross-entropy (label 1 = positive class).
        teacher: distil from the original model when given.
        callbacks: extra Keras callbacks (e.g. tfmot's UpdatePruningStep).
    """
    from edgekit._tf import tf_keras

    keras = tf_keras()
    if epochs <= 0:
        return {}
    keras.utils.set_random_seed(seed)
    binary = int(model.outputs[0].shape[-1]) == 1  # a sigmoid-style binary classifier
    loss = make_loss(
        output_kind,
        distill=teacher is not None,
        temperature=teacher.temperature if teacher else 1.0,
        alpha=teacher.alpha if teacher else 0.0,
        binary=binary,
    )
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    targets = pack_targets(y, teacher.logp if teacher else None, binary=binary)
    progress = progress or NullProgress()
    total = epochs * steps_per_epoch(len(x), batch_size)
    # Not under quiet_native_logs: that silences fd 2, where the progress bar is drawn.
    with progress.task(description, total) as task:
        history = model.fit(
            x,
            targets,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[*(callbacks or []), keras_callback(task, keras, epochs)],
        )
    losses = history.history.get("loss") or [float("nan")]
    return {"loss": float(losses[-1]), "epochs": epochs, "steps": total}


def copy_model(model: Any) -> Any:
    """An independent copy (new layer objects, same weights), so training it never touches ``model``."""
    from edgekit._tf import tf_keras

    keras = tf_keras()
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def predict(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Model outputs on ``x`` as float32 (inference mode), quietly."""
    from edgekit._tf import quiet_native_logs

    with quiet_native_logs():
        return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)
