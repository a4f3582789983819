"""Coverage table: every keras.applications family (and the transfer-learning / augmentation patterns) through edgekit.

For each row: ``inspect`` ok (or the one-line error the user sees), the bridge
deviation, whether tfmot can build a QAT model (and which layers stay float),
and, with ``--compress``, the default recipe's wall time and peak RSS on a
small image folder made from scikit-image's sample photographs, the int8 CPU
artifact's top-1 agreement with the float Keras model on held-out crops, and
the Edge TPU prediction for the int8 artifact.

Weights are random (``weights=None``: no downloads here) and inputs small, so
the figures are about coverage and cost, not ImageNet accuracy. Each row runs
in its own subprocess, so the peak RSS is that row's alone.

Usage::

    python benchmarks/model_zoo.py --quick                         # inspect + bridge + QAT for every row
    python benchmarks/model_zoo.py --compress MobileNetV2,transfer  # ... and compress those rows
    python benchmarks/model_zoo.py --compress all --json zoo.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
CLASSES = 3
PHOTO_CLASSES = ("astronaut", "coffee", "chelsea")


def _apps(name: str, size: int, preset: str, **kw: Any) -> tuple[Callable[[Any], Any], int, str]:
    return (lambda keras: getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3), classes=CLASSES, **kw)), size, preset


def _transfer(keras: Any) -> Any:
    """The most common Keras classifier: frozen MobileNetV2 base called with training=False, new head."""
    L = keras.layers
    base = keras.applications.MobileNetV2(alpha=0.35, include_top=False, weights=None, input_shape=(96, 96, 3))
    base.trainable = False
    inp = keras.Input((96, 96, 3))
    x = L.Rescaling(1 / 127.5, offset=-1)(inp)
    x = base(x, training=False)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dropout(0.2)(x)
    return keras.Model(inp, L.Dense(CLASSES, activation="softmax")(x), name="transfer_mobilenetv2")


def _augment(keras: Any) -> Any:
    """TensorFlow's image-classification tutorial: augmentation Sequential inside the model, then Rescaling."""
    L = keras.layers
    augment = keras.Sequential([L.RandomFlip("horizontal"), L.RandomRotation(0.1), L.RandomZoom(0.1)], name="data_augmentation")
    return keras.Sequential(
        [
            keras.Input((64, 64, 3)), augment, L.Rescaling(1 / 255.0),
            L.Conv2D(16, 3, padding="same", activation="relu"), L.MaxPooling2D(),
            L.Conv2D(32, 3, padding="same", activation="relu"), L.MaxPooling2D(),
            L.Conv2D(64, 3, padding="same", activation="relu"), L.MaxPooling2D(),
            L.Dropout(0.2), L.Flatten(), L.Dense(64, activation="relu"), L.Dense(CLASSES, name="outputs"), L.Softmax(),
        ],
        name="tutorial_augment",
    )  # fmt: skip


# name -> (builder, input size, preprocessing preset of the bundle)
ROWS: dict[str, tuple[Callable[[Any], Any], int, str]] = {
    "MobileNet": _apps("MobileNet", 96, "symmetric", alpha=0.25),
    "MobileNetV2": _apps("MobileNetV2", 96, "symmetric", alpha=0.35),
    "MobileNetV3Small": _apps("MobileNetV3Small", 96, "raw"),
    "MobileNetV3Large": _apps("MobileNetV3Large", 96, "raw"),
    "EfficientNetB0": _apps("EfficientNetB0", 96, "raw"),
    "EfficientNetV2B0": _apps("EfficientNetV2B0", 96, "raw"),
    "ResNet50": _apps("ResNet50", 64, "symmetric"),
    "ResNet50V2": _apps("ResNet50V2", 64, "symmetric"),
    "DenseNet121": _apps("DenseNet121", 64, "symmetric"),
    "NASNetMobile": _apps("NASNetMobile", 96, "symmetric"),
    "VGG16": _apps("VGG16", 64, "symmetric"),
    "Xception": _apps("Xception", 71, "symmetric"),
    "InceptionV3": _apps("InceptionV3", 75, "symmetric"),
    "ConvNeXtTiny": _apps("ConvNeXtTiny", 64, "raw"),
    "transfer": (_transfer, 96, "raw"),
    "augment": (_augment, 64, "raw"),
}
# keras.applications 3.x has no RegNet; the "smallest RegNet" row is reported as absent.


def _photos_folder(root: Path, size: int, per_class: int, seed: int) -> Path:
    """Labelled crops of scikit-image photographs: one class per source photograph."""
    import cv2
    import numpy as np
    import skimage.data

    rng = np.random.default_rng(seed)
    for name in PHOTO_CLASSES:
        img = getattr(skimage.data, name)()[..., :3]
        (root / name).mkdir(parents=True, exist_ok=True)
        h, w = img.shape[:2]
        for i in range(per_class):
            side = int(min(h, w) * rng.uniform(0.4, 0.9))
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = cv2.resize(np.ascontiguousarray(img[y : y + side, x : x + side]), (size, size), interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(root / name / f"{i:03d}.png"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return root


def _qat_possible(model: Any) -> str:
    """Build (not train) tfmot's QAT model the way edgekit's QAT step does; say what stays float."""
    from edgekit._tf import tf_keras, tfmot
    from edgekit.compress.finetune import copy_model
    from edgekit.intake import audit_model

    mot, keras = tfmot(), tf_keras()
    work = copy_model(model)
    audit = audit_model(work)
    quantizable = {a.name for a in audit if a.quantizable}
    floats = sorted({a.type for a in audit if not a.quantizable})
    try:
        annotated = keras.models.clone_model(
            work, clone_function=lambda layer: mot.quantization.keras.quantize_annotate_layer(layer) if layer.name in quantizable else layer
        )
        with mot.quantization.keras.quantize_scope():
            mot.quantization.keras.quantize_apply(annotated)
    except Exception as e:  # noqa: BLE001 - the table records tfmot's reason
        return "no: " + str(e).strip().splitlines()[0][:120]
    return "yes" + (f" (float: {', '.join(floats)})" if floats else "")


def run_row(name: str, do_compress: bool) -> dict[str, Any]:
    """One row, in this process."""
    import resource

    import numpy as np

    from edgekit._tf import keras3, quiet_native_logs
    from edgekit.errors import EdgekitError

    keras = keras3()
    build, size, preset = ROWS[name]
    row: dict[str, Any] = {"model": name, "input": f"{size}x{size}x3"}
    with tempfile.TemporaryDirectory(prefix="edgekit_zoo_") as tmp:
        tmp_path = Path(tmp)
        keras.utils.set_random_seed(0)
        model = build(keras)
        path = tmp_path / f"{name}.keras"
        model.save(path)
        row["params"] = int(model.count_params())
        from edgekit.intake import inspect_model

        t = time.perf_counter()
        try:
            with quiet_native_logs():
                report = inspect_model(path)
        except EdgekitError as e:
            row.update(inspect="no", error=str(e))
            return row
        row["inspect"] = "ok"
        row["inspect_s"] = round(time.perf_counter() - t, 2)
        row["bridge_deviation"] = report.loaded.bridge.max_relative_deviation
        row["macs"] = report.total_macs
        row["qat"] = _qat_possible(report.loaded.model)
        if not do_compress:
            return row
        from edgekit.compress import compress
        from edgekit.preprocess import PreprocessSpec
        from edgekit.runtime import Predictor

        data = _photos_folder(tmp_path / "data", size, per_class=20, seed=0)
        held = _photos_folder(tmp_path / "held", size, per_class=8, seed=1)
        spec = PreprocessSpec.from_preset(preset, (size, size), channels=3)
        t = time.perf_counter()
        try:
            over = {"qat": False} if os.environ.get("EDGEKIT_ZOO_NO_QAT") == "1" else None  # --no-qat, through the row's process
            result = compress(path, data, tmp_path / "bundle", preprocess=spec, targets=["cpu", "edgetpu"], overrides=over, progress=False)
        except EdgekitError as e:
            row.update(compress="no", error=str(e).splitlines()[0])
            return row
        row["compress_s"] = round(time.perf_counter() - t, 1)
        row["compress"] = "ok"
        row["qat_ran"] = result.reports.get("qat") is not None
        row["notes"] = result.notes
        pred = Predictor.from_bundle(result.bundle, target="cpu")
        images = [p for d in sorted((tmp_path / "held").iterdir()) for p in sorted(d.iterdir())]
        agree = 0
        for p in images:
            x = pred.preprocess(str(p))
            ref = int(np.argmax(np.asarray(model(x[None, ...], training=False))[0]))
            agree += int(np.argmax(pred.predict(str(p)).scores) == ref)
        row["int8_agreement"] = round(agree / len(images), 4)
        row["held_out"] = len(images)
        compat = json.loads((result.bundle / "reports" / "compat_edgetpu.json").read_text())
        placements = compat.get("placements", [])
        on = sum(1 for p in placements if p.get("on_accelerator"))
        split = compat.get("split")
        row["edgetpu"] = f"{on}/{len(placements)} ops" + (f", split at {split['op']}" if split else ", all mapped")
    row["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return row


def _subprocess_row(name: str, do_compress: bool, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--row", name] + (["--with-compress"] if do_compress else [])
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    t = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"model": name, "inspect": "?", "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in p.stdout.splitlines() if line.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"model": name, "inspect": "?", "error": f"crashed (exit {p.returncode}): {tail[:200]}"}
    row = json.loads(lines[-1])
    row["row_wall_s"] = round(time.perf_counter() - t, 1)
    return row


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="edgekit model zoo (random weights, small inputs)")
    cols = ["model", "input", "params", "inspect", "bridge_deviation", "qat", "compress_s", "peak_rss_mb", "int8_agreement", "edgetpu", "error"]
    for c in cols:
        table.add_column(c, overflow="fold")
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            if c == "bridge_deviation" and isinstance(v, float):
                v = f"{v:.1e}"
            elif c == "params" and isinstance(v, int):
                v = f"{v:,}"
            cells.append(str(v))
        table.add_row(*cells)
    Console(width=220).print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="inspect + bridge + QAT for every row (the default without --compress)")
    ap.add_argument("--compress", default="", help="comma-separated rows to compress too, or 'all'")
    ap.add_argument("--only", default="", help="comma-separated rows to run (default: all)")
    ap.add_argument("--json", dest="json_out", default="", help="write the rows here")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds per row")
    ap.add_argument("--no-qat", action="store_true", help="compress with calibration-only int8 (the way round a QAT model that does not convert)")
    ap.add_argument("--row", default="", help=argparse.SUPPRESS)
    ap.add_argument("--with-compress", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.no_qat:
        os.environ["EDGEKIT_ZOO_NO_QAT"] = "1"
    if args.row:
        print(json.dumps(run_row(args.row, args.with_compress)))
        return
    names = [n for n in args.only.split(",") if n] or list(ROWS)
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        sys.exit(f"unknown rows {unknown}; expected some of {', '.join(ROWS)}")
    to_compress = set(ROWS) if args.compress == "all" else {n for n in args.compress.split(",") if n}
    rows = []
    for n in names:
        row = _subprocess_row(n, n in to_compress, args.timeout)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    rows.append({"model": "RegNetX002", "inspect": "—", "error": "keras.applications (Keras 3) has no RegNet family"})
    _print_table(rows)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
