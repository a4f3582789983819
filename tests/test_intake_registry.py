"""Every row of the layer registry is under test: bridge equality, MACs, and tfmot agreement.

Adding a layer to edgekit/intake/registry.py without a case here fails
``test_every_registered_layer_has_a_case``.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.intake import MAX_RELATIVE_DEVIATION, bridge_keras3, layer_stats
from edgekit.intake import registry as reg

SHAPE = (8, 8, 3)


def _wrap(keras, body, shape=SHAPE):
    inp = keras.Input(shape, name="image")
    out = body(keras.layers, inp)
    return keras.Model(inp, out, name="case")


# name -> body(L, x) -> output tensor; the layer under test is named "probe".
CASES = {
    "Conv2D": lambda L, x: L.Conv2D(4, 3, strides=2, name="probe")(x),
    "SeparableConv2D": lambda L, x: L.SeparableConv2D(4, 3, depth_multiplier=2, name="probe")(x),
    "Conv2DTranspose": lambda L, x: L.Conv2DTranspose(4, 3, strides=2, padding="same", name="probe")(x),
    "Dense": lambda L, x: L.Dense(5, name="probe")(L.Flatten()(x)),
    "DepthwiseConv2D": lambda L, x: L.DepthwiseConv2D(3, depth_multiplier=2, name="probe")(x),
    "BatchNormalization": lambda L, x: L.BatchNormalization(name="probe")(L.Conv2D(4, 1)(x)),
    "PReLU": lambda L, x: L.PReLU(shared_axes=[1, 2], name="probe")(L.Conv2D(4, 1)(x)),
    "LayerNormalization": lambda L, x: L.LayerNormalization(name="probe")(L.Conv2D(4, 1)(x)),
    "GroupNormalization": lambda L, x: L.GroupNormalization(groups=2, name="probe")(L.Conv2D(4, 1)(x)),
    "UnitNormalization": lambda L, x: L.UnitNormalization(name="probe")(L.Conv2D(4, 1)(x)),
    "MaxPooling2D": lambda L, x: L.MaxPooling2D(name="probe")(x),
    "AveragePooling2D": lambda L, x: L.AveragePooling2D(2, name="probe")(x),
    "GlobalAveragePooling2D": lambda L, x: L.GlobalAveragePooling2D(name="probe")(x),
    "GlobalMaxPooling2D": lambda L, x: L.GlobalMaxPooling2D(name="probe")(x),
    "ZeroPadding2D": lambda L, x: L.ZeroPadding2D(((1, 2), (0, 1)), name="probe")(x),
    "Cropping2D": lambda L, x: L.Cropping2D(((1, 2), (0, 1)), name="probe")(x),
    "UpSampling2D": lambda L, x: L.UpSampling2D(2, interpolation="bilinear", name="probe")(x),
    "Activation": lambda L, x: L.Activation("tanh", name="probe")(L.Conv2D(4, 1)(x)),
    "ReLU": lambda L, x: L.ReLU(max_value=0.8, negative_slope=0.1, threshold=0.2, name="probe")(L.Conv2D(4, 1)(x)),
    "LeakyReLU": lambda L, x: L.LeakyReLU(negative_slope=0.05, name="probe")(L.Conv2D(4, 1)(x)),
    "ELU": lambda L, x: L.ELU(alpha=0.7, name="probe")(L.Conv2D(4, 1)(x)),
    "Softmax": lambda L, x: L.Softmax(name="probe")(L.Conv2D(4, 1)(x)),
    "Add": lambda L, x: L.Add(name="probe")([x, L.Conv2D(3, 1)(x)]),
    "Subtract": lambda L, x: L.Subtract(name="probe")([x, L.Conv2D(3, 1)(x)]),
    "Multiply": lambda L, x: L.Multiply(name="probe")([x, L.Conv2D(3, 1)(x)]),
    "Average": lambda L, x: L.Average(name="probe")([x, L.Conv2D(3, 1)(x)]),
    "Maximum": lambda L, x: L.Maximum(name="probe")([x, L.Conv2D(3, 1)(x)]),
    "Minimum": lambda L, x: L.Minimum(name="probe")([x, L.Conv2D(3, 1)(x)]),
    "Concatenate": lambda L, x: L.Concatenate(name="probe")([x, L.Conv2D(2, 1)(x)]),
    "Flatten": lambda L, x: L.Flatten(name="probe")(x),
    "Reshape": lambda L, x: L.Reshape((16, 12), name="probe")(x),
    "Permute": lambda L, x: L.Permute((3, 1, 2), name="probe")(x),
    "Rescaling": lambda L, x: L.Rescaling(1 / 255.0, offset=-0.5, name="probe")(x),
    "Normalization": lambda L, x: L.Normalization(mean=[0.4, 0.5, 0.6], variance=[0.04, 0.05, 0.06], name="probe")(x),
    "Resizing": lambda L, x: L.Resizing(5, 6, name="probe")(x),
    "CenterCrop": lambda L, x: L.CenterCrop(4, 6, name="probe")(x),
}
_NOOP = lambda cls, **kw: (lambda L, x: L.Conv2D(2, 1)(getattr(L, cls)(name="probe", **kw)(x)))  # noqa: E731
CASES.update(
    {
        "RandomFlip": _NOOP("RandomFlip"),
        "RandomRotation": _NOOP("RandomRotation", factor=0.2),
        "RandomZoom": _NOOP("RandomZoom", height_factor=0.2),
        "RandomTranslation": _NOOP("RandomTranslation", height_factor=0.1, width_factor=0.1),
        "RandomContrast": _NOOP("RandomContrast", factor=0.3),
        "RandomBrightness": _NOOP("RandomBrightness", factor=0.2),
        "GaussianNoise": _NOOP("GaussianNoise", stddev=0.1),
        "GaussianDropout": _NOOP("GaussianDropout", rate=0.1),
        "AlphaDropout": _NOOP("AlphaDropout", rate=0.1),
        "ActivityRegularization": _NOOP("ActivityRegularization", l1=0.01),
        "Identity": _NOOP("Identity"),
        "Dropout": _NOOP("Dropout", rate=0.5),
        "SpatialDropout2D": _NOOP("SpatialDropout2D", rate=0.5),
    }
)
# Rows whose case needs another input rank or a whole model.
NOT_2D = {"SpatialDropout1D", "SpatialDropout3D"}
ELSEWHERE = {"InputLayer": "every case", "Sequential": "test_intake_nested.py", "Functional": "test_intake_nested.py",
             "Model": "test_intake_nested.py (alias of Functional)", "LayerScale": "test_intake_nested.py (ConvNeXt block)"}  # fmt: skip


def test_every_registered_layer_has_a_case():
    missing = set(reg.LAYERS) - set(CASES) - NOT_2D - set(ELSEWHERE)
    assert not missing, f"registry rows without a bridge-equality case: {sorted(missing)}"


def _randomize(model, rng):
    # Fresh BN/PReLU/LayerNorm weights are identity-like; real values make the check meaningful.
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(np.float32) * (1 if i % 2 == 0 else 0.2) for i, w in enumerate(ws)])


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_bridges_equal(name, keras3):
    keras3.utils.set_random_seed(0)
    spec = reg.lookup(name)
    model = _wrap(keras3, CASES[name])
    _randomize(model, np.random.default_rng(0))
    tfk_model, report = bridge_keras3(model)
    assert report.max_relative_deviation <= MAX_RELATIVE_DEVIATION
    x = np.random.default_rng(1).uniform(-1, 2, size=(3, *SHAPE)).astype(np.float32)
    ref = np.asarray(model(x, training=False))
    got = tfk_model(x, training=False).numpy()
    assert np.max(np.abs(ref - got)) <= MAX_RELATIVE_DEVIATION * max(1.0, float(np.max(np.abs(ref))))
    names = {layer.name: layer for layer in tfk_model.layers}
    if spec.noop:
        assert "probe" not in names
        assert report.removed_layers == [{"name": "probe", "type": name}]
        return
    probe = names["probe"]
    assert type(probe).__name__ == spec.bridged_as
    stats = {r.name: r for r in layer_stats(tfk_model)}
    assert (stats["probe"].macs > 0) == (spec.macs is not None)


def test_macs_of_new_producers(keras3):
    keras3.utils.set_random_seed(0)
    L = keras3.layers
    inp = keras3.Input((8, 8, 3))
    t = L.Conv2DTranspose(4, 3, strides=2, padding="same", name="tconv")(inp)
    d = L.DepthwiseConv2D(3, depth_multiplier=2, name="dw2")(inp)
    stats = {}
    for out in (t, d):
        tfk_model, _ = bridge_keras3(keras3.Model(inp, out))
        stats.update({r.name: r.macs for r in layer_stats(tfk_model)})
    assert stats["tconv"] == 8 * 8 * 3 * 3 * 3 * 4  # every input pixel scatters a 3x3x4 kernel per input channel
    assert stats["dw2"] == 6 * 6 * 6 * 3 * 3  # 6 output channels (3 x multiplier 2), one 3x3 tap each


@pytest.mark.parametrize("act", sorted(reg.ACTIVATIONS))
def test_activation_bridges_equal(act, keras3):
    keras3.utils.set_random_seed(0)
    L = keras3.layers
    inp = keras3.Input(SHAPE)
    x = L.Conv2D(4, 3, activation=act, name="conv")(inp)
    x = L.Activation(act, name="act")(L.Conv2D(4, 1)(x))
    model = keras3.Model(inp, x)
    tfk_model, report = bridge_keras3(model, samples=8, seed=3)  # the bridge itself compares outputs on random inputs
    xs = np.random.default_rng(2).uniform(-1, 1, size=(4, *SHAPE)).astype(np.float32)
    ref = np.asarray(model(xs))
    got = tfk_model(xs).numpy()
    assert np.max(np.abs(ref - got)) <= MAX_RELATIVE_DEVIATION * max(1.0, float(np.max(np.abs(ref))))
    assert bool(report.rebuilt) == (reg.ACTIVATIONS[act].bridge == reg.REBUILT)


def test_registry_agrees_with_tfmot(tf_keras):
    """Each row's prunable/QAT claim is what tfmot's own registries say for the tf_keras class."""
    from edgekit._tf import tfmot

    tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit.default_8bit_quantize_registry import (
        Default8BitQuantizeRegistry,
    )
    from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import PruneRegistry

    qreg = Default8BitQuantizeRegistry()
    wrong = []
    for spec in reg.LAYERS.values():
        if spec.bridge not in (reg.COPY, reg.REBUILD):
            continue
        layer = getattr(tf_keras.layers, spec.bridged_as)
        instance = layer.__new__(layer)  # class-level checks only; no config needed
        prunable = bool(PruneRegistry.supports(instance)) and spec.macs is not None
        quantized = bool(qreg.supports(instance))
        if spec.prunable != prunable or (spec.qat == reg.QAT_QUANTIZED) != quantized:
            wrong.append((spec.name, {"prunable": prunable, "quantized": quantized}))
    assert not wrong, f"registry rows that disagree with tfmot: {wrong}"


def test_activation_qat_flags_match_tfmot():
    from edgekit._tf import tfmot

    tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras.quantize_aware_activation import QuantizeAwareActivation as Q

    supported = Q._PRE_QUANT_ACTIVATIONS | Q._POST_QUANT_ACTIVATIONS
    from edgekit._tf import tf_keras

    tfk = tf_keras()
    for spec in reg.ACTIVATIONS.values():
        if spec.bridge == reg.REBUILT:
            continue
        assert spec.qat == (tfk.activations.get(spec.name).__name__ in supported), spec.name


def test_registry_rejects_duplicates():
    with pytest.raises(ValueError, match="twice"):
        reg._register(reg.LayerSpec("Conv2D", reg.COPY))
