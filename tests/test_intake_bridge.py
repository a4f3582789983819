"""The Keras 3 -> tf_keras bridge reproduces outputs for the layers CNNs use."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.intake import MAX_RELATIVE_DEVIATION, load_model


def _every_layer_model(keras):
    """A functional graph using every layer the bridge promises to cover."""
    L = keras.layers
    inp = keras.Input((32, 32, 3), name="image")
    x = L.Rescaling(1 / 255.0, offset=-0.1)(inp)
    x = L.Normalization(mean=[0.4, 0.5, 0.6], variance=[0.04, 0.05, 0.06])(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.Conv2D(8, 3, strides=2, use_bias=False)(x)
    x = L.BatchNormalization()(x)
    x = L.ReLU(max_value=6.0)(x)
    d = L.DepthwiseConv2D(3, padding="same")(x)
    d = L.BatchNormalization()(d)
    d = L.Activation("relu")(d)
    s = L.SeparableConv2D(8, 3, padding="same", activation="relu")(x)
    x = L.Add()([x, d])
    x = L.Concatenate()([x, s])
    x = L.MaxPooling2D()(x)
    x = L.AveragePooling2D(2)(x)
    x = L.Dropout(0.2)(x)
    flat = L.Flatten()(x)
    pooled = L.GlobalAveragePooling2D()(x)
    r = L.Reshape((4, 4, 1))(L.Dense(16)(pooled))
    r = L.Flatten()(r)
    x = L.Concatenate()([flat, r])
    x = L.Dense(10, activation="softmax")(x)
    return keras.Model(inp, x, name="every_layer")


def _randomize_bn(model, rng):
    # Fresh BN layers are identity-like (mean 0, var 1); real statistics make the check meaningful.
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.1, b.shape), rng.normal(0, 0.1, m.shape), rng.uniform(0.5, 2, v.shape)])


def _assert_bridged_equal(keras3_model, path, shape):
    loaded = load_model(path)
    x = np.random.default_rng(1).uniform(0, 255, size=(3, *shape)).astype(np.float32)
    ref = np.asarray(keras3_model(x, training=False))
    got = loaded.model(x, training=False).numpy()
    rel = np.max(np.abs(ref - got)) / np.max(np.abs(ref))
    assert rel <= MAX_RELATIVE_DEVIATION
    assert loaded.bridge.max_relative_deviation <= MAX_RELATIVE_DEVIATION
    return loaded


def test_every_supported_layer_bridges(keras3, tmp_path):
    keras3.utils.set_random_seed(0)
    model = _every_layer_model(keras3)
    _randomize_bn(model, np.random.default_rng(0))
    path = tmp_path / "every.keras"
    model.save(path)
    loaded = _assert_bridged_equal(model, path, (32, 32, 3))
    kinds = {type(layer).__name__ for layer in loaded.model.layers}
    assert {"Rescaling", "Normalization", "ZeroPadding2D", "SeparableConv2D", "DepthwiseConv2D", "Reshape"} <= kinds


@pytest.mark.slow
def test_mobilenetv2_bridge_reproduces_outputs(keras3, tmp_path):
    keras3.utils.set_random_seed(0)
    model = keras3.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(96, 96, 3))
    _randomize_bn(model, np.random.default_rng(0))
    path = tmp_path / "mobilenetv2.keras"
    model.save(path)
    loaded = _assert_bridged_equal(model, path, (96, 96, 3))
    assert loaded.model.count_params() == model.count_params()
    # residual Adds survive as Adds, i.e. the graph was rewired, not flattened
    assert sum(type(layer).__name__ == "Add" for layer in loaded.model.layers) == 10


def test_sequential_bridge_keeps_trained_weights(keras3, tmp_path):
    keras3.utils.set_random_seed(0)
    model = keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Conv2D(4, 3, activation="relu"), keras3.layers.Flatten(), keras3.layers.Dense(3)])
    path = tmp_path / "seq.keras"
    model.save(path)
    loaded = _assert_bridged_equal(model, path, (8, 8, 1))
    for a, b in zip(model.get_weights(), loaded.model.get_weights()):
        np.testing.assert_array_equal(a, b)
