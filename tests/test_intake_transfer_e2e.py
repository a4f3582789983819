"""A Keras 3 transfer-learning model (augmentation + Rescaling + nested base) end to end: compress -> bundle -> deploy."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.bundle import load_bundle, verify_bundle
from edgekit.cli import app
from edgekit.resources import digits_dir

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def transfer_keras(keras3, tmp_path_factory):
    """The tutorial pattern on the shipped digit scans, trained briefly with Keras 3 and saved as .keras."""
    from edgekit.data import load_digits
    from edgekit.example import spec_path_for
    from edgekit.preprocess import PreprocessSpec

    L = keras3.layers
    keras3.utils.set_random_seed(0)
    base_in = keras3.Input((28, 28, 1))
    x = L.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(base_in)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    d = L.DepthwiseConv2D(3, padding="same", name="block_1_dw")(x)
    d = L.BatchNormalization(name="block_1_bn")(d)
    x = L.Add(name="block_1_add")([x, d])
    x = L.Conv2D(24, 3, strides=2, padding="same", activation="hard_silu", name="block_1_expand")(x)
    base = keras3.Model(base_in, x, name="tinybase")
    # Frozen BN layers (as in a fine-tuned pretrained base) with non-trivial statistics: they run in
    # inference mode while the convolutions train, and the bridge/QAT must carry them faithfully.
    rng = np.random.default_rng(0)
    for bn in (base.get_layer("stem_bn"), base.get_layer("block_1_bn")):
        c = bn.gamma.shape[0]
        bn.set_weights([rng.uniform(0.8, 1.2, c), rng.normal(0, 0.05, c), rng.normal(0, 0.05, c), rng.uniform(0.8, 1.2, c)])
        bn.trainable = False

    inp = keras3.Input((28, 28, 1), name="image")
    x = keras3.Sequential([L.RandomTranslation(0.05, 0.05, name="random_translation"), L.RandomZoom(0.05, name="random_zoom")], name="augment")(inp)
    x = L.Rescaling(1 / 255.0, name="scale")(x)
    x = base(x, training=False)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dropout(0.1, name="drop")(x)
    out = L.Dense(10, activation="softmax", name="head")(x)
    model = keras3.Model(inp, out, name="transfer_digits")

    ds = load_digits()
    model.compile(optimizer=keras3.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(ds.x * 255.0, ds.y, epochs=10, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("transfer") / "transfer_digits.keras"
    model.save(path)
    raw = PreprocessSpec.from_preset("raw", (28, 28), channels=1, color_order="gray", output="probabilities")  # the model rescales itself
    spec_path_for(path).write_text(json.dumps({"preprocess": raw.to_dict(), "labels": ds.class_names}))
    return path


def test_compress_and_deploy_with_the_library(transfer_keras, tmp_path):
    from edgekit.compress import compress
    from edgekit.runtime import deploy

    result = compress(transfer_keras, digits_dir(), tmp_path / "bundle", overrides={"epochs": 1, "calibration_samples": 40, "max_accuracy_drop": 10.0}, progress=False)
    assert verify_bundle(result.bundle).ok
    manifest = load_bundle(result.bundle).manifest
    bridge = manifest.source_model["bridge"]
    assert bridge["inlined_models"] == ["augment", "tinybase"]
    assert {r["name"] for r in bridge["removed_layers"]} == {"augment/random_translation", "augment/random_zoom", "drop"}
    qat = result.reports["qat"]
    assert qat is not None and "tinybase/block_1_expand" in qat["quantized_layers"]
    assert any(f["name"] == "scale" for f in qat["float_layers"])  # Rescaling stays float in QAT, int8 after calibration
    int8 = [v for v in result.variants if v["variant"].startswith("cpu int8")]
    assert int8 and int8[0]["top1"] > 0.5  # 10 classes: well above chance after a short fine-tune

    out = tmp_path / "preds.jsonl"
    run = deploy(result.bundle, str(digits_dir()), jsonl=out)
    assert run.error is None
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == run.stats.frames > 0
    truth = [int(r["source"].replace("\\", "/").split("/")[-2]) for r in lines]
    top1 = np.mean([r["topk"][0]["label"] == str(t) for r, t in zip(lines, truth)])
    assert top1 > 0.5


def test_compress_and_deploy_with_the_cli(transfer_keras, tmp_path):
    out = tmp_path / "bundle"
    r = runner.invoke(app, ["compress", str(transfer_keras), "--data", str(digits_dir()), "--out", str(out), "--no-qat",
                            "--calibration-samples", "40", "--max-accuracy-drop", "10", "--json"], terminal_width=200)  # fmt: skip
    assert r.exit_code == 0, r.output
    payload = json.loads(r.stdout)
    assert payload["recipe"]["qat"] is False and payload["reports"]["qat"] is None
    assert [v["variant"] for v in payload["variants"]][:2] == ["float", "cpu int8 .tflite"]
    assert load_bundle(out).manifest.source_model["bridge"]["inlined_models"] == ["augment", "tinybase"]
    assert verify_bundle(out).ok
    jsonl = tmp_path / "preds.jsonl"
    d = runner.invoke(app, ["deploy", str(out), "--source", str(digits_dir()), "--jsonl", str(jsonl), "--json"])
    assert d.exit_code == 0, d.output
    assert len(jsonl.read_text().splitlines()) > 0
