"""Measure the compression figures of issue 3 (a script, not a test; run it explicitly).

    python benchmarks/compress_figures.py                 # everything, ~3-5 min on 2 cores
    python benchmarks/compress_figures.py --skip-mobilenet --json figures.json

Figures:
1. The bundled digits example: float vs QAT int8 top-1 (default recipe).          target: within 1.0 point
2. --sparsity 0.8 + int8: gzipped int8 .tflite vs gzipped float .tflite, and the
   top-1 drop (default recipe + --sparsity 0.8, and the aggressive-size recipe).   target: >= 8x, <= 1.5 points
3. --structured 0.5 on MobileNetV2 (weights=None): MACs reduction, and int8 CPU
   latency against the unpruned int8 in the same run (interleaved runs, median).   target: >= 1.5x faster
4. Wall time of `edgekit compress` on the example with the default recipe (a real
   CLI subprocess, TensorFlow import included).

Every accuracy is measured on the held-out split through the TFLite interpreter.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _gz(b: bytes) -> int:
    return len(gzip.compress(b, compresslevel=9, mtime=0))


def _row(result, kind: str) -> dict:
    return next(r for r in result.variants if r["kind"] == kind and (kind != "tflite" or r["target"] == "cpu"))


def train_example(work: Path) -> Path:
    from edgekit.example import train_example as train

    t = time.perf_counter()
    r = train(work / "digits_cnn.keras")
    print(f"trained the example: held-out {r.holdout_accuracy:.2%} in {time.perf_counter() - t:.1f} s")
    return r.model_path


def cli_wall_time(model: Path, work: Path) -> dict:
    exe = Path(sys.executable).with_name("edgekit")
    cmd = [str(exe), "compress", str(model), "--data", str(_digits()), "--out", str(work / "bundle_cli"), "--json"]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode not in (0, 1):
        raise SystemExit(f"edgekit compress failed ({proc.returncode}): {proc.stderr[-2000:]}")
    payload = json.loads(proc.stdout)
    return {"command": " ".join(cmd[1:]), "wall_s": round(wall, 1), "exit_code": proc.returncode, "timings": payload["timings"],
            "cores": os.cpu_count()}  # fmt: skip


def _digits() -> Path:
    from edgekit.resources import digits_dir

    return digits_dir()


def qat_figure(model: Path, work: Path) -> dict:
    from edgekit.compress import compress

    res = compress(model, _digits(), work / "bundle_default", progress=False)
    flt, tfl = res.variants[0], _row(res, "tflite")
    return {
        "recipe": "default",
        "float_top1": flt["top1"],
        "qat_int8_top1": tfl["top1"],
        "drop_points": round((flt["top1"] - tfl["top1"]) * 100, 2),
        "n_held_out": flt["n"],
        "seconds_in_process": res.timings["total"],
    }


def sparsity_figure(model: Path, work: Path, recipe: str | None, overrides: dict) -> dict:
    from edgekit.compile.convert import convert_model
    from edgekit.compress import compress
    from edgekit.intake import load_model
    from edgekit.profiles import get_target

    name = recipe or "default"
    res = compress(model, _digits(), work / f"bundle_sparse_{name}", recipe=recipe, overrides=overrides, progress=False)
    fp32 = dataclasses.replace(get_target("cpu"), name="fp32", quantization="fp32", io_dtype="float32")
    float_tflite = convert_model(load_model(model).model, fp32).content
    tfl = _row(res, "tflite")
    flt = res.variants[0]
    return {
        "recipe": name,
        "overrides": overrides,
        "achieved_sparsity": res.reports["pruning"]["achieved"],
        "float_tflite_bytes": len(float_tflite),
        "float_tflite_gzip": _gz(float_tflite),
        "int8_tflite_bytes": tfl["bytes"],
        "int8_tflite_gzip": tfl["gzip_bytes"],
        "gzip_ratio": round(_gz(float_tflite) / tfl["gzip_bytes"], 2),
        "float_top1": flt["top1"],
        "int8_top1": tfl["top1"],
        "drop_points": round((flt["top1"] - tfl["top1"]) * 100, 2),
        "float_layers": res.reports["budget"]["chosen"]["float_layers"] if res.reports["budget"] else [],
    }


def _photos(size: int, n: int) -> np.ndarray:
    import cv2
    import skimage.data as sd

    images = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "cat"):
        try:
            img = getattr(sd, name)()
        except Exception:  # noqa: BLE001 - some samples need a download
            continue
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        images.append(img[..., :3])
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):  # random crops of real photographs, MobileNet-style [-1, 1]
        img = images[i % len(images)]
        h, w = img.shape[:2]
        s = int(min(h, w) * rng.uniform(0.5, 1.0))
        y, x = rng.integers(0, h - s + 1), rng.integers(0, w - s + 1)
        crop = cv2.resize(img[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_AREA)
        out.append(crop.astype(np.float32) / 127.5 - 1.0)
    return np.stack(out)


def _latency_ms(content_a: bytes, content_b: bytes, x: np.ndarray, threads: int, runs: int) -> tuple[float, float]:
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.runtime.tensors import TensorInfo, quantize

    interps = []
    for c in (content_a, content_b):
        it = Interpreter(model_content=c, num_threads=threads)
        it.allocate_tensors()
        info = TensorInfo.from_detail(it.get_input_details()[0])
        it.set_tensor(info.index, quantize(x[:1], info))
        for _ in range(10):  # warm-up
            it.invoke()
        interps.append(it)
    times: list[list[float]] = [[], []]
    for _ in range(runs):  # interleaved, so load from other processes hits both alike
        for k, it in enumerate(interps):
            t = time.perf_counter()
            it.invoke()
            times[k].append((time.perf_counter() - t) * 1e3)
    return statistics.median(times[0]), statistics.median(times[1])


def structured_figure(alpha: float, size: int, threads: int, runs: int) -> dict:
    from edgekit._tf import tf_keras
    from edgekit.compile.convert import convert_model
    from edgekit.compress import prune_channels
    from edgekit.profiles import get_target

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(alpha=alpha, weights=None, input_shape=(size, size, 3), classes=1000)
    t = time.perf_counter()
    small, report, _ = prune_channels(model, 0.5)
    prune_s = time.perf_counter() - t
    rep = _photos(size, 32)
    cpu = get_target("cpu")
    full = convert_model(model, cpu, rep).content
    pruned = convert_model(small, cpu, rep).content
    ms_full, ms_pruned = _latency_ms(full, pruned, rep, threads, runs)
    return {
        "model": f"MobileNetV2 alpha={alpha} {size}x{size} (weights=None)",
        "params": [report.params_before, report.params_after],
        "macs": [report.macs_before, report.macs_after],
        "macs_reduction": round(report.macs_reduction, 2),
        "int8_bytes": [len(full), len(pruned)],
        "int8_latency_ms": [round(ms_full, 3), round(ms_pruned, 3)],
        "speedup": round(ms_full / ms_pruned, 2),
        "threads": threads,
        "runs": runs,
        "surgery_s": round(prune_s, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, help="keep models and bundles here (default: a temp dir)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--skip-mobilenet", action="store_true", help="leave out figure 3")
    ap.add_argument("--only-mobilenet", action="store_true", help="figure 3 only")
    ap.add_argument("--alpha", type=float, default=1.0, help="MobileNetV2 width for figure 3 (0.35-1.0)")
    ap.add_argument("--size", type=int, default=224, help="MobileNetV2 input size for figure 3 (96-224)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory(prefix="edgekit-figures-")
    work = args.work or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    figures: dict = {"machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}}
    if args.only_mobilenet:
        _mobilenet(figures, args)
        _finish(figures, args)
        return
    model = train_example(work)

    figures["wall_time_default_recipe"] = cli_wall_time(model, work)
    print(f"[4] edgekit compress (default recipe) wall time: {figures['wall_time_default_recipe']['wall_s']} s")
    figures["qat_int8"] = f = qat_figure(model, work)
    print(f"[1] float {f['float_top1']:.2%} vs QAT int8 {f['qat_int8_top1']:.2%}: {f['drop_points']:+.2f} points (n={f['n_held_out']})")
    figures["sparsity_0.8"] = []
    for recipe, over in ((None, {"sparsity": 0.8}), ("aggressive-size", {})):
        f = sparsity_figure(model, work, recipe, over)
        figures["sparsity_0.8"].append(f)
        print(
            f"[2] {f['recipe']} {over or ''}: int8 gzip {f['int8_tflite_gzip']:,} B vs float .tflite gzip {f['float_tflite_gzip']:,} B "
            f"= {f['gzip_ratio']}x smaller; top-1 {f['float_top1']:.2%} -> {f['int8_top1']:.2%} ({f['drop_points']:+.2f} points)"
        )
    if not args.skip_mobilenet:
        _mobilenet(figures, args)
    _finish(figures, args)


def _mobilenet(figures: dict, args: argparse.Namespace) -> None:
    figures["structured_0.5"] = f = structured_figure(args.alpha, args.size, args.threads, args.runs)
    print(
        f"[3] {f['model']}: MACs {f['macs'][0]:,} -> {f['macs'][1]:,} ({f['macs_reduction']}x fewer); int8 CPU latency "
        f"{f['int8_latency_ms'][0]} ms -> {f['int8_latency_ms'][1]} ms ({f['speedup']}x faster, {f['threads']} thread(s), "
        f"median of {f['runs']})"
    )


def _finish(figures: dict, args: argparse.Namespace) -> None:
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
