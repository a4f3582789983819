"""Does LiteRT's XNNPACK use its sparse kernels for an 80 %-pruned fp32 MobileNetV2?

XNNPACK runs a sparse (NCHW, SpMM) path for fp32 subgraphs that start with a
3x3 stride-2 conv padded 1 on each side with 3 input channels, hold only 1x1
convs (>= 2/3 of their weights zero, stored in TFLite's sparse encoding, i.e.
``DENSIFY`` ops from ``tf.lite.Optimize.EXPERIMENTAL_SPARSITY``), 3x3/5x5
depthwise convs padded symmetrically, ADD/MUL and unary activations, and end
in a spatial MEAN (tensorflow/lite/delegates/xnnpack/README.md, "Sparse
Inference"). This script measures, in one run with interleaved rounds:

* ``keras``: ``keras.applications.MobileNetV2`` (weights=None, 224 px), whose
  stride-2 layers pad asymmetrically (TF "same" / ``correct_pad``: 0 before, 1 after);
* ``sym``: the same architecture with every stride-2 layer padded 1 on each
  side (the Fast Sparse ConvNets layout the README asks for);

each as dense fp32, as fp32 with 80 % of every 1x1 conv's weights zero but
stored dense, and with those zeros in the sparse encoding.

Finding (LiteRT 2.3.0, x86-64): XNNPACK never takes the sparse path on an
x86 CPU with AVX. ``xnn_is_chw_compatible_config`` returns
``!use_x86_avx`` ("Sparse microkernels on x86 currently target only SSE, and
on processors with AVX ISA dense inference is expected to be faster than
sparse"), so the delegate's sparse hint is ignored: the sparse-encoded model
runs the same dense kernels (its outputs are bit-identical to the dense
encoding's) at the same speed, and is only smaller on disk. On aarch64 the
check returns true, so the path can engage there, but only for the
symmetric-padding layout; keras.applications' MobileNetV2 pads its stride-2
layers asymmetrically and cannot qualify anywhere. Measured 2026-11-27 on an
AMD EPYC with AVX-512 (2 threads, shared machine, 31 interleaved rounds of 10
invokes): sparse encoding vs dense fp32, median 1.05x (keras) and 0.99x (sym);
dense-encoded zeros gave the same 1.04x / 0.99x; files 13.9 MB -> 7.8 MB.

Run: ``PYTHONPATH=$PWD python benchmarks/sparse_xnnpack.py [--rounds 7] [--invokes 50] [--threads 2]``
Timings are comparable only within one run on one machine.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

SPARSITY = 0.8


def _cpu() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return next(l.split(":", 1)[1].strip() for l in out.splitlines() if l.startswith("Model name"))
    except Exception:  # noqa: BLE001 - a label only
        return platform.processor() or "unknown"


def mobilenet_v2_symmetric(keras, size: int = 224, classes: int = 1000):
    """MobileNetV2-1.0 with every stride-2 conv padded 1 on each side (explicit ZeroPadding2D + valid)."""
    L = keras.layers

    def block(x, expand: int, out: int, stride: int, name: str):
        cin = x.shape[-1]
        h = x
        if expand != 1:
            h = L.Conv2D(cin * expand, 1, use_bias=False, name=f"{name}_expand")(h)
            h = L.BatchNormalization(name=f"{name}_expand_bn")(h)
            h = L.ReLU(6.0, name=f"{name}_expand_relu")(h)
        if stride == 2:
            h = L.ZeroPadding2D(1, name=f"{name}_pad")(h)
        h = L.DepthwiseConv2D(3, strides=stride, padding="valid" if stride == 2 else "same", use_bias=False, name=f"{name}_dw")(h)
        h = L.BatchNormalization(name=f"{name}_dw_bn")(h)
        h = L.ReLU(6.0, name=f"{name}_dw_relu")(h)
        h = L.Conv2D(out, 1, use_bias=False, name=f"{name}_project")(h)
        h = L.BatchNormalization(name=f"{name}_project_bn")(h)
        if stride == 1 and cin == out:
            h = L.Add(name=f"{name}_add")([x, h])
        return h

    inp = keras.Input((size, size, 3))
    x = L.ZeroPadding2D(1, name="stem_pad")(inp)
    x = L.Conv2D(32, 3, strides=2, padding="valid", use_bias=False, name="stem")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    i = 0
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        for j in range(n):
            x = block(x, t, c, s if j == 0 else 1, f"block{i}")
            i += 1
    x = L.Conv2D(1280, 1, use_bias=False, name="head")(x)
    x = L.BatchNormalization(name="head_bn")(x)
    x = L.ReLU(6.0, name="head_relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(classes, activation="softmax", name="logits")(x)
    return keras.Model(inp, out, name="mobilenetv2_sym")


def prune_pointwise(model, sparsity: float = SPARSITY) -> float:
    """Zero exactly ``sparsity`` of every 1x1 Conv2D kernel by magnitude, in place; returns the achieved fraction."""
    zeros = total = 0
    for layer in model.layers:
        if type(layer).__name__ != "Conv2D" or tuple(layer.kernel_size) != (1, 1):
            continue
        w = layer.get_weights()
        k = w[0]
        n = int(round(k.size * sparsity))
        order = np.argsort(np.abs(k), axis=None)
        flat = k.reshape(-1).copy()
        flat[order[:n]] = 0.0
        w[0] = flat.reshape(k.shape)
        layer.set_weights(w)
        zeros += int(np.count_nonzero(w[0] == 0))
        total += k.size
    return zeros / total


def convert(tf, model, sparse: bool) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if sparse:
        conv.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
    return conv.convert()


def op_names(content: bytes) -> dict[str, int]:
    from ai_edge_litert.interpreter import Interpreter

    with tempfile.NamedTemporaryFile(suffix=".tflite") as f:
        f.write(content)
        f.flush()
        it = Interpreter(model_path=f.name)
        counts: dict[str, int] = {}
        for op in it._get_ops_details():  # the only listing of a graph's ops the Python API offers
            counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--invokes", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="write the JSON result here too")
    args = ap.parse_args()

    from edgekit._tf import tf, tf_keras

    tfm, keras = tf(), tf_keras()
    from ai_edge_litert.interpreter import Interpreter

    keras.utils.set_random_seed(0)
    builds = {
        "keras": lambda: keras.applications.MobileNetV2(weights=None, input_shape=(224, 224, 3)),
        "sym": lambda: mobilenet_v2_symmetric(keras),
    }
    artifacts: dict[str, bytes] = {}
    info: dict[str, object] = {}
    for arch, build in builds.items():
        model = build()
        artifacts[f"{arch}/dense"] = convert(tfm, model, sparse=False)
        info[f"{arch}/pointwise_sparsity"] = round(prune_pointwise(model), 6)
        artifacts[f"{arch}/pruned-dense-encoding"] = convert(tfm, model, sparse=False)
        artifacts[f"{arch}/pruned-sparse-encoding"] = convert(tfm, model, sparse=True)
    tmp = Path(tempfile.mkdtemp(prefix="sparse_xnnpack_"))
    interps = {}
    x = np.random.default_rng(0).random((1, 224, 224, 3), dtype=np.float32)
    outputs = {}
    for name, content in artifacts.items():
        p = tmp / (name.replace("/", "_") + ".tflite")
        p.write_bytes(content)
        it = Interpreter(model_path=str(p), num_threads=args.threads)
        it.allocate_tensors()
        inp, out = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
        it.set_tensor(inp, x)
        it.invoke()
        outputs[name] = it.get_tensor(out).copy()
        interps[name] = (it, inp)
        info[f"{name}/bytes"] = len(content)
        info[f"{name}/densify_ops"] = op_names(content).get("DENSIFY", 0)
    for arch in builds:
        a, b = outputs[f"{arch}/pruned-dense-encoding"], outputs[f"{arch}/pruned-sparse-encoding"]
        info[f"{arch}/sparse_vs_dense_encoding_max_abs_diff"] = float(np.max(np.abs(a - b)))
    times: dict[str, list[float]] = {n: [] for n in interps}
    for r in range(args.rounds):
        for name, (it, inp) in interps.items():  # interleaved: every variant once per round
            it.set_tensor(inp, x)
            t = time.perf_counter()
            for _ in range(args.invokes):
                it.invoke()
            times[name].append((time.perf_counter() - t) / args.invokes * 1e3)
    med = {n: statistics.median(v) for n, v in times.items()}
    best = {n: min(v) for n, v in times.items()}  # the least disturbed round: the fairer figure on a shared machine
    result = {
        "cpu": _cpu(),
        "threads": args.threads,
        "rounds": args.rounds,
        "invokes_per_round": args.invokes,
        "litert": __import__("ai_edge_litert").__version__ if hasattr(__import__("ai_edge_litert"), "__version__") else "?",
        "cpu_avx": "avx" in Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else None,
        "median_ms": {n: round(v, 3) for n, v in med.items()},
        "min_ms": {n: round(v, 3) for n, v in best.items()},
        "speedup_sparse_encoding_vs_dense_min": {a: round(best[f"{a}/dense"] / best[f"{a}/pruned-sparse-encoding"], 3) for a in builds},
        "speedup_sparse_encoding_vs_dense": {a: round(med[f"{a}/dense"] / med[f"{a}/pruned-sparse-encoding"], 3) for a in builds},
        "speedup_pruned_dense_encoding_vs_dense": {a: round(med[f"{a}/dense"] / med[f"{a}/pruned-dense-encoding"], 3) for a in builds},
        "info": info,
        "rounds_ms": {n: [round(v, 3) for v in t] for n, t in times.items()},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
