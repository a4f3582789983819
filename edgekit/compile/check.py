"""Run an artifact through the TFLite interpreter: numeric check against Keras, and accuracy.

Both go through :func:`edgekit.runtime.tensors.run_batch`, the code the device
uses, so the numbers in the manifest are the numbers the device will see.
The numeric check is Optimum-style: a shape mismatch is fatal, a tolerance
miss is recorded as a warning.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import TargetError
from edgekit.metrics import classification_metrics
from edgekit.runtime.tensors import TensorInfo, run_batch


def load_interpreter(path: str | Path, *, target: str = "") -> Any:
    """An allocated interpreter for ``path`` from the first working backend.

    Raises:
        TargetError: the interpreter cannot load or allocate the artifact.
    """
    from edgekit._tf import quiet_native_logs
    from edgekit.runtime.backends import select_backend

    backend = select_backend()
    try:
        with quiet_native_logs():
            interp = backend.Interpreter(model_path=str(path))
            interp.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        raise TargetError(f"target {target}: {backend.name} cannot load {Path(path).name}: {str(e).strip().splitlines()[0]}.") from e
    if len(interp.get_input_details()) != 1 or len(interp.get_output_details()) != 1:
        raise TargetError(f"target {target}: {Path(path).name} must have one input and one output tensor.")
    return interp


def io_info(interp: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest's ``input`` and ``output`` dicts (name, shape, dtype, scale, zero_point)."""
    inp = TensorInfo.from_detail(interp.get_input_details()[0])
    out = TensorInfo.from_detail(interp.get_output_details()[0])
    return inp.to_dict(), out.to_dict()


def numeric_check(model: Any, interp: Any, x: np.ndarray, tolerance: float, *, target: str = "") -> dict[str, Any]:
    """Compare the artifact's outputs with the Keras model's on ``x``.

    The error is ``max |tflite - keras|`` divided by the largest ``|keras|``
    output, so one tolerance fits logits and probabilities alike.

    Raises:
        TargetError: the output shapes differ (the artifact is wrong, not just imprecise).
    """
    from edgekit._tf import quiet_native_logs

    with quiet_native_logs():
        ref = np.asarray(model.predict(x, batch_size=32, verbose=0), dtype=np.float32)
    got = run_batch(interp, x)
    if got.shape != ref.shape:
        raise TargetError(
            f"target {target}: artifact output shape {got.shape[1:]} differs from the Keras model's {ref.shape[1:]}."
        )
    peak = float(np.max(np.abs(ref))) if ref.size else 0.0
    err = float(np.max(np.abs(got - ref)) / max(peak, 1e-12)) if ref.size else 0.0
    agree = float(np.mean(np.argmax(got, axis=-1) == np.argmax(ref, axis=-1))) if ref.ndim == 2 and ref.shape[1] > 1 else None
    return {
        "samples": int(len(x)),
        "max_error": err,
        "max_abs_error": float(np.max(np.abs(got - ref))) if ref.size else 0.0,
        "tolerance": tolerance,
        "ok": err <= tolerance,
        "top1_agreement": agree,
        "metric": "max |tflite - keras| / max |keras|",
    }


def evaluate(interp: Any, x: np.ndarray, y: np.ndarray, *, num_classes: int | None = None) -> dict[str, Any]:
    """Classification metrics of the artifact on a labelled, preprocessed set."""
    return classification_metrics(y, run_batch(interp, x), num_classes=num_classes)
