"""Real small models and bundles for the benchmark suites and the figures script.

Build side (TensorFlow, tf_keras): used to *make* bundles; the measurements
themselves run through the device-side runtime. Calibration uses real data:
the shipped digit scans, and scikit-image's sample photographs for RGB
models (random-weight architectures are fine for latency, not for accuracy).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel")


def photos(size: tuple[int, int], n: int = 32, seed: int = 0) -> np.ndarray:
    """``n`` RGB uint8 crops of scikit-image's sample photographs, resized to (height, width)."""
    import cv2
    import skimage.data

    rng = np.random.default_rng(seed)
    sources = [getattr(skimage.data, name)()[..., :3] for name in PHOTOS]
    out = []
    for i in range(n):
        img = sources[i % len(sources)]
        h, w = img.shape[:2]
        side = int(min(h, w) * rng.uniform(0.6, 1.0))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = np.ascontiguousarray(img[y : y + side, x : x + side])
        out.append(cv2.resize(crop, (size[1], size[0]), interpolation=cv2.INTER_AREA))
    return np.stack(out).astype(np.uint8)


def binary_cnn(keras: Any, size: int = 150) -> Any:
    """The seeds' 150x150 binary classifier: Conv 32/64/128/128, each + 2x2 max-pool, Dense 512, Dense 1 sigmoid."""
    L = keras.layers
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            L.Conv2D(32, 3, activation="relu"), L.MaxPooling2D(2),
            L.Conv2D(64, 3, activation="relu"), L.MaxPooling2D(2),
            L.Conv2D(128, 3, activation="relu"), L.MaxPooling2D(2),
            L.Conv2D(128, 3, activation="relu"), L.MaxPooling2D(2),
            L.Flatten(),
            L.Dense(512, activation="relu"),
            L.Dense(1, activation="sigmoid"),
        ],
        name="binary_cnn_150",
    )


def convert(model: Any, kind: str, representative: Callable[[], Iterable[list[np.ndarray]]] | None = None) -> bytes:
    """A batch-1 ``.tflite``: ``fp32``, ``fp16`` (float16 weights) or ``int8`` (full integer, int8 I/O)."""
    from edgekit._tf import quiet_native_logs, tf

    tf_ = tf()
    shape = [1, *[int(d) for d in model.inputs[0].shape[1:]]]

    @tf_.function(input_signature=[tf_.TensorSpec(shape, tf_.float32)])
    def serve(x):
        return model(x, training=False)

    conv = tf_.lite.TFLiteConverter.from_concrete_functions([serve.get_concrete_function()], model)
    if kind == "fp16":
        conv.optimizations = [tf_.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf_.float16]
    elif kind == "int8":
        if representative is None:
            raise ValueError("int8 needs representative data")
        conv.optimizations = [tf_.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf_.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf_.int8
        conv.inference_output_type = tf_.int8
    elif kind != "fp32":
        raise ValueError(f"unknown kind {kind!r}")
    with quiet_native_logs():
        return conv.convert()


def write_bundle(
    dest: Path,
    artifacts: Sequence[tuple[str, str, bytes, str | None, dict | None]],
    *,
    spec: Any,
    labels: list[str],
    source_model: dict,
    variants: list[dict] | None = None,
) -> Path:
    """Write a bundle: ``artifacts`` are (target, variant, tflite bytes, accelerator, accuracy)."""
    from edgekit.bundle import ArtifactEntry, BundleWriter, Manifest
    from edgekit.runtime.backends import select_backend
    from edgekit.runtime.tensors import TensorInfo

    backend = select_backend()
    with BundleWriter(dest) as w:
        entries = []
        for target, variant, blob, accel, accuracy in artifacts:
            name = f"model_{target}_{variant}.tflite"
            (w.path / name).write_bytes(blob)
            interp = backend.Interpreter(model_path=str(w.path / name))
            entries.append(
                ArtifactEntry(
                    target=target, file=name, sha256="", bytes=0, variant=variant,
                    input=TensorInfo.from_detail(interp.get_input_details()[0]).to_dict(),
                    output=TensorInfo.from_detail(interp.get_output_details()[0]).to_dict(),
                    accelerator=accel, accuracy=accuracy,
                )
            )
        w.manifest = Manifest(labels=labels, preprocess=spec.to_dict(), source_model=source_model,
                              artifacts=entries, variants=variants or [])
    return dest


def digits_bundle(dest: Path, model_path: Path | None = None, epochs: int = 3) -> Path:
    """The example CNN trained briefly on the shipped digits; cpu fp32 + int8, accuracy on the held-out split."""
    from edgekit._tf import tf_keras
    from edgekit.data import load_digits, split_dataset
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.example import build_digits_cnn
    from edgekit.runtime.backends import select_backend
    from edgekit.runtime.tensors import run_batch

    keras = tf_keras()
    keras.utils.set_random_seed(0)
    ds = load_digits()
    train, held = split_dataset(ds, holdout=0.2, seed=0)
    model = build_digits_cnn(keras)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    model.fit(train.x, train.y, epochs=epochs, batch_size=32, verbose=0)
    source = {"name": "digits_cnn", "sha256": "", "format": "tf_keras"}
    if model_path is not None:
        model.save(model_path)
        from edgekit.intake import load_model

        source = load_model(model_path).source_info()
    rep = lambda: ([s[None]] for s in train.x[:100])  # noqa: E731
    blobs = {"fp32": convert(model, "fp32"), "int8": convert(model, "int8", rep)}
    backend = select_backend()
    artifacts = []
    for variant, blob in blobs.items():
        interp = backend.Interpreter(model_content=blob)
        interp.allocate_tensors()
        top1 = float(np.mean(np.argmax(run_batch(interp, held.x), axis=1) == held.y))
        artifacts.append(("cpu", variant, blob, None, {"top1": top1, "n": int(len(held.y))}))
    return write_bundle(dest, artifacts, spec=DIGITS_SPEC, labels=ds.class_names, source_model=source)


def mobilenet_v2_bundle(out: Path) -> tuple[Path, Path]:
    """MobileNetV2-1.0-224 (weights=None) saved as ``.h5`` and bundled with a cpu fp32 and a full-int8 artifact.

    Calibrated on 32 scikit-image photographs; an existing bundle in ``out`` is reused.
    Returns (bundle, source model path).
    """
    from edgekit._tf import quiet_native_logs, tf_keras
    from edgekit.intake import load_model
    from edgekit.preprocess import PreprocessSpec

    bundle, h5 = out / "mnv2_bundle", out / "mobilenet_v2_1.0_224.h5"
    if (bundle / "manifest.json").is_file() and h5.is_file():
        return bundle, h5
    keras = tf_keras()
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(alpha=1.0, input_shape=(224, 224, 3), weights=None, classes=1000)
    with quiet_native_logs():
        model.save(h5)
    spec = PreprocessSpec.from_preset("symmetric", (224, 224), channels=3, output="probabilities")
    calib = spec.apply_batch(photos((224, 224), n=32), input_order="rgb")
    fp32 = convert(model, "fp32")
    int8 = convert(model, "int8", lambda: ([s[None]] for s in calib))
    write_bundle(
        bundle, [("cpu", "fp32", fp32, None, None), ("cpu", "int8", int8, None, None)],
        spec=spec, labels=[f"class_{i}" for i in range(1000)], source_model=load_model(h5).source_info(),
    )
    return bundle, h5
