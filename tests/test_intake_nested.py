"""Nested models are inlined, inference no-ops removed, Keras 3 ops and ConvNeXt/MobileNetV3 pieces rebuilt."""
from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.intake import MAX_RELATIVE_DEVIATION, bridge_keras3, inspect_model, load_model

import nested_models as nm

runner = CliRunner()


def transfer_model(keras):
    return nm.transfer_model(keras, activation="hard_silu")  # hard_silu: rebuilt by the bridge


def test_transfer_learning_pattern_is_inlined(keras3, tmp_path):
    keras3.utils.set_random_seed(0)
    model = transfer_model(keras3)
    nm.randomize_bn(model, np.random.default_rng(0))
    path = tmp_path / "transfer.keras"
    model.save(path)
    loaded = load_model(path)
    nm.assert_same_outputs(model, loaded.model, (16, 16, 3))
    names = [layer.name for layer in loaded.model.layers]
    kinds = {type(layer).__name__ for layer in loaded.model.layers}
    assert "tinybase/block_1_expand" in names and "tinybase/stem_bn" in names
    assert not kinds & {"Sequential", "Functional", "RandomFlip", "RandomRotation", "RandomZoom", "Dropout"}
    assert {"Rescaling", "Conv2D", "DepthwiseConv2D", "Add", "Dense"} <= kinds
    assert loaded.bridge.inlined_models == ["augment", "tinybase"]
    assert [r["name"] for r in loaded.bridge.removed_layers] == ["augment/random_flip", "augment/random_rotation", "augment/random_zoom", "drop"]
    assert any("inlined" in n for n in loaded.notes) and any("no-op" in n for n in loaded.notes)
    assert any("hard_silu" in r["what"] for r in loaded.bridge.rebuilt)
    # weights are the Keras 3 model's, layer by layer
    k3 = model.get_layer("tinybase").get_layer("block_1_expand").get_weights()
    for a, b in zip(k3, loaded.model.get_layer("tinybase/block_1_expand").get_weights()):
        np.testing.assert_array_equal(a, b)


def test_inspect_shows_inlining_noops_and_preprocessing(keras3, tmp_path):
    keras3.utils.set_random_seed(0)
    path = tmp_path / "transfer.keras"
    transfer_model(keras3).save(path)
    result = runner.invoke(app, ["inspect", str(path), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["preprocessing"] == [{"name": "scale", "type": "Rescaling", "kept": "in the graph"}]
    assert payload["bridge"]["inlined_models"] == ["augment", "tinybase"]
    assert any(row["name"] == "tinybase/block_1_expand" and row["macs"] == 8 * 8 * 12 * 8 for row in payload["layers"])
    table = runner.invoke(app, ["inspect", str(path)])
    assert table.exit_code == 0, table.output
    assert "tinybase/block_1_expand" in table.output
    assert "no-op" in table.output and "inlined" in table.output and "preprocessing" in table.output


def test_two_levels_and_a_shared_nested_model(keras3):
    keras3.utils.set_random_seed(0)
    L = keras3.layers
    inner = keras3.Sequential([keras3.Input((8, 8, 4)), L.Conv2D(4, 3, padding="same", name="c"), L.Activation("gelu", name="g")], name="inner")
    mid_in = keras3.Input((8, 8, 3))
    y = L.Conv2D(4, 1, name="proj")(mid_in)
    mid = keras3.Model(mid_in, L.Add(name="res")([y, inner(y)]), name="mid")
    inp = keras3.Input((8, 8, 3))
    a = mid(inp)
    b = mid(L.Rescaling(-1.0, offset=1.0, name="flip")(inp))  # the same nested model twice: shared weights
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(L.Subtract(name="diff")([a, b])))
    model = keras3.Model(inp, out)
    tfk_model, report = bridge_keras3(model)
    nm.assert_same_outputs(model, tfk_model, (8, 8, 3), 0.0, 1.0)
    names = {layer.name for layer in tfk_model.layers}
    assert {"mid/proj", "mid/inner/c", "mid/inner/g", "mid/res"} <= names
    assert tfk_model.count_params() == model.count_params()  # shared, not duplicated
    assert report.inlined_models == ["mid", "mid/inner"]


def test_convnext_block_layerscale_layernorm_gelu_ops(keras3):
    from keras.src.applications.convnext import LayerScale

    keras3.utils.set_random_seed(0)
    L = keras3.layers
    inp = keras3.Input((8, 8, 3))
    stem = keras3.Sequential([L.Conv2D(8, 2, strides=2, name="stem_conv"), L.LayerNormalization(epsilon=1e-6, name="stem_ln")], name="stem")
    x = stem(inp)
    y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = L.LayerNormalization(epsilon=1e-6, name="ln")(y)
    y = L.Dense(16, name="pw1")(y)
    y = L.Activation("gelu", name="gelu")(y)
    y = L.Dense(8, name="pw2")(y)
    y = LayerScale(0.5, 8, name="scale")(y)
    x = x + y  # a Keras 3 operation node, not a layer
    out = L.Dense(3)(L.GlobalAveragePooling2D()(x))
    model = keras3.Model(inp, out)
    model.get_layer("scale").set_weights([np.linspace(0.1, 1.0, 8).astype(np.float32)])
    tfk_model, report = bridge_keras3(model)
    nm.assert_same_outputs(model, tfk_model, (8, 8, 3), 0.0, 1.0)
    assert type(tfk_model.get_layer("scale")).__name__ == "DepthwiseConv2D"
    assert {r["name"] for r in report.rebuilt} == {"scale"}
    assert "stem/stem_ln" in {layer.name for layer in tfk_model.layers}


def test_mobilenetv3_ops_hard_sigmoid(keras3):
    """MobileNetV3's squeeze-excite writes relu6(x + 3.0) * (1/6) with Keras 3 ops: rebuilt as Rescaling layers."""
    keras3.utils.set_random_seed(0)
    L = keras3.layers
    inp = keras3.Input((8, 8, 3))
    x = L.Conv2D(4, 3, padding="same", name="c")(inp)
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Conv2D(4, 1, name="se")(s)
    s = L.ReLU(6.0)(s + 3.0) * (1.0 / 6.0)
    x = L.Multiply(name="excite")([x, s])
    x = L.Activation("hard_swish", name="hs")(x)
    model = keras3.Model(inp, L.GlobalAveragePooling2D()(x))
    tfk_model, report = bridge_keras3(model)
    nm.assert_same_outputs(model, tfk_model, (8, 8, 3), -2.0, 2.0)
    assert sum(r["what"].startswith("operation") for r in report.rebuilt) == 2


def test_unbridgeable_op_is_named(keras3):
    from edgekit.errors import UnsupportedModelError

    L = keras3.layers
    inp = keras3.Input((8, 8, 3))
    x = L.Conv2D(4, 3, name="c")(inp)
    x = keras3.ops.sqrt(keras3.ops.abs(x))
    model = keras3.Model(inp, L.Flatten()(x))
    with pytest.raises(UnsupportedModelError) as e:
        bridge_keras3(model)
    msg = str(e.value)
    assert "Keras operation" in msg and "Absolute" in msg


@pytest.mark.slow
def test_mobilenetv3small_default_inspects(keras3, tmp_path):
    keras3.utils.set_random_seed(0)
    model = keras3.applications.MobileNetV3Small(input_shape=(32, 32, 3), weights=None, classes=4)
    path = tmp_path / "v3s.keras"
    model.save(path)
    report = inspect_model(path)
    assert report.loaded.bridge.max_relative_deviation <= MAX_RELATIVE_DEVIATION
    assert report.total_params == model.count_params()


@pytest.mark.slow
def test_float_fallback_finds_an_inlined_layer_by_its_path(keras3):
    """The budget loop names float layers by their outer/inner path; the converter must find their ops."""
    import numpy as np

    from edgekit.compile.convert import convert_model
    from edgekit.profiles import get_target

    keras3.utils.set_random_seed(0)
    model = transfer_model(keras3)
    tfk_model, _ = bridge_keras3(model)
    rep = np.random.default_rng(0).uniform(0, 255, size=(8, 16, 16, 3)).astype(np.float32)
    c = convert_model(tfk_model, get_target("cpu"), rep, float_fallback_layers=["tinybase/block_1_expand"])
    assert c.denylisted_nodes and all("tinybase/block_1_expand" in n for n in c.denylisted_nodes)
    assert c.float_fallback_layers == ("tinybase/block_1_expand",)
