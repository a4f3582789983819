"""One fine-tuning loop for every phase (after pruning, QAT), with a progress bar.

Plain ``model.fit`` so tfmot's callbacks (``UpdatePruningStep``) work as
documented; distillation enters only through the loss (see :mod:`.distill`).

Images stream: a ``tf.data`` pipeline over a Python generator that decodes
one shuffled batch at a time with the data set's own reader (the shared
preprocessing, on a thread pool, prefetched), so memory holds a few batches.
Labels and teacher outputs are small and stay in memory. Under a
``tf.distribute`` strategy scope (see :mod:`.distribute`) the same ``fit``
splits every batch across the replicas; ``batch_size`` here is the global batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.compress.distill import make_loss, pack_targets
from edgekit.compress.progress import NullProgress, keras_callback
from edgekit.data import Dataset
from edgekit.errors import DataError


@dataclass(frozen=True)
class Teacher:
    """The original model's log-probabilities on the training images, and how to weigh them."""

    logp: np.ndarray
    temperature: float
    alpha: float


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))


def as_dataset(data: Dataset | np.ndarray, y: np.ndarray | None = None) -> Dataset:
    """``data`` itself when it is a :class:`Dataset`; float32 arrays (already preprocessed) are wrapped in one."""
    if isinstance(data, Dataset):
        return data
    return Dataset.from_arrays(np.asarray(data, dtype=np.float32), y)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled sample order of one epoch: fixed by (seed, epoch), different every epoch."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def training_data(ds: Dataset, targets: np.ndarray, batch_size: int, *, seed: int = 0) -> Any:
    """An endless ``tf.data.Dataset`` of (images, targets) batches, reshuffled every epoch.

    One epoch is ``steps_per_epoch(len(ds), batch_size)`` batches; the last one may be short.
    """
    from edgekit._tf import tf

    tfm = tf()
    epoch = [0]

    def one_epoch() -> Any:
        order = epoch_order(len(ds), seed, epoch[0])
        epoch[0] += 1
        for start, images in zip(range(0, len(order), batch_size), ds.batches(batch_size, order)):
            yield images, targets[order[start : start + batch_size]]

    signature = (
        tfm.TensorSpec((None, *ds.shape[1:]), tfm.float32),
        tfm.TensorSpec((None, *targets.shape[1:]), tfm.as_dtype(targets.dtype)),
    )
    data = tfm.data.Dataset.from_generator(one_epoch, output_signature=signature).repeat().prefetch(1)
    options = tfm.data.Options()
    # The generator cannot be split by file; with several workers each keeps its share of the batches.
    options.experimental_distribute.auto_shard_policy = tfm.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options)


def fine_tune(
    model: Any,
    data: Dataset | np.ndarray,
    y: np.ndarray | None = None,
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
    """Train ``model`` in place on ``data``, streamed in shuffled batches; returns the last epoch's loss.

    Args:
        model: a tf_keras model (possibly wrapped by tfmot); under a strategy, built in its scope.
        data: a labelled :class:`Dataset` (or preprocessed float32 images with ``y``).
        y: labels for array ``data``; a Dataset's own labels are used otherwise.
        batch_size: the global batch (split across replicas under a strategy).
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
    ds = as_dataset(data, y)
    if ds.y is None:
        raise DataError(f"fine-tuning needs labelled data; {ds.source or 'the data set'} has no labels.")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    targets = pack_targets(ds.y, teacher.logp if teacher else None, binary=binary)
    progress = progress or NullProgress()
    steps = steps_per_epoch(len(ds), batch_size)
    total = epochs * steps
    stream = training_data(ds, targets, batch_size, seed=seed)
    # Not under quiet_native_logs: that silences fd 2, where the progress bar is drawn.
    with progress.task(description, total) as task:
        history = model.fit(
            stream,
            epochs=epochs,
            steps_per_epoch=steps,
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


def predict(model: Any, data: Dataset | np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Model outputs on ``data`` as float32 (inference mode), quietly, one streamed batch at a time.

    Only the outputs (N x classes) are kept, never the images.
    """
    from edgekit._tf import quiet_native_logs

    ds = as_dataset(data)
    outs = []
    with quiet_native_logs():
        for images in ds.batches(batch_size):
            outs.append(np.asarray(model.predict_on_batch(images), dtype=np.float32))
    if not outs:
        return np.zeros((0, *(int(d) for d in model.outputs[0].shape[1:])), np.float32)
    return np.concatenate(outs)
