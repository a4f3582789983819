"""The transfer-learning model the nested-model tests build, in Keras 3 or tf_keras alike.

``keras`` is either module: the same small functional base (standing in for
``applications.MobileNetV2(include_top=False)``), called with
``training=False`` behind a nested Sequential of augmentation layers.
"""
from __future__ import annotations

import numpy as np

from edgekit.intake import MAX_RELATIVE_DEVIATION


def tiny_base(keras, name="tinybase", shape=(16, 16, 3), activation="relu"):
    """A small functional CNN standing in for MobileNetV2(include_top=False)."""
    L = keras.layers
    inp = keras.Input(shape)
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    d = L.DepthwiseConv2D(3, padding="same", name="block_1_dw")(x)
    d = L.BatchNormalization(name="block_1_bn")(d)
    x = L.Add(name="block_1_add")([x, d])
    x = L.Conv2D(12, 1, activation=activation, name="block_1_expand")(x)
    return keras.Model(inp, x, name=name)


def transfer_model(keras, shape=(16, 16, 3), classes=3, *, rescale=True, activation="relu", bn_rng=None):
    """The Keras tutorial pattern: augmentation Sequential, Rescaling, frozen base called with training=False, a head.

    ``bn_rng`` gives the base's BatchNorm layers random statistics (else the fresh ones, which are an identity).
    """
    L = keras.layers
    augment = keras.Sequential(
        [L.RandomFlip("horizontal", name="random_flip"), L.RandomRotation(0.1, name="random_rotation"), L.RandomZoom(0.1, name="random_zoom")],
        name="augment",
    )
    base = tiny_base(keras, shape=shape, activation=activation)
    if bn_rng is not None:
        randomize_bn(base, bn_rng)
    base.trainable = False
    inp = keras.Input(shape, name="image")
    x = augment(inp)
    if rescale:
        x = L.Rescaling(1 / 127.5, offset=-1, name="scale")(x)
    x = base(x, training=False)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dropout(0.2, name="drop")(x)
    out = L.Dense(classes, activation="softmax", name="head")(x)
    return keras.Model(inp, out, name="transfer")


def randomize_bn(model, rng):
    """Random gamma/beta/mean/variance in every BatchNormalization layer of ``model``, nested ones included."""
    for layer in model._flatten_layers() if hasattr(model, "_flatten_layers") else model.layers:
        if type(layer).__name__ == "BatchNormalization":
            g, b, m, v = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, 0.1, b.shape), rng.normal(0, 0.1, m.shape), rng.uniform(0.5, 2, v.shape)])


def assert_same_outputs(ref, got, shape, low=0.0, high=255.0):
    """Both models give the same outputs on random inputs, within the bridge's tolerance."""
    x = np.random.default_rng(1).uniform(low, high, size=(3, *shape)).astype(np.float32)
    a = np.asarray(ref(x, training=False))
    b = np.asarray(got(x, training=False))
    assert np.max(np.abs(a - b)) <= MAX_RELATIVE_DEVIATION * max(1.0, float(np.max(np.abs(a))))
