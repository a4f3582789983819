"""int8 calibration: representative data, per-layer quantization error, and the accuracy budget.

* :func:`representative_samples` draws the calibration images stratified from
  the training split (already preprocessed with the model's spec).
* :func:`layer_errors` runs TFLite's ``QuantizationDebugger`` on the float
  model's int8 calibration (the one its int8 artifacts are quantized from):
  for every quantized op, the error of its int8 output against float given
  the same (quantized) input, in units of its quantization step
  (``rmse / scale``). This is the per-layer report in the bundle.
* :func:`fit_budget` converts the CPU artifact, scores it through the
  interpreter, and while it loses more top-1 points than allowed, keeps the
  layers with the largest error in float (the converter's denylist, via
  :func:`edgekit.compile.convert.convert_model`), one more at a time. It stops
  at the first conversion within budget, or reports the closest one.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from edgekit.compress.progress import NullProgress
from edgekit.data import Dataset, sample_stratified
from edgekit.errors import EdgekitError, first_line

MAX_FALLBACK_LAYERS = 6  # conversions tried by the budget loop after the plain int8 one
DEBUG_SAMPLES = 64  # samples the per-layer error is measured on (calibration uses them all)
NEGLIGIBLE_ERROR = 0.05  # rmse/scale below this is rounding noise: keeping the layer float cannot help


def representative_samples(train: Dataset, n: int, seed: int = 0) -> np.ndarray:
    """``n`` preprocessed training images, stratified by class (all of them if fewer), decoded into one array.

    Only these ``n`` are decoded (``n`` x the input size in float32: 200 at
    224x224x3 is 120 MB): the converter and the quantization debugger go over
    them several times, so they are read once and kept.
    """
    return sample_stratified(train, n, seed=seed).read()


@dataclass
class LayerError:
    layer: str | None  # the Keras layer the op came from (None: not attributable, e.g. the model output)
    op: str
    tensor: str
    rmse_over_scale: float  # error of the int8 output in quantization steps
    mean_error: float
    max_abs_error: float
    scale: float
    zero_point: int
    elements: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def layer_errors(
    model: Any,
    representative: np.ndarray,
    *,
    progress: NullProgress | None = None,
    conversions: Any = None,
    profile: Any = None,
    debug_samples: int = DEBUG_SAMPLES,
) -> list[LayerError]:
    """Per-op int8 quantization error of ``model`` (float), worst first.

    The int8 model is the one every post-training int8 artifact of ``model``
    is quantized from: calibrated on all of ``representative``, through
    ``conversions`` (a :class:`~edgekit.compile.convert.ConversionCache`) so a
    later int8 conversion of the same model reuses that calibration. The
    errors are measured on the first ``debug_samples`` of them: the per-op
    statistics settle long before 200 samples, and each one costs a run of the
    model through TFLite's reference kernels.

    Raises:
        EdgekitError: the debugger could not run (its one-line reason).
    """
    from edgekit._tf import quiet_native_logs, tf
    from edgekit.compile.convert import ConversionCache
    from edgekit.profiles import get_target

    tfm = tf()
    rep = np.ascontiguousarray(representative, dtype=np.float32)
    progress = progress or NullProgress()
    conversions = conversions if conversions is not None else ConversionCache()
    profile = profile if profile is not None else get_target("cpu")
    debug = rep[: max(1, debug_samples)]
    layer_names = {layer.name for layer in model.layers}
    with progress.task(f"per-layer int8 error (calibrate on {len(rep)}, measure on {len(debug)} samples)", 1 + len(debug)) as task:

        def samples() -> Any:
            for i in range(len(debug)):
                task.advance()
                yield [debug[i : i + 1]]

        try:
            calibrated = conversions.calibration(model, profile, rep)
            task.advance()
            from tensorflow.lite.python.convert import mlir_quantize

            with quiet_native_logs():
                # What QuantizationDebugger(converter=...) builds, from the shared calibration.
                instrumented = mlir_quantize(calibrated, enable_numeric_verify=True)
                debugger = tfm.lite.experimental.QuantizationDebugger(quant_debug_model_content=instrumented, debug_dataset=samples)
                debugger.run()
            buf = io.StringIO()
            debugger.layer_statistics_dump(buf)
        except Exception as e:  # noqa: BLE001 - the debugger raises ValueError/RuntimeError from the converter
            from edgekit.interrupts import checkpoint

            checkpoint()  # a Ctrl-C that surfaced as OSError in the converter's cleanup stays an interrupt
            text = e.message if isinstance(e, EdgekitError) else first_line(e)
            raise EdgekitError(f"the int8 quantization debugger failed on model {model.name!r}: {text.rstrip('.')}.") from e
    rows = []
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        scale = float(r["scale"])
        mse = float(r["mean_squared_error"])
        rows.append(
            LayerError(
                layer=_layer_of(r["tensor_name"], layer_names),
                op=r["op_name"],
                tensor=r["tensor_name"],
                rmse_over_scale=math.sqrt(mse) / scale if scale else 0.0,
                mean_error=float(r["mean_error"]),
                max_abs_error=float(r["max_abs_error"]),
                scale=scale,
                zero_point=int(float(r["zero_point"])),
                elements=int(float(r["num_elements"])),
            )
        )
    rows.sort(key=lambda e: -e.rmse_over_scale)
    return rows


def _layer_of(tensor_name: str, layer_names: set[str]) -> str | None:
    """The Keras layer a TFLite tensor came from, or None.

    TFLite names fused ops "model/layer/Op;model/layer/BiasAdd;...": the first
    run of whole path segments that is a layer name, longest run first, since
    an inlined nested model's layer is named "base/block_1_expand".

    Example:
        >>> _layer_of("m/base/block_1_expand/Conv2D;m/base/block_1_expand/BiasAdd", {"base/block_1_expand", "fc"})
        'base/block_1_expand'
    """
    longest = max((name.count("/") + 1 for name in layer_names), default=1)
    for part in tensor_name.split(";"):
        segs = part.split("/")
        for i in range(len(segs)):
            for n in range(min(longest, len(segs) - i), 0, -1):
                name = "/".join(segs[i : i + n])
                if name in layer_names:
                    return name
    return None


def fallback_candidates(errors: Sequence[LayerError], limit: int = MAX_FALLBACK_LAYERS) -> list[str]:
    """Keras layers to try in float, most error-prone first (each layer once, negligible errors left out)."""
    out: list[str] = []
    for e in errors:
        if e.layer and e.layer not in out and e.rmse_over_scale >= NEGLIGIBLE_ERROR:
            out.append(e.layer)
        if len(out) >= limit:
            break
    return out


@dataclass
class Attempt:
    """One conversion the budget loop scored."""

    model: str  # which Keras model was converted: "qat" or "float" (the model before QAT)
    float_layers: list[str]
    top1: float
    drop: float  # top-1 points lost against the original float model
    row: dict[str, Any] = field(default_factory=dict)  # the full evaluation row
    content: bytes = field(default=b"", repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "float_layers": self.float_layers, "top1": self.top1, "drop": self.drop}


@dataclass
class BudgetResult:
    """What the accuracy budget loop decided."""

    max_drop: float | None  # the budget in top-1 points (None: no budget, one conversion)
    met: bool
    chosen: Attempt
    attempts: list[Attempt]
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_accuracy_drop": self.max_drop,
            "met": self.met,
            "chosen": self.chosen.to_dict(),
            "attempts": [a.to_dict() for a in self.attempts],
            "message": self.message,
        }


def fit_budget(
    *,
    convert: Callable[[str, Sequence[str]], bytes],
    score: Callable[[bytes, str], dict[str, Any]],
    reference_top1: float,
    max_drop: float | None,
    main_model: str,
    candidates: Sequence[str],
    fallback_model: str = "float",
    fallback_allowed: bool = True,
    float_drop: float | None = None,
    progress: NullProgress | None = None,
) -> BudgetResult:
    """Convert, score, and keep layers in float until within ``max_drop`` points of ``reference_top1``.

    Args:
        convert: ``(model_key, float_layers) -> .tflite bytes`` for ``main_model`` or ``fallback_model``.
        score: ``(content, label) -> evaluation row`` (with ``top1``), through the interpreter.
        reference_top1: the original float model's top-1 (fraction).
        max_drop: the budget in top-1 points; None = convert once, no loop.
        main_model: the model the plain int8 artifact comes from ("qat" or "float").
        candidates: layers to keep in float, most error-prone first (tried cumulatively).
        fallback_model: the model float fallback applies to; a QAT model's fake-quant
            ranges win over the denylist, so fallback converts the float model before QAT.
        fallback_allowed: whether the target may keep layers in float at all.
        float_drop: the points the float (pre-quantization) model already lost; when it
            alone is over budget no fallback can help and the loop says so.

    Returns:
        A :class:`BudgetResult` whose ``chosen`` attempt is the first within budget or the closest one.
    """
    progress = progress or NullProgress()
    attempts: list[Attempt] = []

    def attempt(model_key: str, layers: list[str]) -> Attempt:
        content = convert(model_key, layers)
        label = "int8" + (f" + {len(layers)} float layer(s)" if layers else "") + (" (PTQ)" if model_key != main_model else "")
        row = score(content, label)
        a = Attempt(model_key, layers, row["top1"], round((reference_top1 - row["top1"]) * 100.0, 4), row, content)
        attempts.append(a)
        return a

    total = 1 + (len(candidates) + (main_model != fallback_model) if max_drop is not None and fallback_allowed else 0)
    with progress.task("int8 calibration and accuracy budget", total) as task:
        first = attempt(main_model, [])
        task.advance(info=f"drop {first.drop:.2f} pts")
        if max_drop is None:
            return BudgetResult(None, True, first, attempts, f"int8 top-1 {first.top1:.2%} ({-first.drop:+.2f} points vs float); no budget set.")
        if first.drop <= max_drop:
            return BudgetResult(max_drop, True, first, attempts, f"int8 {change_words(first.drop)}, within the budget of {max_drop:g}.")
        if not fallback_allowed:
            return BudgetResult(
                max_drop, False, first, attempts,
                f"budget not met: int8 {change_words(first.drop)} (budget {max_drop:g}) and the target cannot keep layers in float.",
            )  # fmt: skip
        if float_drop is not None and float_drop > max_drop:
            return BudgetResult(
                max_drop, False, first, attempts,
                f"budget not met: the compressed float model alone already loses {float_drop:.2f} top-1 points "
                f"(budget {max_drop:g}); keeping layers in float only undoes quantization error. "
                "Lower the sparsity/structured ratio, raise --epochs, or try --distill.",
            )  # fmt: skip
        layer_sets = [[]] if main_model != fallback_model else []
        layer_sets += [list(candidates[:k]) for k in range(1, len(candidates) + 1)]
        for layers in layer_sets:
            a = attempt(fallback_model, layers)
            task.advance(info=f"{len(layers)} float: drop {a.drop:.2f} pts")
            if a.drop <= max_drop:
                kept = f"keeping {', '.join(layers)} in float" if layers else "with post-training int8 instead of QAT"
                return BudgetResult(max_drop, True, a, attempts, f"within budget {kept}: int8 {change_words(a.drop)} (budget {max_drop:g}).")
    best = min(attempts, key=lambda a: (a.drop, len(a.float_layers)))
    tried = ", ".join(f"{len(a.float_layers)} float layer(s): {a.drop:.2f}" for a in attempts)
    return BudgetResult(
        max_drop, False, best, attempts,
        f"budget not met: the int8 model loses more than {max_drop:g} top-1 points in every conversion tried ({tried}); "
        f"the closest, {best.drop:.2f} points with {len(best.float_layers)} float layer(s), is the one built.",
    )  # fmt: skip


def change_words(drop: float) -> str:
    """A top-1 drop in points (positive = a loss) in words: "loses 0.56 top-1 points", "gains 7.24 …", "loses no …".

    Example:
        >>> change_words(-7.24)
        'gains 7.24 top-1 points'
    """
    if round(drop, 2) == 0:
        return "loses no top-1 points"
    return f"{'loses' if drop > 0 else 'gains'} {abs(drop):.2f} top-1 point{'' if round(abs(drop), 2) == 1 else 's'}"
