"""The benchmark figures, all taken in one run on this machine.

1. MobileNetV2-1.0-224 (``weights=None``: the real architecture, random
   weights; calibrated on scikit-image's photographs): fp32 vs full-int8 p50,
   and edgekit int8 against the peers (ONNX Runtime fp32 via tf2onnx, plain
   ``tf.lite`` default conversion) on the same model.
2. edgekit's per-frame path (``Predictor.predict``: preprocess, quantize,
   invoke, dequantize, top-k) against a bare ``Interpreter.invoke()`` loop on
   the same int8 artifact, in interleaved blocks so drift hits both alike.
3. The seeds' 150x150 binary CNN (Conv 32/64/128/128 each with 2x2
   max-pooling, Flatten, Dense 512, Dense 1 sigmoid): fp32 vs int8 latency and
   size.

Run::

    python benchmarks/figures.py --out out/figures

It writes ``figures.json``, ``figures.md`` and each bench's JSON/HTML there.
Timings are what this machine measured while it ran; the load average is
recorded next to them (other work on the machine shows up as spread).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_models import binary_cnn, convert, mobilenet_v2_bundle, photos, write_bundle  # noqa: E402


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _row(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in result["results"] if r["name"] == name)


def _bench(bundle: Path, out: Path, tag: str, config: Any, **kwargs: Any) -> dict[str, Any]:
    from edgekit.bench import run_bench, save_result
    from edgekit.bench.report import write_html

    result = run_bench(bundle, config=config, progress=lambda label, done, total: _log(f"  {tag}: {label} [{done}/{total}]"), **kwargs)
    save_result(result, out / f"{tag}.json")
    write_html(result, out / f"{tag}.html")
    return result


def mobilenet(out: Path, config: Any) -> dict[str, Any]:
    _log("MobileNetV2-1.0-224: building (weights=None) and converting fp32 + int8")
    t0 = time.perf_counter()
    bundle, h5 = mobilenet_v2_bundle(out)
    _log(f"  bundle ready in {time.perf_counter() - t0:.0f} s")
    result = _bench(bundle, out, "mobilenet_v2", config, compare=True, model=h5)
    f32, i8 = _row(result, "cpu:fp32"), _row(result, "cpu:int8")
    fig: dict[str, Any] = {
        "fp32_p50_ms": f32["latency_ms"]["p50"],
        "int8_p50_ms": i8["latency_ms"]["p50"],
        "fp32_p90_ms": f32["latency_ms"]["p90"],
        "int8_p90_ms": i8["latency_ms"]["p90"],
        "fp32_over_int8_p50": round(f32["latency_ms"]["p50"] / i8["latency_ms"]["p50"], 3),
        "fp32_bytes": f32["bytes"],
        "int8_bytes": i8["bytes"],
        "spread_p50": {"fp32": f32["spread"]["p50"], "int8": i8["spread"]["p50"]},
    }
    for peer in ("peer:onnxruntime", "peer:tflite-default"):
        r = _row(result, peer)
        key = peer.split(":")[1].replace("-", "_")
        if r["status"] == "ok":
            fig[f"{key}_fp32_p50_ms"] = r["latency_ms"]["p50"]
            fig[f"{key}_over_edgekit_int8_p50"] = round(r["latency_ms"]["p50"] / i8["latency_ms"]["p50"], 3)
            fig[f"{key}_backend"] = r["backend"]
        else:
            fig[f"{key}"] = f"not measured: {r['reason']}"
    return fig


def overhead(bundle: Path, threads: int | None, blocks: int = 12, per_block: int = 25) -> dict[str, Any]:
    """edgekit per-frame path vs a bare Interpreter.invoke() loop on the same int8 artifact."""
    from edgekit.bench.measure import synthetic_frame
    from edgekit.bench.subjects import artifact_subjects
    from edgekit.bundle import load_bundle
    from edgekit.runtime.backends import select_backend
    from edgekit.runtime.tensors import quantize

    b = load_bundle(bundle)
    backend = select_backend()
    subject = next(s for s in artifact_subjects(b, backend, threads=threads) if s.variant == "int8")
    predictor = subject.open()
    threads = predictor.plan.threads
    interp = backend.Interpreter(model_path=str(b.path / subject.file), num_threads=threads)
    interp.allocate_tensors()
    frame = synthetic_frame(predictor.spec, None)
    x = predictor.preprocess(frame)
    q = quantize(x[None, ...], predictor.input)
    index = interp.get_input_details()[0]["index"]
    interp.set_tensor(index, q)
    perf = time.perf_counter
    for _ in range(10):  # warm both
        interp.invoke()
        predictor.predict(frame)
    bare, full, invoke_stage, no_pre = [], [], [], []
    for _ in range(blocks):
        for _ in range(per_block):
            t0 = perf()
            interp.invoke()
            bare.append((perf() - t0) * 1e3)
        for _ in range(per_block):
            t0 = perf()
            p = predictor.predict(frame)
            full.append((perf() - t0) * 1e3)
            invoke_stage.append(p.timings["invoke"])
        for _ in range(per_block):
            t0 = perf()
            predictor.scores(x)
            no_pre.append((perf() - t0) * 1e3)
    predictor.close()
    med = lambda a: float(np.median(a))  # noqa: E731
    return {
        "artifact": subject.file,
        "threads": threads,
        "samples_each": len(bare),
        "bare_invoke_p50_ms": round(med(bare), 4),
        "edgekit_invoke_stage_p50_ms": round(med(invoke_stage), 4),
        "edgekit_scores_p50_ms": round(med(no_pre), 4),
        "edgekit_predict_p50_ms": round(med(full), 4),
        "overhead_predict_pct": round((med(full) / med(bare) - 1) * 100, 2),
        "overhead_without_preprocess_pct": round((med(no_pre) / med(bare) - 1) * 100, 2),
    }


def binary(out: Path, config: Any) -> dict[str, Any]:
    from edgekit._tf import tf_keras
    from edgekit.preprocess import PreprocessSpec

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    _log("150x150 binary CNN: building")
    model = binary_cnn(keras)
    spec = PreprocessSpec.from_preset("unit", (150, 150), channels=3, output="probabilities")
    calib = spec.apply_batch(photos((150, 150), n=32, seed=1), input_order="rgb")
    fp32 = convert(model, "fp32")
    int8 = convert(model, "int8", lambda: ([s[None]] for s in calib))
    bundle = write_bundle(
        out / "binary_cnn_bundle",
        [("cpu", "fp32", fp32, None, None), ("cpu", "int8", int8, None, None)],
        spec=spec, labels=["negative", "positive"], source_model={"name": "binary_cnn_150", "sha256": "", "format": "tf_keras"},
    )
    result = _bench(bundle, out, "binary_cnn", config)
    f32, i8 = _row(result, "cpu:fp32"), _row(result, "cpu:int8")
    return {
        "params": int(model.count_params()),
        "fp32_p50_ms": f32["latency_ms"]["p50"],
        "fp32_p90_ms": f32["latency_ms"]["p90"],
        "int8_p50_ms": i8["latency_ms"]["p50"],
        "int8_p90_ms": i8["latency_ms"]["p90"],
        "fp32_over_int8_p50": round(f32["latency_ms"]["p50"] / i8["latency_ms"]["p50"], 3),
        "fp32_bytes": f32["bytes"],
        "int8_bytes": i8["bytes"],
        "size_ratio": round(f32["bytes"] / i8["bytes"], 3),
        "spread_p50": {"fp32": f32["spread"]["p50"], "int8": i8["spread"]["p50"]},
    }


def _markdown(figs: dict[str, Any]) -> str:
    m, o, b, env = figs["mobilenet_v2"], figs["overhead"], figs["binary_cnn"], figs["environment"]
    onnx = (
        f"ONNX Runtime fp32 p50 {m['onnxruntime_fp32_p50_ms']:.2f} ms = {m['onnxruntime_over_edgekit_int8_p50']:.2f}× edgekit int8"
        if "onnxruntime_fp32_p50_ms" in m else m.get("onnxruntime", "not measured")
    )
    return "\n".join(
        [
            f"# edgekit benchmark figures ({figs['created']})",
            "",
            f"Machine: {env['cpu_model']}, {env['cpu_cores_usable']} usable cores, load average before/after "
            f"{env['load_average']} / {figs['load_after']}, {env['os']}, Python {env['python']}, "
            f"{env['backend']} {env['backend_version']}. Settings: {figs['config']}.",
            "",
            "| figure | measured |",
            "| --- | --- |",
            f"| MobileNetV2-1.0-224 fp32 / int8 p50 ({figs['config']['threads']} thread(s)) | {m['fp32_p50_ms']:.2f} ms / {m['int8_p50_ms']:.2f} ms = "
            f"**{m['fp32_over_int8_p50']:.2f}×** (p50 spread over repeats {m['spread_p50']['fp32']:.0%} / {m['spread_p50']['int8']:.0%}) |",
            *(
                [f"| same at {t['threads']} threads | {t['fp32_p50_ms']:.2f} ms / {t['int8_p50_ms']:.2f} ms = {t['fp32_over_int8_p50']:.2f}× "
                 f"(p50 spread over repeats {t['spread_p50']['fp32']:.0%} / {t['spread_p50']['int8']:.0%}) |"]
                if (t := figs.get("mobilenet_v2_more_threads")) else []
            ),
            f"| MobileNetV2 int8 vs ONNX Runtime fp32 | {onnx} |",
            f"| MobileNetV2 plain tf.lite default (fp32) p50 | {m.get('tflite_default_fp32_p50_ms', '-')} ms |",
            f"| per-frame path vs bare invoke (MobileNetV2 int8) | bare {o['bare_invoke_p50_ms']:.3f} ms, edgekit predict {o['edgekit_predict_p50_ms']:.3f} ms: "
            f"**{o['overhead_predict_pct']:+.1f}%** ({o['overhead_without_preprocess_pct']:+.1f}% without preprocessing) |",
            f"| 150×150 binary CNN fp32 / int8 p50 | {b['fp32_p50_ms']:.2f} ms / {b['int8_p50_ms']:.2f} ms = **{b['fp32_over_int8_p50']:.2f}×** |",
            f"| 150×150 binary CNN size fp32 / int8 | {b['fp32_bytes'] / 2**20:.2f} MiB / {b['int8_bytes'] / 2**20:.2f} MiB = {b['size_ratio']:.2f}× |",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/figures"))
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    # One thread by default: this machine's 2 cores are shared, and a second
    # interpreter thread mostly measures waiting for the other engineers' work.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--also-threads", type=int, default=2, help="MobileNetV2 fp32/int8 again at this many threads (0: skip)")
    args = parser.parse_args(argv)

    from edgekit.bench import BenchConfig, capture_environment
    from edgekit.runtime.backends import select_backend

    args.out.mkdir(parents=True, exist_ok=True)
    config = BenchConfig(runs=args.runs, min_seconds=args.min_seconds, repeats=args.repeats, threads=args.threads)
    env = capture_environment(select_backend())
    _log(f"{env['cpu_model']} · {env['cpu_cores_usable']} cores · load {env['load_average']}")
    started = time.perf_counter()
    figs: dict[str, Any] = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "environment": env,
        "config": {k: v for k, v in config.to_dict().items() if k in ("runs", "min_seconds", "repeats", "threads")},
    }
    figs["mobilenet_v2"] = mobilenet(args.out, config)
    if args.also_threads:
        import dataclasses

        more = dataclasses.replace(config, threads=args.also_threads)
        r = _bench(mobilenet_v2_bundle(args.out)[0], args.out, f"mobilenet_v2_{args.also_threads}threads", more)
        f32, i8 = _row(r, "cpu:fp32"), _row(r, "cpu:int8")
        figs["mobilenet_v2_more_threads"] = {
            "threads": args.also_threads,
            "fp32_p50_ms": f32["latency_ms"]["p50"],
            "int8_p50_ms": i8["latency_ms"]["p50"],
            "fp32_over_int8_p50": round(f32["latency_ms"]["p50"] / i8["latency_ms"]["p50"], 3),
            "spread_p50": {"fp32": f32["spread"]["p50"], "int8": i8["spread"]["p50"]},
        }
    _log("per-frame overhead on the MobileNetV2 int8 artifact")
    figs["overhead"] = overhead(mobilenet_v2_bundle(args.out)[0], args.threads)
    figs["binary_cnn"] = binary(args.out, config)
    figs["load_after"] = capture_environment()["load_average"]
    figs["seconds"] = round(time.perf_counter() - started, 1)
    (args.out / "figures.json").write_text(json.dumps(figs, indent=2) + "\n")
    md = _markdown(figs)
    (args.out / "figures.md").write_text(md)
    print(md)
    _log(f"done in {figs['seconds']} s; results in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
