"""The peers a user would otherwise pick, measured beside the bundle in ``--compare``.

- ``tflite-default``: the source model through ``tf.lite.TFLiteConverter``
  with its default settings (float32, no optimizations), run by the same
  interpreter backend as the bundle.
- ``onnxruntime``: the source model exported with tf2onnx and run by ONNX
  Runtime's CPU execution provider with the same thread count.
- ``onnxruntime-int8``: that ONNX model statically quantized by ONNX Runtime
  (``quantize_static``: QDQ format, per-channel int8 weights, int8
  activations, MinMax calibration on ``--calibration`` images, preprocessed
  with the bundle's spec), run the same way: what a user who knows ONNX
  Runtime would ship instead of edgekit's int8 artifact.

All need the *source model* (``--model``) and the build side (TensorFlow);
ONNX also needs ``tf2onnx`` and ``onnxruntime``. A peer that cannot be built
here becomes a skipped row that says what to install; it never fails the
bench. Peers run through the same per-frame path as the artifacts (the
bundle's preprocessing, quantize, invoke, postprocess), so only the engine
differs.

To add a peer, write a ``_build_<name>(model, workdir, backend, threads,
shape, calibration)`` that returns (file, engine opener, runner, via), the
engine having ``input``, ``output``, ``invoke``, ``close``, and register it in
``_BUILDERS``.
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgekit.bench.subjects import Subject
from edgekit.bundle import ArtifactEntry, Bundle
from edgekit.errors import EdgekitError, first_line
from edgekit.runtime.backends import LoadedBackend
from edgekit.runtime.tensors import TensorInfo

ONNX_OPSET = 17


def _missing(*modules: str) -> list[str]:
    def absent(m: str) -> bool:
        if m in sys.modules:  # None there means blocked (a device-side process), not installed-but-unimported
            return sys.modules[m] is None
        return importlib.util.find_spec(m) is None

    return [m for m in modules if absent(m)]


class OnnxEngine:
    """An ONNX model in ONNX Runtime, behind the runtime's engine interface."""

    accelerator = "cpu"

    def __init__(self, path: str | Path, threads: int, input_shape: tuple[int, ...]):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        inp, out = self._session.get_inputs()[0], self._session.get_outputs()[0]
        out_shape = tuple(int(d) if isinstance(d, int) else 1 for d in out.shape)
        self.input = TensorInfo(inp.name, 0, tuple(input_shape), "float32", 0.0, 0)
        self.output = TensorInfo(out.name, 0, out_shape, "float32", 0.0, 0)
        self.version = ort.__version__

    def invoke(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self.input.name: x})[0]

    def close(self) -> None:
        self._session = None


def _build_tflite_default(model: Any, workdir: Path, backend: LoadedBackend, threads: int, shape: tuple[int, ...], calibration: Any):
    from edgekit._tf import quiet_native_logs, tf

    with quiet_native_logs():
        data = tf().lite.TFLiteConverter.from_keras_model(model).convert()
    path = workdir / "peer_tflite_default.tflite"
    path.write_bytes(data)

    def open_engine() -> Any:
        from edgekit.runtime.engines import InterpreterEngine

        return InterpreterEngine(path, backend, threads=threads, accelerator="cpu")

    return path, open_engine, f"{backend.name} {backend.version}", f"CPU, {threads} threads"


def _export_onnx(model: Any, workdir: Path, shape: tuple[int, ...]) -> Path:
    """The source model as float ONNX (exported once per bench; the int8 peer quantizes this file)."""
    missing = _missing("tf2onnx", "onnxruntime")
    if missing:
        raise _NotAvailable(f"not installed: {', '.join(missing)} (pip install tf2onnx onnxruntime)")
    path = workdir / "peer_onnxruntime.onnx"
    if path.is_file():
        return path
    from edgekit._tf import quiet_native_logs, tf

    import tf2onnx

    spec = (tf().TensorSpec(shape, tf().float32, name="input"),)
    with quiet_native_logs():
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=ONNX_OPSET)
    path.write_bytes(proto.SerializeToString())
    return path


def _build_onnxruntime(model: Any, workdir: Path, backend: LoadedBackend, threads: int, shape: tuple[int, ...], calibration: Any):
    path = _export_onnx(model, workdir, shape)
    import onnxruntime

    return path, lambda: OnnxEngine(path, threads, shape), f"onnxruntime {onnxruntime.__version__}", f"ONNX Runtime CPU, {threads} threads"


def _build_onnxruntime_int8(model: Any, workdir: Path, backend: LoadedBackend, threads: int, shape: tuple[int, ...], calibration: Any):
    if calibration is None:
        raise _NotAvailable("needs calibration images: pass --calibration DIR (the images compress calibrated on)")
    source = _export_onnx(model, workdir, shape)
    import onnxruntime
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    name = onnxruntime.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._samples = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._samples, None)
            return None if x is None else {name: np.ascontiguousarray(x[None], dtype=np.float32)}

    # ONNX Runtime's documented first step (shape inference + graph
    # optimisation), so the peer is what its own guide produces.
    # The input shape is static, so ONNX's own shape inference is enough
    # (the symbolic one needs sympy, which ONNX Runtime does not install).
    prepared = workdir / "peer_onnxruntime_prepared.onnx"
    steps = "quant_pre_process + "
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    except Exception:  # noqa: BLE001 - pre-processing is an optimisation; quantize the export as it is
        prepared, steps = source, ""
    path = workdir / "peer_onnxruntime_int8.onnx"
    quantize_static(
        str(prepared), str(path), _Reader(),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
    )
    via = f"ONNX Runtime CPU, {threads} threads, {steps}QDQ int8 ({len(calibration)} calibration images)"
    return path, lambda: OnnxEngine(path, threads, shape), f"onnxruntime {onnxruntime.__version__}", via


class _NotAvailable(Exception):
    """This peer cannot be built here; str(e) says why and what to install."""


# The registry, in display order: name -> builder(model, workdir, backend, threads, input_shape,
# calibration) returning (file, engine opener, what runs it, via).
_BUILDERS: dict[str, Callable[..., Any]] = {
    "tflite-default": _build_tflite_default,
    "onnxruntime": _build_onnxruntime,
    "onnxruntime-int8": _build_onnxruntime_int8,
}
# Calibration images used for the int8 peer (a few hundred is what static calibration needs).
MAX_CALIBRATION = 200
PEERS: tuple[str, ...] = tuple(_BUILDERS)


def _skipped(name: str, reason: str) -> Subject:
    return Subject(
        name=f"peer:{name}", kind="peer", target=None, variant=name, file=None, bytes=None,
        accuracy=None, requested="cpu", open=None, reason=reason,
    )


def peer_subjects(
    model_path: str | os.PathLike[str] | None,
    bundle: Bundle,
    backend: LoadedBackend,
    *,
    threads: int,
    workdir: str | os.PathLike[str],
    calibration: str | os.PathLike[str] | None = None,
) -> list[Subject]:
    """Convert the source model for each peer and return one Subject per peer (skipped ones say why).

    Args:
        model_path: the model the bundle was built from (None: every peer is skipped).
        bundle: its bundle (for preprocessing, labels and the source sha256).
        backend: the interpreter backend the artifacts use.
        threads: the thread count the artifacts use.
        workdir: where the converted peer models are written (a temp dir).
        calibration: images (folder or ``.npz``) for the int8 peer, read with
            the bundle's preprocessing (the first :data:`MAX_CALIBRATION`).

    Raises:
        EdgekitError: the model or the calibration images cannot be loaded (typed errors).
    """
    # TensorFlow first: without it no --model helps (quickstart's device-side bench runs in such a process).
    if _missing("tensorflow", "tf_keras"):
        return [_skipped(n, 'needs the build side (TensorFlow) to convert the source model: pip install "edgekit[compress]"') for n in PEERS]
    if model_path is None:
        return [_skipped(n, "needs the source model: pass --model MODEL (the file the bundle was built from)") for n in PEERS]
    from edgekit.intake import load_model
    from edgekit.runtime.accelerators import Plan
    from edgekit.runtime.pipeline import Predictor

    loaded = load_model(model_path)
    notes = []
    want = (bundle.manifest.source_model or {}).get("sha256")
    if want and want != loaded.sha256:
        notes.append(
            f"{Path(model_path).name} is not the model this bundle was built from (sha256 {loaded.sha256[:12]}… "
            f"vs the manifest's {str(want)[:12]}…); peer numbers describe a different model"
        )
    h, w = bundle.manifest.preprocess.get("input_size", loaded.input_shape[:2])
    shape = (1, int(h), int(w), int(loaded.input_shape[-1]))
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    calib = None
    if calibration is not None:
        from edgekit.data import load_dataset
        from edgekit.preprocess import PreprocessSpec

        calib = load_dataset(calibration, PreprocessSpec.from_dict(bundle.manifest.preprocess), labelled=False).x[:MAX_CALIBRATION]
    subjects = []
    for name in PEERS:
        try:
            path, open_engine, runner, via = _BUILDERS[name](loaded.model, work, backend, threads, shape, calib)
        except _NotAvailable as e:
            subjects.append(_skipped(name, str(e)))
            continue
        except EdgekitError:
            raise
        except Exception as e:  # noqa: BLE001 - a converter failing on this model is a finding, not a crash
            subjects.append(_skipped(name, f"conversion failed: {type(e).__name__}: {first_line(e, limit=200)}"))
            continue
        size = path.stat().st_size
        entry = ArtifactEntry(
            target=f"peer:{name}", file=path.name, sha256="", bytes=size, variant=name,
            input={}, output={}, accelerator=None,
        )

        def open_(open_engine=open_engine, entry=entry, via=via, runner=runner) -> Any:
            engine = open_engine()
            plan = Plan(requested="cpu", entry=entry, accelerator="cpu", via=via, threads=threads)
            try:
                return Predictor(bundle, plan, engine, backend)
            except BaseException:
                engine.close()
                raise

        subjects.append(
            Subject(
                name=f"peer:{name}", kind="peer", target=None, variant=name, file=path.name, bytes=size,
                accuracy=None, requested="cpu", open=open_, backend=runner, notes=list(notes),
            )
        )
    return subjects
