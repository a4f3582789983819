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

from edgekit.errors import ConfigError, TargetError, first_line
from edgekit.metrics import class_probabilities, classification_metrics
from edgekit.runtime.tensors import TensorInfo, run_batch


def allocate_interpreter(path: str | Path, *, target: str = "") -> Any:
    """An allocated interpreter for ``path`` from the first working backend (its XNNPACK applied).

    Raises:
        TargetError: the interpreter cannot load or allocate the artifact
            (e.g. XNNPACK refuses a tensor's quantization).
    """
    from edgekit._tf import quiet_native_logs
    from edgekit.runtime.backends import select_backend

    backend = select_backend()
    try:
        with quiet_native_logs():
            interp = backend.Interpreter(model_path=str(path))
            interp.allocate_tensors()
    except (RuntimeError, ValueError) as e:
        raise TargetError(
            f"target {target}: {backend.name} {backend.version} cannot load {Path(path).name}: {first_line(e)}.",
            hint="The artifact was converted but this interpreter refuses it; check the model's ranges and ops.",
        ) from e
    return interp


def load_interpreter(path: str | Path, *, target: str = "") -> Any:
    """:func:`allocate_interpreter`, for an artifact with one input and one output tensor.

    Raises:
        TargetError: the interpreter cannot load or allocate the artifact, or
            it does not have exactly one input and one output.
    """
    interp = allocate_interpreter(path, target=target)
    if len(interp.get_input_details()) != 1 or len(interp.get_output_details()) != 1:
        raise TargetError(f"target {target}: {Path(path).name} must have one input and one output tensor.")
    return interp


def io_info(interp: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest's ``input`` and ``output`` dicts (name, shape, dtype, scale, zero_point)."""
    inp = TensorInfo.from_detail(interp.get_input_details()[0])
    out = TensorInfo.from_detail(interp.get_output_details()[0])
    return inp.to_dict(), out.to_dict()


def keras_reference(model: Any, x: np.ndarray) -> np.ndarray:
    """The Keras model's float32 outputs on ``x``: what every artifact is compared with."""
    from edgekit._tf import quiet_native_logs

    with quiet_native_logs():
        return np.asarray(model.predict(x, batch_size=32, verbose=0), dtype=np.float32)


# Layers that only move values around: what a model emits is decided before them.
_SHAPE_ONLY = frozenset({"Flatten", "Reshape", "Dropout", "SpatialDropout2D", "Permute"})


def model_output_kind(model: Any) -> str:
    """"probabilities" when the model ends in a softmax, or in a sigmoid on a single output; else "logits".

    Read from the architecture, walking back past layers that only reshape,
    because a single output's values cannot tell a sigmoid from a logit.
    """
    last = model.layers[-1]
    while type(last).__name__ in _SHAPE_ONLY or (
        type(last).__name__ == "Activation" and getattr(last.activation, "__name__", None) == "linear"
    ):
        parents = last.inbound_nodes[0].inbound_layers if last.inbound_nodes else []
        parents = parents if isinstance(parents, list) else [parents]
        if len(parents) != 1:
            break
        last = parents[0]
    while hasattr(last, "layer"):  # tfmot's QuantizeWrapper / PruneLowMagnitude hold the real layer
        last = last.layer
    if type(last).__name__ == "Softmax":
        return "probabilities"
    activation = getattr(last, "activation", None)
    # QAT swaps the activation for a QuantizeAwareActivation that keeps the original.
    activation = getattr(activation, "activation", activation)
    name = getattr(activation, "__name__", None)
    if name == "sigmoid" and int(model.outputs[0].shape[-1]) == 1:
        return "probabilities"  # a binary classifier: its one output is P(class 1)
    return "probabilities" if name == "softmax" else "logits"


def check_output_kind(ref: np.ndarray, declared: str) -> None:
    """Refuse a preprocessing spec whose ``output`` contradicts what the model gives.

    The device turns outputs into probabilities with
    :func:`edgekit.metrics.class_probabilities`: softmax (or sigmoid for a
    single output) only when the spec says ``"logits"``. Logits taken for
    probabilities give wrong scores, and probabilities taken for logits are
    squashed twice (flattened towards uniform).

    A single (sigmoid) output is only refused when it is declared
    probabilities but leaves [0, 1]: logits that all happen to fall in
    [0, 1] cannot be told from probabilities by their values.

    Args:
        ref: the model's outputs, (N, K).
        declared: the spec's ``output``, "logits" or "probabilities".

    Raises:
        ConfigError: the spec's ``output`` does not match the outputs (the message says what to set).
    """
    if ref.ndim != 2 or ref.shape[1] < 1 or len(ref) == 0 or not np.all(np.isfinite(ref)):
        return  # nothing to tell probabilities from logits by
    in_unit = bool(np.all(ref >= -1e-6) and np.all(ref <= 1 + 1e-6))
    if ref.shape[1] == 1:
        if declared == "probabilities" and not in_unit:
            raise ConfigError(
                f"the preprocessing spec says output='probabilities' but the model's single output is not a probability "
                f"(on {len(ref)} samples: values {float(ref.min()):.3g}..{float(ref.max()):.3g}; expected values in [0, 1]).",
                hint="Set the spec's output='logits' (the device then applies sigmoid), or end the model with "
                "Dense(1, activation='sigmoid').",
            )
        return
    sums = ref.sum(axis=1)
    softmaxed = in_unit and bool(np.allclose(sums, 1.0, atol=1e-3))
    if declared == "probabilities" and not softmaxed:
        raise ConfigError(
            f"the preprocessing spec says output='probabilities' but the model's outputs are not probabilities "
            f"(on {len(ref)} samples: values {float(ref.min()):.3g}..{float(ref.max()):.3g}, rows sum to "
            f"{float(sums.min()):.3g}..{float(sums.max()):.3g}; expected values in [0, 1] summing to 1).",
            hint="Set the spec's output='logits' (the device then applies softmax), or end the model with a softmax.",
        )
    if declared == "logits" and softmaxed:
        raise ConfigError(
            f"the preprocessing spec says output='logits' but the model already gives probabilities "
            f"(on {len(ref)} samples every row is in [0, 1] and sums to 1: it ends in softmax).",
            hint="Set the spec's output='probabilities'; with 'logits' the device would apply softmax a second time.",
        )


def numeric_check(
    model: Any, interp: Any, x: np.ndarray, tolerance: float, *, target: str = "", reference: np.ndarray | None = None
) -> dict[str, Any]:
    """Compare the artifact's outputs with the Keras model's on ``x``.

    The error is ``max |tflite - keras|`` divided by the largest ``|keras|``
    output (or by 1 when that is smaller), so one tolerance fits logits and
    probabilities alike, and outputs near zero are not blown up.

    Args:
        reference: the model's outputs on ``x`` when already computed
            (:func:`keras_reference`); else the model is run here.

    Raises:
        TargetError: the output shapes differ (the artifact is wrong, not just imprecise).
    """
    ref = keras_reference(model, x) if reference is None else reference
    got = run_batch(interp, x)
    if got.shape != ref.shape:
        raise TargetError(
            f"target {target}: artifact output shape {got.shape[1:]} differs from the Keras model's {ref.shape[1:]}."
        )
    # Relative to the output's scale, but never to less than 1: a sigmoid that
    # says 0.0003 everywhere would otherwise turn an absolute error of 0.001
    # into "1.0, outside tolerance".
    peak = float(np.max(np.abs(ref))) if ref.size else 0.0
    err = float(np.max(np.abs(got - ref)) / max(peak, 1.0)) if ref.size else 0.0
    agree = float(np.mean(np.argmax(got, axis=-1) == np.argmax(ref, axis=-1))) if ref.ndim == 2 and ref.shape[1] > 1 else None
    return {
        "samples": int(len(x)),
        "max_error": err,
        "max_abs_error": float(np.max(np.abs(got - ref))) if ref.size else 0.0,
        "tolerance": tolerance,
        "ok": err <= tolerance,
        "top1_agreement": agree,
        "metric": "max |tflite - keras| / max(1, max |keras|)",
    }


def evaluate(
    interp: Any, x: np.ndarray, y: np.ndarray, *, num_classes: int | None = None, output: str = "probabilities"
) -> dict[str, Any]:
    """Classification metrics of the artifact on a labelled, preprocessed set.

    Outputs become probabilities with :func:`edgekit.metrics.class_probabilities`,
    exactly as the device pipeline does; ``output`` is the spec's "logits" or "probabilities".
    """
    return classification_metrics(y, class_probabilities(run_batch(interp, x), output), num_classes=num_classes)


def artifact_row(variant: str, path: str | Path, metrics: dict[str, Any], *, target: str, note: str = "") -> dict[str, Any]:
    """One row of the evaluation table (``Manifest.variants``) for a ``.tflite`` file scored by :func:`evaluate`.

    The same keys as the Keras rows of :mod:`edgekit.compress.evaluate`
    (params/MACs are None: they are the Keras model's), plus the file's sha256,
    which ``edgekit bench --compare`` uses to tell a timed artifact from an
    untimed variant.

    Example::

        row = artifact_row("cpu int8 .tflite", "bundle/model_cpu.tflite", evaluate(interp, x, y), target="cpu")
    """
    from edgekit.bundle import sha256_file
    from edgekit.metrics import size_report

    return {
        "variant": variant,
        "kind": "tflite",
        "target": target,
        **{k: metrics[k] for k in ("top1", "macro_precision", "macro_recall", "macro_f1", "n")},
        **size_report(path),
        "params": None,
        "nonzero_params": None,
        "macs": None,
        "sha256": sha256_file(path),
        "note": note,
    }
