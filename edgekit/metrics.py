"""Classification metrics and artifact sizes, with numpy only (build side and device).

Macro averages follow scikit-learn's defaults: over the labels that occur in
``y_true`` or ``y_pred`` (or ``0..num_classes-1`` when given), with 0 for a
class that has no prediction (precision) or no sample (recall).

    m = classification_metrics(y_true, scores)       # scores: (N, C) or labels: (N,)
    print(m["top1"], m["macro_f1"])
    probs = class_probabilities(raw, "logits")        # raw model outputs -> (N, C) probabilities

:func:`class_probabilities` is the one rule, shared by the device pipeline and
the build side's evaluation, that turns a model's raw outputs into one
probability per class. A model with a single output unit is a binary
classifier (e.g. ``Dense(1, activation="sigmoid")``): its output is the
probability (or logit) of class index 1, the positive class. With class
folders sorted by name, as ``image_dataset_from_directory`` sorts them, that
is the second folder (``cats``/``dogs`` -> ``dogs``).
    print(size_report("bundle/model_cpu.tflite"))   # {'bytes': ..., 'gzip_bytes': ...}
"""
from __future__ import annotations

import gzip
import os
from typing import Any

import numpy as np

from edgekit.errors import DataError


OUTPUT_KINDS = ("logits", "probabilities")


def output_classes(num_outputs: int) -> int:
    """How many classes a classifier with ``num_outputs`` output units scores: one unit (sigmoid) scores 2."""
    return 2 if int(num_outputs) == 1 else int(num_outputs)


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    z = z - np.max(z, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow for large |z|."""
    z = np.asarray(z)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype if z.dtype.kind == "f" else np.float64)


def class_probabilities(raw: np.ndarray, output: str) -> np.ndarray:
    """A model's raw output row(s) -> one probability per class.

    K >= 2 outputs: softmax when ``output`` is "logits", else as they are.
    One output (a binary classifier): sigmoid when "logits", then ``p`` is
    class 1's probability and the row becomes ``[1 - p, p]``.

    Args:
        raw: (K,) one row or (N, K) rows of model outputs (dequantized float).
        output: the preprocessing spec's ``output``, "logits" or "probabilities".

    Returns:
        (C,) or (N, C) probabilities, C = :func:`output_classes` (K).

    Raises:
        ConfigError: ``output`` is not one of :data:`OUTPUT_KINDS`.
        DataError: ``raw`` is not 1-D or 2-D, or has no outputs.

    Example:
        >>> class_probabilities(np.array([0.0], np.float32), "logits").tolist()
        [0.5, 0.5]
    """
    if output not in OUTPUT_KINDS:
        from edgekit.errors import ConfigError

        raise ConfigError(f"Expected output to be one of {', '.join(OUTPUT_KINDS)}. Received: {output!r}.")
    a = np.asarray(raw)
    if a.ndim not in (1, 2) or a.shape[-1] == 0:
        raise DataError(f"model outputs must be (K,) or (N, K) with K >= 1; received shape {a.shape}.")
    if a.shape[-1] == 1:
        p = sigmoid(a) if output == "logits" else a
        return np.concatenate([1 - p, p], axis=-1)
    return softmax(a) if output == "logits" else a


def predicted_labels(scores_or_labels: np.ndarray) -> np.ndarray:
    """(N, C) scores -> argmax labels; (N,) integer labels pass through."""
    a = np.asarray(scores_or_labels)
    if a.ndim == 2 and a.shape[1] == 1:
        raise DataError(
            "predictions have one score per sample (a single-output binary model); expected one score per class.",
            hint="Convert the raw outputs with class_probabilities(raw, output) first.",
        )
    if a.ndim == 2:
        return np.argmax(a, axis=1).astype(np.int64)
    if a.ndim == 1:
        return a.astype(np.int64)
    raise DataError(f"predictions must be (N, classes) scores or (N,) labels, got shape {a.shape}.")


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``C[i, j]`` = samples of class ``i`` predicted as ``j``."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def classification_metrics(
    y_true: np.ndarray, predictions: np.ndarray, *, num_classes: int | None = None
) -> dict[str, Any]:
    """Top-1 accuracy, macro precision/recall/F1, the confusion counts and ``n``.

    Args:
        y_true: (N,) integer labels.
        predictions: (N, C) scores/probabilities/logits, or (N,) predicted labels.
        num_classes: average over ``0..num_classes-1``; default: labels seen in either array.

    Raises:
        DataError: empty input, length mismatch, or negative labels.
    """
    y = np.asarray(y_true).astype(np.int64).ravel()
    p = predicted_labels(predictions)
    if len(y) == 0:
        raise DataError("cannot score an empty set: no samples.")
    if len(y) != len(p):
        raise DataError(f"{len(y)} labels but {len(p)} predictions; they must pair up.")
    if y.min() < 0 or p.min() < 0:
        raise DataError("labels must be >= 0.")
    k = int(max(y.max(), p.max()) + 1)
    if num_classes is not None:
        if k > num_classes:
            raise DataError(f"label {k - 1} found but num_classes is {num_classes}.")
        k = num_classes
        labels = np.arange(k)
    else:
        labels = np.union1d(y, p)
    cm = confusion_counts(y, p, k)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    actual = cm.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return {
        "n": int(len(y)),
        "top1": float(np.mean(y == p)),
        "macro_precision": float(np.mean(precision[labels])),
        "macro_recall": float(np.mean(recall[labels])),
        "macro_f1": float(np.mean(f1[labels])),
        "confusion": cm.tolist(),
    }


def size_report(path: str | os.PathLike[str]) -> dict[str, int]:
    """File size, and gzip size (level 9): what pruning's zeros buy on the wire."""
    with open(path, "rb") as f:
        data = f.read()
    return {"bytes": len(data), "gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0))}
