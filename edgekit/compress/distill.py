"""Fine-tuning losses, with optional knowledge distillation from the original model.

Distillation packs the teacher's log-probabilities next to the label in
``y`` (column 0 = class index, columns 1.. = teacher log-probs), so an
ordinary ``model.fit`` trains with it and tfmot's pruning and QAT callbacks
keep working unchanged. The teacher is fixed, so its outputs are computed once.

loss = (1 - alpha) * CE(labels, student) + alpha * T² * KL(softmax(t/T) || softmax(s/T))

A single-output (sigmoid) model is a binary classifier whose output is
P(class 1): its outputs become the two log-probabilities [log(1 - p), log p],
so the same loss is binary cross-entropy plus the Bernoulli KL between
sigmoid(teacher logit / T) and sigmoid(student logit / T). Without
distillation it trains with Keras' BinaryCrossentropy.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


def log_probs(outputs: np.ndarray, output_kind: str) -> np.ndarray:
    """Model outputs (probabilities or logits) → float32 log-probabilities, (N, K) or (N, 2) for one output."""
    z = np.asarray(outputs, dtype=np.float64)
    if z.ndim == 2 and z.shape[1] == 1:
        if output_kind == "probabilities":
            return np.log(np.clip(np.concatenate([1.0 - z, z], axis=1), 1e-12, 1.0)).astype(np.float32)
        # log sigmoid(-z), log sigmoid(z), without overflow
        return np.concatenate([-np.logaddexp(0.0, z), -np.logaddexp(0.0, -z)], axis=1).astype(np.float32)
    if output_kind == "probabilities":
        return np.log(np.clip(z, 1e-12, 1.0)).astype(np.float32)
    z = z - z.max(axis=1, keepdims=True)
    return (z - np.log(np.exp(z).sum(axis=1, keepdims=True))).astype(np.float32)


def pack_targets(y: np.ndarray, teacher_logp: np.ndarray | None, *, binary: bool = False) -> np.ndarray:
    """Labels alone (N,) ((N, 1) float for a single-output model), or labels with teacher log-probs as (N, 1 + K)."""
    if teacher_logp is None:
        if binary:
            return np.asarray(y, dtype=np.float32)[:, None]
        return np.asarray(y, dtype=np.int64)
    return np.concatenate([np.asarray(y, np.float32)[:, None], teacher_logp.astype(np.float32)], axis=1)


def make_loss(
    output_kind: str, *, distill: bool, temperature: float = 4.0, alpha: float = 0.5, binary: bool = False
) -> Callable[..., Any] | str:
    """The Keras loss for fine-tuning a model whose output is ``output_kind``.

    ``binary``: the model has a single output, P(class 1) or its logit.
    """
    from edgekit._tf import tf

    tfm = tf()
    from_logits = output_kind == "logits"
    if not distill:
        return _binary_ce(from_logits) if binary else _sparse_ce(from_logits)

    def _student_logp(y_pred: Any) -> Any:
        if binary:  # one output -> [log P(class 0), log P(class 1)]
            if from_logits:
                return tfm.concat([tfm.math.log_sigmoid(-y_pred), tfm.math.log_sigmoid(y_pred)], axis=-1)
            return tfm.math.log(tfm.clip_by_value(tfm.concat([1.0 - y_pred, y_pred], axis=-1), 1e-7, 1.0))
        if from_logits:
            return tfm.nn.log_softmax(y_pred, axis=-1)
        return tfm.math.log(tfm.clip_by_value(y_pred, 1e-7, 1.0))

    def distillation_loss(y_true: Any, y_pred: Any) -> Any:
        labels = tfm.cast(y_true[:, 0], tfm.int32)
        teacher = y_true[:, 1:]
        s_logp = _student_logp(y_pred)
        hard = -tfm.reduce_sum(tfm.one_hot(labels, tfm.shape(s_logp)[-1]) * s_logp, axis=-1)
        t_soft = tfm.nn.softmax(teacher / temperature, axis=-1)
        s_soft = tfm.nn.log_softmax(s_logp / temperature, axis=-1)
        t_log = tfm.nn.log_softmax(teacher / temperature, axis=-1)
        kl = tfm.reduce_sum(t_soft * (t_log - s_soft), axis=-1) * (temperature**2)
        return (1.0 - alpha) * hard + alpha * kl

    return distillation_loss


def _binary_ce(from_logits: bool) -> Any:
    from edgekit._tf import tf_keras

    return tf_keras().losses.BinaryCrossentropy(from_logits=from_logits)


def _sparse_ce(from_logits: bool) -> Any:
    from edgekit._tf import tf_keras

    return tf_keras().losses.SparseCategoricalCrossentropy(from_logits=from_logits)
