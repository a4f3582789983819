"""edgekit's int8 artifact against ONNX Runtime fp32 and static int8 (and plain tf.lite) on MobileNetV2-1.0-224.

Issue 13, item 4. One ``run_bench(compare=True)`` run: the repeats go round
robin over the bundle's artifacts and the three peers, so the ratios come
from the same minutes on the same machine. ONNX Runtime's int8 model is
``quantize_static`` (QDQ, per-channel, int8 activations and weights, after
``quant_pre_process``) calibrated on the very images edgekit's int8 artifact
was calibrated on (32 crops of scikit-image's photographs, written as PNG).
Timings are never pass/fail.

    PYTHONPATH=$PWD python benchmarks/peers_int8.py --out /tmp/perf --threads 2 --repeats 7
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def calibration_folder(out: Path) -> Path:
    """The 32 photographs the MobileNetV2 int8 artifact was calibrated on, as lossless PNG files."""
    import cv2
    from bench_models import photos

    folder = out / "calibration_photos"
    folder.mkdir(parents=True, exist_ok=True)
    for i, rgb in enumerate(photos((224, 224), n=32)):
        cv2.imwrite(str(folder / f"photo_{i:02d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return folder


def main(argv: list[str] | None = None) -> int:
    from per_frame import build_mobilenet

    from edgekit.bench.measure import BenchConfig
    from edgekit.bench.run import run_bench

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".benchmarks/per_frame"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    bundle = build_mobilenet(args.out)
    calib = calibration_folder(args.out)
    config = BenchConfig(runs=args.runs, min_seconds=1.0, repeats=args.repeats, threads=args.threads)
    result = run_bench(bundle, config=config, compare=True, model=args.out / "mobilenet_v2_1.0_224.h5", calibration=calib,
                       progress=lambda label, done, total: print(f"  {done}/{total} {label}", file=sys.stderr, flush=True))
    rows = {r["name"]: r for r in result["results"]}
    int8 = rows["cpu:int8"]["latency_ms"]["p50"]
    summary = {
        "cpu": result["environment"].get("cpu_model"),
        "threads": args.threads,
        "repeats": args.repeats,
        "load_average_before": result["environment"].get("load_average"),
        "p50_ms": {n: (r["latency_ms"]["p50"] if r["status"] == "ok" else f"skipped: {r['reason']}") for n, r in rows.items()},
        "p50_spread": {n: r["spread"]["p50"] for n, r in rows.items() if r["status"] == "ok"},
        "invoke_p50_ms": {n: r["stages_ms"]["invoke"]["p50"] for n, r in rows.items() if r["status"] == "ok"},
        "peer_p50_over_edgekit_int8": {
            n: round(r["latency_ms"]["p50"] / int8, 3) for n, r in rows.items() if r["kind"] == "peer" and r["status"] == "ok"
        },
        "recommended": result["comparison"]["recommended"],
        "notes": result["comparison"]["notes"],
    }
    (args.out / "peers_int8.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
