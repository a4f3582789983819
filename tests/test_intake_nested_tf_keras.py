"""tf_keras files with nested models (a transfer-learning base, an augmentation Sequential) are flattened.

The TF 2.x pattern: ``x = base(inputs, training=False)`` on a nested
functional base, behind a nested Sequential of Random* layers, saved with
``model.save("model.h5")``. ``load_model`` gives one functional model over
the same layer objects, named outer/inner, proven equal to the saved model.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.intake import load_model
from edgekit.intake.flatten import flatten_nested

import nested_models as nm

runner = CliRunner()


def transfer_model(tfk, shape=(32, 32, 3), classes=3, rescale=True):
    return nm.transfer_model(tfk, shape, classes, rescale=rescale, bn_rng=np.random.default_rng(0))


def _save(tfk, model, path):
    from edgekit._tf import quiet_native_logs

    with quiet_native_logs():
        if path.suffix:
            model.save(path)
        else:
            model.save(path, save_format="tf")
    return path


def _is_model(tfk, layer):
    return isinstance(layer, tfk.Model)


@pytest.fixture(scope="module")
def transfer_h5(tf_keras, tmp_path_factory):
    tf_keras.utils.set_random_seed(0)
    return _save(tf_keras, transfer_model(tf_keras), tmp_path_factory.mktemp("nested_tfk") / "transfer.h5")


@pytest.mark.parametrize("name", ["transfer.h5", "transfer.keras", "transfer_savedmodel"])
def test_transfer_learning_file_is_flattened(tf_keras, tmp_path, name):
    tf_keras.utils.set_random_seed(0)
    path = _save(tf_keras, transfer_model(tf_keras), tmp_path / name)
    loaded = load_model(path)
    ref = tf_keras.models.load_model(path, compile=False)  # the file as tf_keras itself loads it

    flat = loaded.model
    assert loaded.file.flavour == "tf_keras" and loaded.bridge is None
    assert not any(_is_model(tf_keras, layer) for layer in flat.layers)
    nm.assert_same_outputs(ref, flat, (32, 32, 3))
    names = [layer.name for layer in flat.layers]
    assert names[:3] == ["image", "scale", "tinybase/stem_conv"]
    assert {"tinybase/stem_bn", "tinybase/block_1_dw", "tinybase/block_1_add", "tinybase/block_1_expand", "pool", "head"} <= set(names)
    kinds = {type(layer).__name__ for layer in flat.layers}
    assert not kinds & {"RandomFlip", "RandomRotation", "Dropout"}  # inference no-ops removed, as the Keras 3 bridge does
    assert any("nested model(s) inlined" in n and "augment, tinybase" in n for n in loaded.notes), loaded.notes
    assert any("augment/random_flip (RandomFlip)" in n and "drop (Dropout)" in n for n in loaded.notes), loaded.notes
    for inner in ("block_1_expand", "stem_bn", "block_1_dw"):
        want = ref.get_layer("tinybase").get_layer(inner).get_weights()
        got = flat.get_layer(f"tinybase/{inner}").get_weights()
        assert len(want) == len(got) > 0
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b)
    # each layer knows only the flat graph: what audits and reports read from it is the flat model's
    assert all(len(layer.inbound_nodes) == 1 for layer in flat.layers)
    assert flat.get_layer("tinybase/stem_conv").input is flat.get_layer("scale").output
    assert flat.count_params() == ref.count_params()


def test_same_layer_objects_two_levels_and_shared_calls(tf_keras, tmp_path):
    """Depth 2 (a Sequential inside a model inside the model), a nested model called twice and a shared layer."""
    tf_keras.utils.set_random_seed(0)
    L = tf_keras.layers
    inner = tf_keras.Sequential([L.Conv2D(4, 3, padding="same", name="c"), L.Activation("gelu", name="g")], name="inner")
    mid_in = tf_keras.Input((8, 8, 3))
    y = L.Conv2D(4, 1, name="proj")(mid_in)
    mid = tf_keras.Model(mid_in, L.Add(name="res")([y, inner(y, training=False)]), name="mid")
    inp = tf_keras.Input((8, 8, 3), name="image")
    flip = L.Rescaling(-1.0, offset=1.0, name="flip")
    a = mid(inp)
    b = mid(flip(inp))  # the same nested model twice: shared weights
    c = flip(a)  # a shared layer outside the nested model
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D(name="pool")(L.Subtract(name="diff")([c, b])))
    model = tf_keras.Model(inp, out)
    conv = inner.get_layer("c")
    x = np.random.default_rng(2).uniform(0, 1, size=(3, 8, 8, 3)).astype(np.float32)
    expected = model(x, training=False).numpy()

    flat, inlined, removed = flatten_nested(model)
    assert inlined == ["mid", "mid/inner"] and removed == []
    names = {layer.name for layer in flat.layers}
    assert {"mid/proj", "mid/inner/c", "mid/inner/g", "mid/res", "flip", "head"} <= names
    assert flat.get_layer("mid/inner/c") is conv  # the same object, so the same weights: nothing copied
    assert flat.count_params() == model.count_params()  # shared, not duplicated
    assert not any(_is_model(tf_keras, layer) for layer in flat.layers)
    np.testing.assert_allclose(flat(x, training=False).numpy(), expected, rtol=0, atol=1e-6)

    # a model inside a model inside the model, through a file
    tf_keras.utils.set_random_seed(0)
    path = _save(tf_keras, _two_level_model(tf_keras), tmp_path / "two_levels.h5")
    loaded = load_model(path)
    nm.assert_same_outputs(tf_keras.models.load_model(path, compile=False), loaded.model, (8, 8, 3), 0.0, 1.0)
    assert "outer/mid/inner/c" in {layer.name for layer in loaded.model.layers}


def _two_level_model(tfk):
    L = tfk.layers
    ii = tfk.Input((8, 8, 4))
    inner = tfk.Model(ii, L.Conv2D(4, 3, padding="same", name="c")(ii), name="inner")
    mi = tfk.Input((8, 8, 3))
    mid = tfk.Model(mi, inner(L.Conv2D(4, 1, name="proj")(mi), training=False), name="mid")
    oi = tfk.Input((8, 8, 3))
    outer = tfk.Model(oi, L.BatchNormalization(name="bn")(mid(oi)), name="outer")
    inp = tfk.Input((8, 8, 3), name="image")
    return tfk.Model(inp, L.Dense(2, name="head")(L.Flatten(name="flat")(outer(inp))), name="top")


def test_inspect_cli_lists_outer_inner_names(transfer_h5):
    result = runner.invoke(app, ["inspect", str(transfer_h5), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["keras"] == "tf_keras" and payload["bridge"] is None
    names = [row["name"] for row in payload["layers"]]
    assert "tinybase/block_1_expand" in names and "tinybase/stem_conv" in names
    assert any(row["name"] == "tinybase/block_1_expand" and row["macs"] == 16 * 16 * 12 * 8 for row in payload["layers"])
    assert payload["preprocessing"] == [{"name": "scale", "type": "Rescaling", "kept": "in the graph"}]
    assert any("inlined" in n for n in payload["notes"])
    audit = {a["name"]: a for a in payload["audit"]}
    assert audit["tinybase/stem_bn"]["quantizable"] is True  # folded into tinybase/stem_conv by tfmot
    table = runner.invoke(app, ["inspect", str(transfer_h5)], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "tinybase/block_1_expand" in table.output and "inlined" in table.output


def test_name_clash_is_refused_in_one_line(tf_keras, tmp_path):
    L = tf_keras.layers
    bi = tf_keras.Input((8, 8, 3))
    base = tf_keras.Model(bi, L.Conv2D(2, 3, name="conv")(bi), name="base")
    inp = tf_keras.Input((8, 8, 3))
    out = L.Flatten()(L.Conv2D(2, 1, name="base/conv")(base(inp)))  # an outer layer already named like an inlined one
    path = _save(tf_keras, tf_keras.Model(inp, out), tmp_path / "clash.keras")
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "'base/conv'" in result.output and "unique names" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.slow
def test_flat_model_converts_to_int8(tf_keras, transfer_h5):
    from edgekit.compile.convert import convert_model
    from edgekit.profiles import get_target

    flat = load_model(transfer_h5).model
    rep = np.random.default_rng(0).uniform(0, 255, size=(8, 32, 32, 3)).astype(np.float32)
    c = convert_model(flat, get_target("cpu"), rep, float_fallback_layers=["tinybase/block_1_expand"])
    assert c.content[4:8] == b"TFL3" and c.calibration_samples == 8
    assert c.denylisted_nodes and all("tinybase/block_1_expand" in n for n in c.denylisted_nodes)
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_content=c.content)
    assert interp.get_input_details()[0]["dtype"] == np.int8


@pytest.mark.slow
def test_compress_a_nested_tf_keras_model_end_to_end(tf_keras, tmp_path):
    from edgekit.bundle import verify_bundle
    from edgekit.compress import compress
    from edgekit.compress.progress import NullProgress
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.example import spec_path_for
    from edgekit.resources import digits_dir

    tf_keras.utils.set_random_seed(0)
    model = transfer_model(tf_keras, shape=(28, 28, 1), classes=10, rescale=False)
    path = _save(tf_keras, model, tmp_path / "digits_nested.h5")
    spec_path_for(path).write_text(json.dumps({"preprocess": DIGITS_SPEC.to_dict(), "labels": [str(i) for i in range(10)]}))
    result = compress(path, digits_dir(), tmp_path / "bundle", targets=["cpu"],
                      overrides={"epochs": 1, "calibration_samples": 16}, progress=NullProgress())  # fmt: skip
    assert verify_bundle(result.bundle).ok
    assert result.build.failures == []
    qat = result.reports["qat"]
    assert qat is not None and "tinybase/block_1_expand" in qat["quantized_layers"]
    assert any("/tinybase/block_1_expand/" in e["tensor"] for e in result.reports["layer_errors"])
    # The per-layer error report (and so --max-accuracy-drop's float-layer candidates) names the inlined layer itself.
    named = {e["layer"] for e in result.reports["layer_errors"] if e["layer"]}
    assert any(name.startswith("tinybase/") for name in named), named
    assert any(n.startswith("nested model(s) inlined") and "tinybase" in n for n in result.notes), result.notes
