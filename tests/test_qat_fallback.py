"""A QAT model that gives no working int8 artifact: compress falls back to calibrating the float model (issue 9).

DenseNet's transition (1x1 conv, then an average pool whose output is
concatenated with a later conv) trains fine under QAT, but tfmot's learned
ranges give the pool a different input and output scale, which TFLite's
average pool cannot take: the converter refuses the QAT model. The same
model before QAT converts. The model here is that block at digit size.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.compress.progress import NullProgress

pytestmark = pytest.mark.slow


def _densenet_block(keras, shape):
    L = keras.layers
    i = keras.Input(shape)
    h = L.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(i)
    h = L.Activation("relu", name="stem_relu")(L.BatchNormalization(name="stem_bn")(h))
    h = L.Conv2D(8, 1, use_bias=False, name="transition_conv")(h)
    h = L.AveragePooling2D(2, strides=2, name="transition_pool")(h)
    b = L.Activation("relu", name="block_relu")(L.BatchNormalization(name="block_bn")(h))
    b = L.Conv2D(4, 3, padding="same", use_bias=False, name="block_conv")(b)
    h = L.Concatenate(name="block_concat")([h, b])
    h = L.Flatten(name="flatten")(h)
    return keras.Model(i, L.Dense(10, activation="softmax", name="fc")(h), name="densenet_block")


@pytest.fixture(scope="module")
def densenet_h5(tf_keras, tmp_path_factory):
    from edgekit.data import load_digits
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.example import spec_path_for

    ds = load_digits()
    tf_keras.utils.set_random_seed(0)
    model = _densenet_block(tf_keras, ds.x.shape[1:])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(ds.x, ds.y, epochs=3, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("qat_fallback") / "densenet_block.h5"
    model.save(path)
    spec_path_for(path).write_text(json.dumps({"preprocess": DIGITS_SPEC.to_dict(), "labels": ds.class_names}))
    return path


def test_a_qat_model_the_converter_refuses_is_built_from_the_float_model_with_a_note(densenet_h5, tmp_path, capsys):
    from edgekit.bundle import load_bundle, verify_bundle
    from edgekit.compress import compress
    from edgekit.resources import digits_dir

    out = tmp_path / "bundle"
    result = compress(
        densenet_h5, digits_dir(), out, targets=["cpu", "edgetpu"],
        overrides={"epochs": 1, "calibration_samples": 40}, progress=NullProgress(),
    )  # fmt: skip
    note = next((n for n in result.notes if n.startswith("QAT trained, but")), None)
    # The reproduction itself: QAT ran, and its model is what the converter refused.
    assert result.reports["qat"] is not None
    assert note is not None, result.notes
    assert "average_pool_2d" in note and "same scale" in note and "post-training int8, calibrated from the model before QAT" in note
    qat_row = next(r for r in result.variants if r["variant"] == "QAT")
    assert qat_row["note"].startswith("not shipped")
    assert result.reports["budget"]["chosen"]["model"] == "float"
    assert result.reports["qat_int8_problem"] in note
    assert result.build.failures == []
    from edgekit.cli.compress_cmd import render

    render(result)  # the header must not claim QAT artifacts
    shown = " ".join(capsys.readouterr().out.split())
    assert "the QAT model gave no working int8 artifact; post-training int8 shipped" in shown and "QAT trained, but" in shown

    bundle = load_bundle(out)
    assert verify_bundle(out).ok
    shipped = {r["target"]: r for r in result.variants if r["kind"] == "tflite"}
    assert set(shipped) == {"cpu", "edgetpu"}
    # The artifacts really are int8 and score like the float model they came from.
    float_top1 = next(r for r in result.variants if r["variant"] == "float")["top1"]
    for target in ("cpu", "edgetpu"):
        entry = bundle.manifest.artifact(target)
        assert entry.input["dtype"] in ("int8", "uint8")
        assert abs(shipped[target]["top1"] - float_top1) <= 0.05


def test_the_qat_problem_is_found_before_the_budget_loop_and_the_conversions_are_reused(densenet_h5, tf_keras):
    """The probe converts each int8 target's QAT artifact once; a usable QAT model would go on to the loop with them cached."""
    from edgekit.compile.convert import ConversionCache
    from edgekit.compress.pipeline import _Run
    from edgekit.compress.qat import quantize_aware
    from edgekit.compress.recipe import load_recipe
    from edgekit.data import load_digits
    from edgekit.profiles import get_target

    ds = load_digits()
    model = tf_keras.models.load_model(densenet_h5)
    qat, _ = quantize_aware(model, ds.x[:256], ds.y[:256], epochs=1, batch_size=32)
    run = _Run(model, None, None, 10, "probabilities", load_recipe("default"), NullProgress(), {})
    run.qat_model = qat
    rep = ds.x[:16].astype(np.float32)
    problem = run._qat_int8_problem([get_target("cpu"), get_target("edgetpu")], rep)
    assert problem is not None and "same scale constraint" in problem and "\n" not in problem
    assert problem.startswith("target cpu:")  # the first int8 target's; the probe stops there

    usable = _Run(model, None, None, 10, "probabilities", load_recipe("default"), NullProgress(), {})
    usable.qat_model = model  # the float model stands in for a QAT model that converts
    assert usable._qat_int8_problem([get_target("cpu"), get_target("edgetpu")], rep) is None
    assert usable.conversions.stats["conversions"] == 2 and usable.conversions.stats["calibrations"] == 1
    assert isinstance(usable.conversions, ConversionCache)
