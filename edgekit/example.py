"""The bundled example: a small MNIST-style CNN trained on real handwritten digits.

The data are scikit-learn's 1,797 real 8×8 digit scans, shipped as PNGs in
``calibration/digits/``; the model sees them resized to 28×28 by the same
preprocessing spec the device uses. Trained with Keras 3 (what a TensorFlow
≥ 2.16 user has) and saved as a Keras 3 ``.keras`` file, so the quickstart
exercises the Keras 3 → tf_keras bridge like a real user's model would.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

EPOCHS = 12
SEED = 0


@dataclass
class ExampleResult:
    model_path: Path
    spec_path: Path
    holdout_accuracy: float
    n_train: int
    n_holdout: int
    epochs: int
    train_seconds: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model_path"] = str(self.model_path)
        d["spec_path"] = str(self.spec_path)
        return d


def build_digits_cnn(keras: Any, input_shape: tuple[int, int, int] = (28, 28, 1), classes: int = 10) -> Any:
    """Conv 32 → MaxPool → Conv 64 → MaxPool → Conv 64 → Flatten → Dense 64 → Dense 10."""
    layers = keras.layers
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(classes, activation="softmax"),
        ],
        name="digits_cnn",
    )


def spec_path_for(model_path: str | Path) -> Path:
    """Where a model's preprocessing spec sidecar lives: ``<model>.preprocess.json``."""
    p = Path(model_path)
    return p.with_name(p.name + ".preprocess.json")


def train_example(
    out: str | Path = "digits_cnn.keras",
    *,
    data: str | Path | None = None,
    epochs: int = EPOCHS,
    seed: int = SEED,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> ExampleResult:
    """Train the example CNN on the bundled digits and save it as Keras 3 ``.keras``.

    Also writes ``<out>.preprocess.json``, the preprocessing spec that
    ``edgekit compress`` picks up automatically.

    Example::

        result = train_example("digits_cnn.keras")
        print(f"held-out accuracy {result.holdout_accuracy:.3f}")
    """
    from edgekit._tf import keras3
    from edgekit.data import load_dataset, split_dataset
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.resources import digits_dir

    keras = keras3()
    keras.utils.set_random_seed(seed)
    ds = load_dataset(data or digits_dir(), DIGITS_SPEC)
    train, holdout = split_dataset(ds, holdout=0.2, seed=seed)
    model = build_digits_cnn(keras, tuple(train.x.shape[1:]), len(ds.class_names))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    callbacks = []
    if on_epoch is not None:
        callbacks.append(keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: on_epoch(e + 1, dict(logs or {}))))
    start = time.perf_counter()
    model.fit(train.x, train.y, epochs=epochs, batch_size=32, shuffle=True, verbose=0, callbacks=callbacks)
    seconds = time.perf_counter() - start

    probs = model.predict(holdout.x, verbose=0)
    accuracy = float(np.mean(np.argmax(probs, axis=1) == holdout.y))

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename, so a failed save never leaves a broken model.
    tmp = out.with_name(f".{out.stem}.partial.keras")
    model.save(tmp)
    tmp.replace(out)
    spec_file = spec_path_for(out)
    spec = DIGITS_SPEC.to_dict()
    spec_file.write_text(json.dumps({"preprocess": spec, "labels": ds.class_names}, indent=2) + "\n")
    return ExampleResult(out, spec_file, accuracy, len(train.x), len(holdout.x), epochs, seconds)
