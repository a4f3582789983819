"""From a bundle and a picture to labelled scores: the device-side pipeline.

preprocess (the manifest's :class:`~edgekit.preprocess.PreprocessSpec`, the
same code the build side trained and evaluated with) → quantize with the
artifact's scale/zero point → invoke → dequantize → per-class probabilities
(:func:`edgekit.metrics.class_probabilities`: softmax, or sigmoid for a
single-output binary model, when the model emits logits) → top-k with labels.
Each stage is timed.

A uint8 picture takes the fused path: resize on uint8 pixels, then one
256-entry table per channel (:class:`~edgekit.runtime.tensors.PixelInput`,
made by the float preprocessing and ``quantize`` themselves) written straight
into the interpreter's input tensor, and an 8-bit output dequantized by a
table. It gives the same tensor and scores, bit for bit, as preprocess +
quantize, which is what the build side scored the artifact with.

Example::

    p = Predictor.from_bundle("bundle/", target="auto")
    print(p.predict(cv2.imread("cat.jpg")).topk)
    for result in p.run("video.mp4", max_frames=100):
        print(result.frame.index, result.prediction.topk[0])
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgekit.bundle import Bundle, load_bundle
from edgekit.bundle.contract import bundle_spec, check_artifact
from edgekit.errors import ConfigError, DataError
from edgekit.runtime.accelerators import Plan, device_prefs, open_plan
from edgekit.runtime.backends import LoadedBackend, select_backend
from edgekit.runtime.sources import Frame, Source, open_source
from edgekit.metrics import class_probabilities, output_classes
from edgekit.runtime.tensors import PixelInput, TensorInfo, dequantize, dequantize_bytes, dequantize_table, quantize


@dataclass
class Prediction:
    """Scores for one input: top-k (label, probability), all scores, stage times in ms."""

    topk: list[tuple[str, float]]
    scores: np.ndarray  # probabilities, one per label (a single-output model's p becomes [1 - p, p])
    timings: dict[str, float]  # preprocess, invoke, postprocess

    @property
    def label(self) -> str:
        return self.topk[0][0]

    @property
    def score(self) -> float:
        return self.topk[0][1]


@dataclass
class FrameResult:
    """One frame from a source and what the model said about it."""

    frame: Frame
    prediction: Prediction

    @property
    def timings(self) -> dict[str, float]:
        """capture, preprocess, invoke, postprocess (ms)."""
        return {"capture": self.frame.capture_ms, **self.prediction.timings}

    def to_record(self) -> dict[str, Any]:
        """The JSON Lines record: source, frame, timestamp, top-k, per-stage ms."""
        rec: dict[str, Any] = {
            "source": self.frame.source,
            "frame": self.frame.index,
            "timestamp": round(self.frame.timestamp, 6),
        }
        if self.frame.position_ms is not None:
            rec["position_ms"] = round(self.frame.position_ms, 3)
        rec["topk"] = [{"label": label, "score": round(score, 6)} for label, score in self.prediction.topk]
        rec["ms"] = {k: round(v, 3) for k, v in self.timings.items()}
        return rec


class Predictor:
    """A bundle's artifact, loaded for this device, with its preprocessing and labels.

    Build it with :meth:`from_bundle`. ``plan`` says which artifact runs on
    what and, when it is not what was asked for, why (``plan.fallback``).
    """

    def __init__(self, bundle: Bundle, plan: Plan, engine: Any, backend: LoadedBackend, *, top_k: int = 5):
        self.bundle = bundle
        self.plan = plan
        self.engine = engine
        self.backend = backend
        self.labels = list(bundle.manifest.labels)
        self.spec = bundle_spec(bundle.manifest, bundle.path)
        self.input: TensorInfo = engine.input
        self.output: TensorInfo = engine.output
        self._check_contract()
        if top_k < 1:
            raise ConfigError(f"top-k must be >= 1; received {top_k}.")
        self.top_k = min(top_k, len(self.labels))
        # The per-frame path for uint8 pictures: one table lookup per value
        # straight into the input tensor, bit-identical to preprocess + quantize.
        self._pixels = PixelInput(self.spec, self.input)
        self._dequantize_table = dequantize_table(self.output)
        if hasattr(engine, "input_view"):
            self._input_view, self._run = engine.input_view, engine.run
        else:  # an engine without raw access (a peer): fill a host array and hand it over
            staging = np.empty(self.input.shape, dtype=np.dtype(self.input.dtype))
            self._input_view = lambda: staging[0]
            self._run = lambda: engine.invoke(staging)

    @classmethod
    def from_bundle(
        cls,
        path: str | os.PathLike[str],
        target: str = "auto",
        device: str | None = None,
        threads: int | None = None,
        delegate: str | None = None,
        strict: bool = False,
        *,
        top_k: int = 5,
        backend: str | None = None,
    ) -> "Predictor":
        """Load a bundle and open the artifact the policy picks (see :mod:`~edgekit.runtime.accelerators`).

        Args:
            path: the bundle folder.
            target: "auto", a kind ("cpu", "gpu", "edgetpu") or a target name in the bundle.
            device: a device profile name (``targets/<name>.toml``) for preferences and threads.
            threads: CPU threads; default the profile's, else all cores.
            delegate: path of an external TFLite delegate library to run the artifact with.
            strict: refuse to fall back when the accelerator is not available.
            top_k: how many labels each prediction keeps.
            backend: force an interpreter backend (default: the first that imports).

        Raises:
            BundleError: missing or malformed bundle, or an artifact that does not fit its manifest.
            IntegrityError: the artifact's sha256 does not match.
            TargetError: unknown target/device, missing delegate, or (strict) no accelerator.
        """
        bundle = load_bundle(path)
        loaded = select_backend(backend)
        prefs = device_prefs(device) if device else None
        plan, engine = open_plan(bundle, loaded, target=target, device=prefs, threads=threads, delegate=delegate, strict=strict)
        return cls(bundle, plan, engine, loaded, top_k=top_k)

    def _check_contract(self) -> None:
        # The manifest is the contract; an artifact that disagrees with it would
        # give confident, wrong answers. The same checks run in 'edgekit verify'.
        check_artifact(
            self.spec, self.labels, self.plan.entry,
            input_shape=self.input.shape, input_dtype=self.input.dtype, output_shape=self.output.shape,
        )

    # ---------------------------------------------------------------- stages

    def preprocess(self, image: Any, *, input_order: str = "bgr") -> np.ndarray:
        """An image (uint8 array or file path) or an already preprocessed float array → float32 (H, W, C)."""
        if isinstance(image, (str, os.PathLike)):
            return self.spec.apply(self._read(image), input_order="bgr")
        if isinstance(image, np.ndarray) and image.dtype != np.uint8 and image.dtype.kind != "f":
            raise DataError(
                f"an image array must be uint8 (pixels) or float32 (already preprocessed to {self.spec.shape}); "
                f"received {image.dtype} with shape {image.shape}.",
                hint="Convert it: image.astype(np.uint8) for 0-255 pixels.",
            )
        if isinstance(image, np.ndarray) and image.dtype != np.uint8:
            x = np.asarray(image, dtype=np.float32)
            if x.shape == (1, *self.spec.shape):
                x = x[0]
            if x.shape != self.spec.shape:
                raise DataError(
                    f"a float input must already be preprocessed to shape {self.spec.shape}; received {x.shape}.",
                    hint="Pass the uint8 image instead and let the bundle's preprocessing run.",
                )
            return x
        return self.spec.apply(image, input_order=input_order)

    @staticmethod
    def _read(path: str | os.PathLike[str]) -> np.ndarray:
        from edgekit.preprocess import read_image

        pixels = read_image(path)
        if pixels is None:
            raise DataError(f"cannot read image {path}: missing, not an image, or truncated.")
        return pixels

    def scores(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for one preprocessed (H, W, C) input."""
        raw = self.engine.invoke(quantize(x[None, ...], self.input))
        return self._postprocess(raw)

    def _postprocess(self, raw: np.ndarray) -> np.ndarray:
        # The same rule as the build side's evaluation, so deploy scores what was measured.
        # An 8-bit output is dequantized by a 256-entry table made by dequantize() itself.
        table = self._dequantize_table
        y = dequantize_bytes(raw, table) if table is not None else dequantize(raw, self.output).reshape(-1)
        return class_probabilities(y, self.spec.output)

    def _topk(self, probs: np.ndarray) -> list[tuple[str, float]]:
        order = np.argsort(-probs, kind="stable")[: self.top_k]
        return [(self.labels[i], float(probs[i])) for i in order]

    def _write_pixels(self, image: np.ndarray, input_order: str) -> None:
        prepared = self._pixels.prepare(image, input_order=input_order)  # may raise: before any buffer is touched
        view = self._input_view()
        self._pixels.write(prepared, view)
        del view  # the interpreter refuses to run while a view on its memory is alive

    def predict(self, image: Any, *, input_order: str = "bgr") -> Prediction:
        """Classify one image: a uint8 array (BGR as OpenCV reads it, or ``input_order="rgb"``),
        an image file path, or a float array already preprocessed to the spec's shape.

        Raises:
            DataError: the image is not a supported uint8 image or cannot be read.
        """
        t0 = time.perf_counter()
        if isinstance(image, np.ndarray) and image.dtype != np.uint8:
            q = quantize(self.preprocess(image)[None, ...], self.input)  # already preprocessed floats
            t1 = time.perf_counter()
            raw = self.engine.invoke(q)
        else:
            if isinstance(image, (str, os.PathLike)):
                image, input_order = self._read(image), "bgr"
            self._write_pixels(image, input_order)
            t1 = time.perf_counter()
            raw = self._run()
        t2 = time.perf_counter()
        probs = self._postprocess(raw)
        topk = self._topk(probs)
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) * 1e3, "invoke": (t2 - t1) * 1e3, "postprocess": (t3 - t2) * 1e3}
        return Prediction(topk, probs, timings)

    def run(self, source: Source | str | int | os.PathLike[str], max_frames: int | None = None) -> Iterator[FrameResult]:
        """Classify every frame of a source (see :func:`~edgekit.runtime.sources.open_source`).

        Frames that cannot be preprocessed are skipped and counted on the
        source. The source is closed when the iterator ends or is closed.
        """
        src = source if isinstance(source, Source) else open_source(source)
        done = 0
        try:
            for frame in src.frames():
                if max_frames is not None and done >= max_frames:
                    break
                try:
                    prediction = self.predict(frame.image)
                except DataError:
                    src.count_skipped(f"{frame.source} frame {frame.index}")
                    continue
                done += 1
                yield FrameResult(frame, prediction)
                if max_frames is not None and done >= max_frames:
                    break
        finally:
            src.close()

    def close(self) -> None:
        self.engine.close()

    def describe(self) -> dict[str, Any]:
        """What is running: bundle, artifact, accelerator, backend, threads, I/O."""
        return {
            "bundle": str(Path(self.bundle.path)),
            **self.plan.to_dict(),
            "backend": f"{self.backend.name} {self.backend.version}",
            "input": self.input.to_dict(),
            "output": self.output.to_dict(),
            "labels": len(self.labels),
        }
