"""Convert a tf_keras model to one ``.tflite`` per target profile.

Every artifact is converted from a concrete function with a batch-1 input
signature, so all its tensors have static shapes (a ``None`` batch would stay
dynamic in the file, which accelerators refuse). Quantization follows the
profile: ``int8`` = full integer with a representative data set (I/O dtype
from the profile), ``fp16`` = float16 weights, ``fp32`` = none.

int8 conversion calibrates once (:class:`ConversionCache`) and then quantizes
for each I/O type. Float fallback (keep named layers in float inside an int8
model) quantizes the same calibration with ``denylisted_nodes`` = the output
tensors of the ops that came from those layers; this is what TF 2.21's own
``QuantizationDebugger`` does, called directly so the int8/uint8 I/O types
still apply (the debugger always leaves float I/O).
"""
from __future__ import annotations

import time
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
    return ConversionCache().convert(model, profile, representative, float_fallback_layers=float_fallback_layers)


class ConversionCache:
    """Convert once per distinct artifact, calibrate once per model.

    An artifact is distinct by (model, quantization, I/O dtype, batch, float
    fallback layers, calibration samples). int8 conversion is two steps, as in
    TensorFlow's own converter (``lite.py``: ``Calibrator.calibrate`` then
    ``mlir_quantize``): the calibrated model depends only on the model, the batch
    and the samples, so int8 targets that differ only in I/O type (cpu: int8,
    edgetpu: uint8) or in float fallback layers share one calibration and differ
    only in the quick quantize step. compress's accuracy-budget loop and the
    build use one cache, so the build reuses the loop's conversions.

    Models are keyed by identity (and kept referenced, so an id is never reused
    while the cache lives): pass the same model object. Calibration samples are
    keyed by their content (shape + a hash of the bytes).

    Example::

        cache = ConversionCache()
        cpu = cache.convert(model, get_target("cpu"), x_calib)
        tpu = cache.convert(model, get_target("edgetpu"), x_calib)  # no second calibration
        print(cache.stats)  # {'conversions': 2, 'calibrations': 1, 'reused': 0, 'seconds': ...}
    """

    def __init__(self) -> None:
        self._keep: dict[int, Any] = {}  # id -> object, so ids stay unique while cached
        self._calibrated: dict[tuple, bytes] = {}
        self._artifacts: dict[tuple, Converted] = {}
        self.stats: dict[str, float] = {"conversions": 0, "calibrations": 0, "reused": 0, "seconds": 0.0}

    def _ident(self, obj: Any) -> int:
        self._keep[id(obj)] = obj
        return id(obj)

    def convert(
        self,
        model: Any,
        profile: TargetProfile,
        representative: np.ndarray | None = None,
        *,
        float_fallback_layers: Sequence[str] = (),
    ) -> Converted:
        """:func:`convert_model`, reusing an earlier identical conversion or calibration."""
        int8 = profile.quantization == "int8"
        fallback = tuple(float_fallback_layers) if int8 else ()
        if fallback and not profile.float_fallback:
            raise TargetError(
                f"target {profile.name} ({profile.source}) does not allow float fallback layers (float_fallback = false); "
                f"asked to keep {', '.join(fallback)} in float.",
                hint="Build this target without float fallback layers.",
            )
        if int8 and (representative is None or len(representative) == 0):
            raise DataError(f"target {profile.name} is full int8 and needs representative samples to calibrate; none were given.")
        rep_key = _samples_key(representative) if int8 else None
        key = (self._ident(model), profile.quantization, profile.io_dtype if int8 else "float32", profile.batch, fallback, rep_key)
        if key in self._artifacts:
            self.stats["reused"] += 1
            return self._artifacts[key]
        calibrated = self._calibration(model, profile, representative, rep_key) if int8 else b""  # timed in there
        t = time.perf_counter()
        if not int8:
            content = _convert_float(model, profile)
            result = Converted(bytes(content), (), (), 0)
        else:
            nodes = _denylist(calibrated, fallback, profile.name) if fallback else ()
            content = _quantize(calibrated, profile, nodes)
            result = Converted(bytes(content), fallback, nodes, len(representative))
        self.stats["conversions"] += 1
        self.stats["seconds"] += time.perf_counter() - t
        self._artifacts[key] = result
        return result

    def calibration(self, model: Any, profile: TargetProfile, representative: np.ndarray) -> bytes:
        """The calibrated float model (statistics, nothing quantized yet) the int8 conversions of ``model`` start from.

        The same one :meth:`convert` quantizes for every int8 target of this
        batch size; computed once per model and samples.
        """
        return self._calibration(model, profile, representative, _samples_key(representative))

    def _calibration(self, model: Any, profile: TargetProfile, representative: np.ndarray, rep_key: tuple) -> bytes:
        ckey = (self._ident(model), profile.batch, rep_key)
        calibrated = self._calibrated.get(ckey)
        if calibrated is None:
            t = time.perf_counter()
            calibrated = self._calibrated[ckey] = _calibrate(model, profile, representative)
            self.stats["calibrations"] += 1
            self.stats["seconds"] += time.perf_counter() - t
        return calibrated


def _samples_key(x: np.ndarray) -> tuple:
    import hashlib

    a = np.ascontiguousarray(x, dtype=np.float32)
    return (a.shape, hashlib.blake2b(memoryview(a).cast("B"), digest_size=16).hexdigest())


def _converter(model: Any, profile: TargetProfile) -> Any:
    """A TFLiteConverter over a batch-``profile.batch`` concrete function of ``model``."""
    from edgekit._tf import tf

    tfm = tf()
    shape, _ = model_io(model)
    spec = tfm.TensorSpec([profile.batch, *shape], tfm.float32, name="input")
    fn = tfm.function(lambda x: model(x, training=False), input_signature=[spec])
    try:
        concrete = fn.get_concrete_function()
    except Exception as e:  # noqa: BLE001 - tracing user code can raise anything
        raise TargetError(f"target {profile.name}: tracing model {model.name!r} failed: {first_line(e, marker=_MLIR_ERROR)}.") from e
    if _is_keras3(model):
        return _keras3_converter(tfm, model, spec, profile.name)
    return concrete_converter(tfm, concrete, model)


def concrete_converter(tfm: Any, concrete: Any, model: Any) -> Any:
    """``TFLiteConverter.from_concrete_functions`` that freezes the function instead of saving the model first.

    Given the model as its trackable object, TF's converter first writes the
    whole tf_keras model as a SavedModel (tracing every layer's call functions
    for serialization) and converts from that: 80-90% of a conversion's time
    (MobileNetV2-0.5-128: 15.9 s of a float calibration, 45 s for its QAT
    model). Freezing the concrete function is TF's own older path and gives
    the same ops, scales and outputs (tests/test_conversion_cache.py); when it
    fails, :func:`run_converter` retries the SavedModel path.
    """
    converter = tfm.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    converter.experimental_lower_to_saved_model = False
    return converter


def run_converter(converter: Any) -> bytes:
    """``converter.convert()``, retried through TF's SavedModel lowering if the frozen-function path fails."""
    from edgekit._tf import quiet_native_logs

    try:
        with quiet_native_logs():
            return converter.convert()
    except Exception as e:  # noqa: BLE001 - the SavedModel path decides, unless the graph itself was refused
        if getattr(converter, "experimental_lower_to_saved_model", True) or _graph_refused(e):
            raise
    from edgekit.interrupts import checkpoint

    checkpoint()  # a Ctrl-C that surfaced as a converter error is not a reason to convert again
    converter.experimental_lower_to_saved_model = True
    with quiet_native_logs():
        return converter.convert()


def _graph_refused(e: BaseException) -> bool:
    """The MLIR converter ran and refused an op (a quantization constraint, an op without a kernel).

    The SavedModel path would refuse the same graph, after minutes on a large
    model; only failures about variables can be the frozen path's own.
    """
    errors = [line for line in str(e).splitlines() if _MLIR_ERROR in line]  # not the IR dump that follows them
    return type(e).__name__ == "ConverterError" and bool(errors) and not any(
        w in line for line in errors for w in ("VarHandleOp", "ReadVariableOp", "resource")
    )


def _run_converter(converter: Any, profile: TargetProfile) -> bytes:
    try:
        return run_converter(converter)
    except Exception as e:  # noqa: BLE001 - the converter raises ConverterError, ValueError, RuntimeError...
        raise TargetError(
            f"target {profile.name}: the TFLite converter failed: {first_line(e, marker=_MLIR_ERROR)}.",
            hint="An op without a TFLite builtin kernel cannot go to an edge artifact; replace that layer.",
        ) from e


def _convert_float(model: Any, profile: TargetProfile) -> bytes:
    from edgekit._tf import tf

    tfm = tf()
    converter = _converter(model, profile)
    if profile.quantization == "fp16":
        converter.optimizations = [tfm.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tfm.float16]
    return _run_converter(converter, profile)


def _calibrate(model: Any, profile: TargetProfile, representative: np.ndarray) -> bytes:
    """The float model with calibration statistics (what TF's converter quantizes from)."""
    from edgekit._tf import tf

    tfm = tf()
    converter = _converter(model, profile)
    rep = np.ascontiguousarray(representative, dtype=np.float32)
    converter.optimizations = [tfm.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rep[i : i + 1]] for i in range(len(rep)))
    converter.target_spec.supported_ops = [tfm.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_calibrate_only = True  # noqa: SLF001 - see ConversionCache: TF's own two steps
    return _run_converter(converter, profile)


def _quantize(calibrated: bytes, profile: TargetProfile, nodes: Sequence[str]) -> bytes:
    """Quantize a calibrated model to full int8 with the profile's I/O type, ``nodes`` kept float.

    Without ``nodes`` this is the call TF's converter makes after calibrating
    (same arguments, then its read-only buffer de-duplication), so the artifact
    has the same ops, scales and outputs as a one-step ``convert()``.
    """
    from edgekit._tf import quiet_native_logs, tf

    tfm = tf()
    io = {"int8": tfm.int8, "uint8": tfm.uint8, "float32": tfm.float32}[profile.io_dtype]
    try:
        from tensorflow.lite.python.convert import mlir_quantize
    except ImportError as e:
        raise TargetError(f"target {profile.name}: this TensorFlow has no mlir_quantize; int8 conversion is unavailable ({e}).") from e
    try:
        with quiet_native_logs():
            if nodes:
                out = mlir_quantize(calibrated, fully_quantize=True, input_data_type=io, output_data_type=io,
                                    denylisted_nodes=list(nodes))  # fmt: skip
            else:
                out = mlir_quantize(calibrated, input_data_type=io, output_data_type=io)
    except Exception as e:  # noqa: BLE001
        what = "quantizing with float fallback" if nodes else "int8 quantization"
        raise TargetError(f"target {profile.name}: {what} failed: {first_line(e, marker=_MLIR_ERROR)}.") from e
    return _dedupe(out)


def _dedupe(content: bytes) -> bytes:
    """TF's read-only buffer de-duplication, the converter's last step; skipped where TF lacks it."""
    try:
        from tensorflow.lite.python.lite import _deduplicate_readonly_buffers
    except ImportError:
        return content
    try:
        return bytes(_deduplicate_readonly_buffers(content))
    except Exception:  # noqa: BLE001 - TF itself skips this step when its flatbuffer library fails
        return content


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
