"""Convert a tf_keras model to one ``.tflite`` per target profile.

Every artifact is converted from a concrete function with a batch-1 input
signature, so all its tensors have static shapes (a ``None`` batch would stay
dynamic in the file, which accelerators refuse). Quantization follows the
profile: ``int8`` = full integer with a representative data set (I/O dtype
from the profile), ``fp16`` = float16 weights, ``fp32`` = none.

Float fallback (keep named layers in float inside an int8 model) calibrates
once and then quantizes with ``denylisted_nodes`` = the output tensors of the
ops that came from those layers; this is what TF 2.21's own
``QuantizationDebugger`` does, called directly so the int8/uint8 I/O types
still apply (the debugger always leaves float I/O).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from edgekit.errors import ConfigError, DataError, TargetError, first_line
from edgekit.profiles import TargetProfile
from edgekit.tflite_graph import read_graph


@dataclass(frozen=True)
class Converted:
    content: bytes
    float_fallback_layers: tuple[str, ...]  # layers actually kept in float
    denylisted_nodes: tuple[str, ...]  # the tensor names that did it
    calibration_samples: int  # 0 when no calibration ran


# The MLIR converter prefixes the useful line with file:line:col of our own
# lambda; the text after this marker is what the user can act on.
_MLIR_ERROR = "error:"


def model_io(model: Any) -> tuple[tuple[int, ...], tuple[int | None, ...]]:
    """(input shape without batch, output shape with batch) of a single-input, single-output model.

    Raises:
        TargetError: several inputs or outputs, or an input with unknown sizes.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise TargetError(
            f"model {model.name!r} has {len(model.inputs)} input(s) and {len(model.outputs)} output(s); "
            "edgekit builds artifacts for single-input, single-output classifiers."
        )
    shape = tuple(model.inputs[0].shape)[1:]
    if any(d is None for d in shape):
        raise TargetError(
            f"model {model.name!r} input shape {tuple(model.inputs[0].shape)} has unknown sizes besides the batch; "
            "edge artifacts need a fixed input size.",
            hint="Rebuild the model with a fixed keras.Input(shape=(H, W, C)).",
        )
    return tuple(int(d) for d in shape), tuple(model.outputs[0].shape)


def check_fallback_layers(model: Any, layers: Sequence[str]) -> None:
    """Every named layer exists in ``model``.

    Raises:
        ConfigError: an unknown layer name (lists the model's layers).
    """
    names = [layer.name for layer in model.layers]
    unknown = [n for n in layers if n not in names]
    if unknown:
        shown = ", ".join(names[:30]) + (" …" if len(names) > 30 else "")
        raise ConfigError(
            f"float_fallback_layers names {', '.join(map(repr, unknown))}, not a layer of model {model.name!r}; "
            f"its layers are: {shown}."
        )


def convert_model(
    model: Any,
    profile: TargetProfile,
    representative: np.ndarray | None = None,
    *,
    float_fallback_layers: Sequence[str] = (),
) -> Converted:
    """Convert ``model`` (tf_keras) for ``profile``.

    Args:
        model: a single-input, single-output tf_keras model.
        profile: the target profile (quantization, I/O dtype).
        representative: float32 NHWC calibration samples (int8 targets only).
        float_fallback_layers: layer names to keep in float (int8 targets that allow it).

    Raises:
        TargetError: the converter failed (its first error line is kept), or a
            fallback layer has no op of its own in the converted graph.
        DataError: an int8 target without representative samples.

    Example::

        c = convert_model(model, get_target("cpu"), x_calib[:200])
        Path("model_cpu.tflite").write_bytes(c.content)
    """
    from edgekit._tf import quiet_native_logs, tf

    tfm = tf()
    shape, _ = model_io(model)
    spec = tfm.TensorSpec([profile.batch, *shape], tfm.float32, name="input")
    fn = tfm.function(lambda x: model(x, training=False), input_signature=[spec])
    try:
        concrete = fn.get_concrete_function()
    except Exception as e:  # noqa: BLE001 - tracing user code can raise anything
        raise TargetError(f"target {profile.name}: tracing model {model.name!r} failed: {first_line(e, marker=_MLIR_ERROR)}.") from e
    if _is_keras3(model):
        converter = _keras3_converter(tfm, model, spec, profile.name)
    else:
        converter = tfm.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    fallback = tuple(float_fallback_layers) if profile.quantization == "int8" else ()
    if fallback and not profile.float_fallback:
        raise TargetError(
            f"target {profile.name} ({profile.source}) does not allow float fallback layers (float_fallback = false); "
            f"asked to keep {', '.join(fallback)} in float.",
            hint="Build this target without float fallback layers.",
        )
    samples = 0
    if profile.quantization == "fp16":
        converter.optimizations = [tfm.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tfm.float16]
    elif profile.quantization == "int8":
        if representative is None or len(representative) == 0:
            raise DataError(f"target {profile.name} is full int8 and needs representative samples to calibrate; none were given.")
        rep = np.ascontiguousarray(representative, dtype=np.float32)
        samples = len(rep)
        converter.optimizations = [tfm.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rep[i : i + 1]] for i in range(len(rep)))
        converter.target_spec.supported_ops = [tfm.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io = {"int8": tfm.int8, "uint8": tfm.uint8, "float32": tfm.float32}[profile.io_dtype]
        converter.inference_input_type = io
        converter.inference_output_type = io
        if fallback:
            converter._experimental_calibrate_only = True  # noqa: SLF001 - see the module docstring
    try:
        with quiet_native_logs():
            content = converter.convert()
    except Exception as e:  # noqa: BLE001 - the converter raises ConverterError, ValueError, RuntimeError...
        raise TargetError(
            f"target {profile.name}: the TFLite converter failed: {first_line(e, marker=_MLIR_ERROR)}.",
            hint="An op without a TFLite builtin kernel cannot go to an edge artifact; replace that layer.",
        ) from e
    nodes: tuple[str, ...] = ()
    if fallback:
        nodes = _denylist(content, fallback, profile.name)
        content = _quantize_with_denylist(tfm, content, io, nodes, profile.name)
    return Converted(bytes(content), fallback, nodes, samples)


def _is_keras3(model: Any) -> bool:
    # The no-bridge path (edgekit.intake.load_model(require_bridge=False)) hands over the Keras 3 model itself.
    return type(model).__module__.startswith("keras.") or any(c.__module__.startswith("keras.src") for c in type(model).__mro__)


def _keras3_converter(tfm: Any, model: Any, spec: Any, target: str) -> Any:
    """A converter for a Keras 3 model: Keras 3's own SavedModel export with a batch-1 signature.

    A concrete function over a Keras 3 model keeps its weights as resource
    variables that the TFLite interpreter cannot read; the export freezes them.
    """
    import shutil
    import tempfile
    import weakref

    from edgekit._tf import quiet_native_logs

    tmp = tempfile.mkdtemp(prefix="edgekit_k3_export_")
    try:
        with quiet_native_logs():
            model.export(tmp, format="tf_saved_model", input_signature=[spec], verbose=False)
        converter = tfm.lite.TFLiteConverter.from_saved_model(tmp)
    except Exception as e:  # noqa: BLE001 - export traces user code
        shutil.rmtree(tmp, ignore_errors=True)
        raise TargetError(f"target {target}: exporting Keras 3 model {model.name!r} to a SavedModel failed: {first_line(e, marker=_MLIR_ERROR)}.") from e
    # convert() reads the folder again; remove it once the converter is gone.
    weakref.finalize(converter, shutil.rmtree, tmp, True)
    return converter


def _denylist(calibrated: bytes, layers: Sequence[str], target: str) -> tuple[str, ...]:
    """Output tensor names of the ops that came from ``layers``.

    An op belongs to a layer when the layer's name is a path segment of its
    output name ("model/conv2/Relu;model/conv2/Conv2D") or of one of its
    weights: the graph's last op is renamed after the signature output
    ("StatefulPartitionedCall:0") and is found by its weights ("model/fc/MatMul").
    """
    graph = read_graph(calibrated)
    found: dict[str, list[str]] = {layer: [] for layer in layers}

    def parts(name: str) -> list[str]:
        return [f"/{part}/" for part in name.split(";")]

    for op in graph.ops:
        names = [graph.tensors[t].name for t in op.outputs]
        names += [graph.tensors[i].name for i in op.inputs if i >= 0 and graph.tensors[i].is_const]
        padded = [p for n in names for p in parts(n)]
        for layer in layers:
            # whole path segments only; an inlined nested layer's name spans several ("base/block_1_expand")
            if any(f"/{layer}/" in p for p in padded):
                found[layer].extend(graph.tensors[t].name for t in op.outputs)
    missing = [layer for layer, names in found.items() if not names]
    if missing:
        raise TargetError(
            f"target {target}: float fallback layer(s) {', '.join(map(repr, missing))} have no op of their own in the "
            "converted graph (removed at inference like Dropout, or fused into a neighbouring op like "
            "BatchNormalization into its Conv2D).",
            hint="Name the layer whose op remains (usually the Conv2D/Dense before them).",
        )
    return tuple(dict.fromkeys(n for names in found.values() for n in names))


def _quantize_with_denylist(tfm: Any, calibrated: bytes, io: Any, nodes: Sequence[str], target: str) -> bytes:
    from edgekit._tf import quiet_native_logs

    try:
        from tensorflow.lite.python.convert import mlir_quantize
    except ImportError as e:
        raise TargetError(f"target {target}: this TensorFlow has no mlir_quantize; float fallback is unavailable ({e}).") from e
    try:
        with quiet_native_logs():
            return mlir_quantize(
                calibrated,
                fully_quantize=True,
                input_data_type=io,
                output_data_type=io,
                denylisted_nodes=list(nodes),
            )
    except Exception as e:  # noqa: BLE001
        raise TargetError(f"target {target}: quantizing with float fallback failed: {first_line(e, marker=_MLIR_ERROR)}.") from e

