"""Quantization-aware training with tfmot, sparsity-preserving on a pruned model (PQAT).

Only layers tfmot's 8-bit scheme supports are annotated; the rest (Rescaling,
Normalization, custom layers, ...) stay float inside the QAT model and are
listed in the report; the int8 conversion then calibrates them from the
representative data like any post-training quantized layer. If tfmot still
refuses the model, :func:`quantize_aware` raises :class:`QATUnavailable` with
tfmot's one-line reason, and the pipeline carries on with post-training int8
and says so: the user never sees a tfmot stack trace.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edgekit.compress.finetune import Teacher, copy_model, fine_tune
from edgekit.compress.progress import NullProgress
from edgekit.errors import EdgekitError, first_line


class QATUnavailable(EdgekitError):
    """tfmot cannot build a QAT model for this architecture (reason in the message)."""


@dataclass
class QATReport:
    scheme: str  # "default_8bit" | "prune_preserve_8bit"
    quantized_layers: list[str]
    float_layers: list[dict[str, str]]  # name, type, reason: left in float by QAT
    sparsity_before: float | None = None  # over the pruned kernels, when the input was pruned
    sparsity_after: float | None = None
    fine_tune: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def quantize_aware(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    *,
    preserve_sparsity: bool = False,
    epochs: int,
    batch_size: int = 32,
    learning_rate: float = 5e-4,
    output_kind: str = "probabilities",
    teacher: Teacher | None = None,
    progress: NullProgress | None = None,
    seed: int = 0,
) -> tuple[Any, QATReport]:
    """Fine-tune a fake-quantized copy of ``model``; returns (QAT model, report).

    Args:
        preserve_sparsity: use tfmot's prune-preserving scheme (PQAT) so the
            zeros of a pruned model stay zero.

    Example::

        qat_model, report = quantize_aware(pruned, x, y, preserve_sparsity=True, epochs=2)
        print(report.float_layers)

    Raises:
        QATUnavailable: tfmot cannot quantize this model (the pipeline falls back to post-training int8).
    """
    from edgekit._tf import tf_keras, tfmot
    from edgekit.intake import audit_model

    mot = tfmot()
    keras = tf_keras()
    try:
        work = copy_model(model)
        audit = audit_model(work)
    except Exception as e:  # noqa: BLE001 - clone_model refuses subclassed models with ValueError
        raise QATUnavailable(
            f"quantization-aware training is not possible for model {model.name!r}: {first_line(e)}",
            hint="The model is converted with post-training int8 calibration instead.",
        ) from e
    quantizable = {a.name for a in audit if a.quantizable}
    float_layers = [
        {"name": a.name, "type": a.type, "reason": f"tfmot's 8-bit scheme has no config for {a.type}; kept float, calibrated at conversion"}
        for a in audit
        if not a.quantizable
    ]
    kernels_before = _zero_fraction(work) if preserve_sparsity else None

    def annotate(layer: Any) -> Any:
        if layer.name in quantizable:
            return mot.quantization.keras.quantize_annotate_layer(layer)
        return layer

    scheme = None
    scheme_name = "default_8bit"
    if preserve_sparsity:
        scheme = mot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()
        scheme_name = "prune_preserve_8bit"
    try:
        annotated = keras.models.clone_model(work, clone_function=annotate)
        with mot.quantization.keras.quantize_scope():
            qmodel = mot.quantization.keras.quantize_apply(annotated, scheme) if scheme else mot.quantization.keras.quantize_apply(annotated)
    except Exception as e:  # noqa: BLE001 - tfmot raises ValueError/TypeError/RuntimeError for unsupported graphs
        raise QATUnavailable(
            f"quantization-aware training is not possible for model {model.name!r}: {first_line(e)}",
            hint="The model is converted with post-training int8 calibration instead.",
        ) from e
    stats = fine_tune(
        qmodel,
        x,
        y,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        output_kind=output_kind,
        teacher=teacher,
        progress=progress,
        description="quantization-aware training" + (" (sparsity-preserving)" if preserve_sparsity else ""),
        seed=seed,
    )
    report = QATReport(
        scheme=scheme_name,
        quantized_layers=sorted(quantizable),
        float_layers=float_layers,
        sparsity_before=kernels_before,
        sparsity_after=_zero_fraction(qmodel) if preserve_sparsity else None,
        fine_tune=stats,
    )
    return qmodel, report


def _zero_fraction(model: Any) -> float:
    """Zero fraction over all Conv/Dense kernels, looking inside tfmot wrappers."""
    zeros = total = 0
    for layer in model.layers:
        # Inside a QuantizeWrapper the layer's .kernel is a fake-quantized tensor; read the variables.
        for w in layer.weights:
            if w.name.split("/")[-1] in ("kernel:0", "depthwise_kernel:0"):
                a = np.asarray(w.numpy())
                zeros += int(np.count_nonzero(a == 0))
                total += a.size
    return zeros / total if total else 0.0
