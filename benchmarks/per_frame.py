"""Per-frame cost of ``Predictor.predict`` against a bare invoke and the path a user would write.

Issue 13, item 1. On one int8 artifact (MobileNetV2-1.0-224 by default,
random weights: the real architecture), in one process, interleaved rounds:

- ``bare``: ``Interpreter.invoke()`` alone, input already set (the floor);
- ``predict``: :meth:`edgekit.runtime.pipeline.Predictor.predict` on a uint8
  BGR frame (the fused uint8 path: resize, one table lookup into the input
  tensor, invoke, table dequantization, top-5);
- ``float_path``: what ``predict`` did before the fused path (``spec.apply``
  float preprocessing, ``quantize``, ``set_tensor``, invoke, dequantize, top-5),
  through the same Predictor;
- ``user``: the plain path a user writes: ``cv2.resize`` + ``cv2.cvtColor`` +
  numpy normalisation + quantize + a plain ``Interpreter`` (``set_tensor``,
  ``invoke``, ``get_tensor``) + dequantize + ``argsort`` top-5.

Each round runs every path ``--per-round`` times in turn; the figures are the
medians of all samples and the ratio of medians. Timings are never pass/fail.

    PYTHONPATH=$PWD python benchmarks/per_frame.py --out /tmp/perf --threads 2
    PYTHONPATH=$PWD python benchmarks/per_frame.py --bundle bundle/ --variant int8
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def build_mobilenet(out: Path) -> Path:
    """MobileNetV2-1.0-224 (weights=None) as a bundle with a cpu fp32 and a full-int8 artifact."""
    from bench_models import mobilenet_v2_bundle

    return mobilenet_v2_bundle(out)[0]


def user_path(model_path: Path, spec: Any, threads: int, backend: Any) -> Callable[[np.ndarray], Any]:
    """The plain OpenCV + numpy + Interpreter loop a user would write for this artifact."""
    import cv2

    interp = backend.Interpreter(model_path=str(model_path), num_threads=threads)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    h, w = spec.input_size
    mean = np.asarray(spec.mean, np.float32)
    std = np.asarray(spec.std, np.float32)
    info = np.iinfo(inp["dtype"])

    def step(frame: np.ndarray) -> Any:
        img = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        x = (img.astype(np.float32) * spec.scale - mean) / std
        q = np.clip(np.round(x / in_scale + in_zero), info.min, info.max).astype(inp["dtype"])
        interp.set_tensor(inp["index"], q[None])
        t0 = time.perf_counter()
        interp.invoke()
        invoke_ms = (time.perf_counter() - t0) * 1e3
        y = (interp.get_tensor(out["index"]).astype(np.float32) - out_zero) * out_scale
        np.argsort(y[0])[::-1][:5]
        return invoke_ms

    return step


def user_preprocess(spec: Any, info: Any) -> Callable[[np.ndarray], np.ndarray]:
    """Only the user path's preprocessing and quantization (for the stage-by-stage figures)."""
    import cv2

    h, w = spec.input_size
    mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
    limits = np.iinfo(info.dtype)

    def step(frame: np.ndarray) -> np.ndarray:
        img = cv2.cvtColor(cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        x = (img.astype(np.float32) * spec.scale - mean) / std
        return np.clip(np.round(x / info.scale + info.zero_point), limits.min, limits.max).astype(info.dtype)

    return step


def float_path(predictor: Any) -> Callable[[np.ndarray], Any]:
    """Predictor's per-frame path before the fused uint8 input (float preprocessing + quantize + set_tensor)."""
    from edgekit.runtime.tensors import quantize

    def step(frame: np.ndarray) -> Any:
        x = predictor.spec.apply(frame, input_order="bgr")
        q = quantize(x[None, ...], predictor.input)
        t0 = time.perf_counter()
        raw = predictor.engine.invoke(q)
        invoke_ms = (time.perf_counter() - t0) * 1e3
        predictor._topk(predictor._postprocess(raw))
        return invoke_ms

    return step


def measure(bundle: Path, variant: str, threads: int, frame_hw: tuple[int, int], rounds: int, per_round: int) -> dict[str, Any]:
    from edgekit.bench.subjects import artifact_subjects
    from edgekit.bundle import load_bundle
    from edgekit.runtime.backends import select_backend
    from edgekit.runtime.tensors import quantize

    b = load_bundle(bundle)
    backend = select_backend()
    subject = next(s for s in artifact_subjects(b, backend, threads=threads) if s.variant == variant)
    predictor = subject.open()
    spec = predictor.spec
    frame = np.random.default_rng(0).integers(0, 256, (*frame_hw, 3), dtype=np.uint8)

    bare_interp = backend.Interpreter(model_path=str(b.path / subject.file), num_threads=threads)
    bare_interp.allocate_tensors()
    bare_interp.set_tensor(predictor.input.index, quantize(spec.apply(frame)[None], predictor.input))

    # The fused path must give exactly what the float path gives: check before timing.
    fused = predictor.predict(frame)
    reference = predictor._postprocess(predictor.engine.invoke(quantize(spec.apply(frame)[None], predictor.input)))
    identical = bool(np.array_equal(fused.scores, reference))

    steps: dict[str, Callable[[], Any]] = {
        "bare": bare_interp.invoke,
        "predict": lambda: predictor.predict(frame).timings["invoke"],
        "float_path": lambda f=float_path(predictor): f(frame),
        "user": lambda f=user_path(b.path / subject.file, spec, threads, backend): f(frame),
    }
    prepare = predictor._pixels.prepare
    write = predictor._pixels.write
    staging = np.empty(spec.shape, np.dtype(predictor.input.dtype))
    raw = predictor._run()
    parts: dict[str, Callable[[], Any]] = {
        "preprocess_fused": lambda: write(prepare(frame), staging),
        "preprocess_float": lambda: quantize(spec.apply(frame)[None], predictor.input),
        "preprocess_user": lambda f=user_preprocess(spec, predictor.input): f(frame),
        "postprocess_edgekit": lambda: predictor._topk(predictor._postprocess(raw)),
    }
    samples: dict[str, list[float]] = {k: [] for k in [*steps, *parts]}
    # Wall time minus the path's own invoke, per call: the per-frame overhead,
    # which a loaded machine's noise in the invoke itself does not swamp.
    outside: dict[str, list[float]] = {k: [] for k in ("predict", "float_path", "user")}
    perf = time.perf_counter
    for fn in [*steps.values(), *parts.values()]:  # warm every path
        for _ in range(5):
            fn()
    for _ in range(rounds):
        for name, fn in [*steps.items(), *parts.items()]:
            for _ in range(per_round):
                t0 = perf()
                invoke_ms = fn()
                wall = (perf() - t0) * 1e3
                samples[name].append(wall)
                if name in outside:
                    outside[name].append(wall - invoke_ms)
    predictor.close()
    med = {k: float(np.median(v)) for k, v in samples.items()}
    over = {k: float(np.median(v)) for k, v in outside.items()}
    return {
        "artifact": subject.file,
        "threads": threads,
        "frame": f"{frame_hw[1]}x{frame_hw[0]} uint8 BGR",
        "rounds": rounds,
        "samples_each": rounds * per_round,
        "fused_equals_float_path": identical,
        "p50_ms": {k: round(v, 4) for k, v in med.items()},
        "outside_invoke_p50_ms": {k: round(v, 4) for k, v in over.items()},
        "predict_overhead_vs_bare_pct": round(over["predict"] / med["bare"] * 100, 2),
        "user_over_predict_at_bare_invoke": round((med["bare"] + over["user"]) / (med["bare"] + over["predict"]), 3),
        "predict_over_bare_pct": round((med["predict"] / med["bare"] - 1) * 100, 2),
        "float_path_over_bare_pct": round((med["float_path"] / med["bare"] - 1) * 100, 2),
        "user_over_predict": round(med["user"] / med["predict"], 3),
        "float_path_over_predict": round(med["float_path"] / med["predict"], 3),
        "preprocess_float_over_fused": round(med["preprocess_float"] / med["preprocess_fused"], 2),
        # Stages timed alone (no invoke between calls): what the path costs
        # without the interpreter's worker threads competing for the cores.
        "isolated_overhead_pct_of_bare": round((med["preprocess_fused"] + med["postprocess_edgekit"]) / med["bare"] * 100, 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".benchmarks/per_frame"), help="where the built bundle and results go")
    parser.add_argument("--bundle", type=Path, default=None, help="measure this bundle instead of building MobileNetV2")
    parser.add_argument("--variant", default="int8")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--per-round", type=int, default=10)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = args.bundle or build_mobilenet(args.out)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), platform.processor()) \
        if Path("/proc/cpuinfo").is_file() else platform.processor()
    result: dict[str, Any] = {"cpu": cpu, "runs": []}
    for hw in ((224, 224), (480, 640)):
        r = measure(bundle, args.variant, args.threads, hw, args.rounds, args.per_round)
        result["runs"].append(r)
        print(json.dumps(r, indent=1), flush=True)
    (args.out / "per_frame.json").write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
