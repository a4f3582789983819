"""Score every variant on the held-out split: Keras models and ``.tflite`` artifacts alike.

A ``.tflite`` is scored through the TFLite interpreter with the device's own
code (:func:`edgekit.compile.check.evaluate`), never through Keras. Each row
carries top-1, macro precision/recall/F1, sizes (raw and gzip) and the drop in
top-1 points against the original float model.

The held-out images stream (a :class:`~edgekit.data.Dataset` decodes them in
batches with the shared preprocessing); only the outputs are kept. Arrays of
preprocessed inputs are accepted too and go through the same path.
"""
from __future__ import annotations

import gzip
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgekit.metrics import class_probabilities, classification_metrics

ROW_KEYS = ("variant", "kind", "target", "top1", "macro_precision", "macro_recall", "macro_f1", "n", "bytes", "gzip_bytes", "params", "nonzero_params", "macs")


def _metrics(y: np.ndarray, scores: np.ndarray, num_classes: int, output: str) -> dict[str, Any]:
    m = classification_metrics(y, class_probabilities(scores, output), num_classes=num_classes)
    return {k: m[k] for k in ("top1", "macro_precision", "macro_recall", "macro_f1", "n")}


def keras_row(
    variant: str,
    model: Any,
    data: Any,
    y: np.ndarray | None = None,
    *,
    num_classes: int,
    note: str = "",
    macs: int | None = None,
    output: str = "probabilities",
) -> dict[str, Any]:
    """Evaluate a tf_keras model; sizes are its weights as float32 bytes, raw and gzipped.

    ``output`` ("logits" | "probabilities") says how outputs become class
    probabilities (:func:`edgekit.metrics.class_probabilities`, as on the device).

    gzip of the weights shows what unstructured sparsity saves before any
    conversion (zeros compress; a dense float32 kernel barely does).
    """
    from edgekit.compress.finetune import as_dataset, predict
    from edgekit.intake.stats import layer_macs

    ds = as_dataset(data, y)
    scores = predict(model, ds)
    blob = b"".join(np.asarray(w, dtype=np.float32).tobytes() for w in _deployed_weights(model))
    return {
        "variant": variant,
        "kind": "keras",
        "target": None,
        **_metrics(ds.y, scores, num_classes, output),
        "bytes": len(blob),
        "gzip_bytes": len(gzip.compress(blob, compresslevel=9, mtime=0)),
        "params": int(sum(np.size(w) for w in _deployed_weights(model))),
        "nonzero_params": int(sum(np.count_nonzero(w) for w in _deployed_weights(model))),
        # tfmot wrappers hide the layer's shapes; the caller passes the unwrapped model's MACs then.
        "macs": int(macs if macs is not None else sum(layer_macs(layer) for layer in model.layers)),
        "note": note,
    }


def _deployed_weights(model: Any) -> list[np.ndarray]:
    # QAT models also hold fake-quant ranges and step counters; only the layers' own
    # kernels, biases and BN statistics end up in an artifact.
    out = []
    for w in model.weights:
        short = w.name.split("/")[-1].split(":")[0]
        if short.endswith(("_min", "_max")) or short in ("optimizer_step", "pruning_step", "mask", "threshold"):
            continue
        out.append(np.asarray(w.numpy()))
    return out


def tflite_row(
    variant: str,
    content: bytes,
    data: Any,
    y: np.ndarray | None = None,
    *,
    num_classes: int,
    target: str,
    note: str = "",
    output: str = "probabilities",
) -> dict[str, Any]:
    """Evaluate ``.tflite`` bytes through the interpreter (written to a temp file outside any bundle).

    The row format is :func:`edgekit.compile.check.artifact_row`'s, the one
    :func:`edgekit.compile.build_bundle` appends for every artifact it ships.
    ``data`` streams: the interpreter takes one sample at a time.
    """
    from edgekit.compile.check import artifact_row, evaluate
    from edgekit.compress.finetune import as_dataset

    ds = as_dataset(data, y)
    with _loaded(content, target) as (path, interp):
        m = evaluate(interp, ds, ds.y, num_classes=num_classes, output=output)
        return artifact_row(variant, path, m, target=target, note=note)


def check_loads(content: bytes, *, target: str) -> None:
    """Load and allocate ``.tflite`` bytes as the device would (XNNPACK applied).

    Raises:
        TargetError: the interpreter refuses the artifact (its one-line reason).
    """
    with _loaded(content, target):
        pass


@contextmanager
def _loaded(content: bytes, target: str) -> Iterator[tuple[Path, Any]]:
    """(temp file, allocated interpreter) for ``.tflite`` bytes, written outside any bundle and removed after."""
    from edgekit.compile.check import load_interpreter

    with tempfile.TemporaryDirectory(prefix="edgekit-eval-") as tmp:
        path = Path(tmp) / f"{target}.tflite"
        path.write_bytes(content)
        yield path, load_interpreter(path, target=target)


def add_drops(rows: list[dict[str, Any]], reference_top1: float) -> list[dict[str, Any]]:
    """Set each row's ``drop`` (top-1 points lost against ``reference_top1``; negative = better)."""
    for r in rows:
        r["drop"] = round((reference_top1 - r["top1"]) * 100.0, 4)
    return rows
