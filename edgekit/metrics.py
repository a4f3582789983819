"""Classification metrics and artifact sizes, with numpy only (build side and device).

Macro averages follow scikit-learn's defaults: over the labels that occur in
``y_true`` or ``y_pred`` (or ``0..num_classes-1`` when given), with 0 for a
class that has no prediction (precision) or no sample (recall).

    m = classification_metrics(y_true, scores)       # scores: (N, C) or labels: (N,)
    print(m["top1"], m["macro_f1"])
    print(size_report("bundle/model_cpu.tflite"))   # {'bytes': ..., 'gzip_bytes': ...}
"""
from __future__ import annotations

import gzip
import os
from typing import Any

import numpy as np

from edgekit.errors import DataError


def predicted_labels(scores_or_labels: np.ndarray) -> np.ndarray:
    """(N, C) scores -> argmax labels; (N,) integer labels pass through."""
    a = np.asarray(scores_or_labels)
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
