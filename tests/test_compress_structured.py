"""Structured channel pruning: real surgery, proven exact against the original with the removed channels zeroed."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.compress.structured import prune_channels
from edgekit.errors import ConfigError, UnsupportedModelError

pytestmark = pytest.mark.slow


def _randomise_bn(model, seed=0):
    # Fresh BN layers are the identity; random statistics make the equivalence check bite.
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([rng.uniform(0.5, 1.5, size=w.shape).astype(np.float32) for w in layer.get_weights()])


def _zero_removed(tf_keras, model, plan):
    """A copy of ``model`` whose removed channels output exactly zero everywhere (no structural change).

    Producers: removed filters and biases zeroed. BatchNormalization: beta and
    moving mean zeroed on removed inputs, so BN(0) = 0. DepthwiseConv2D: bias
    zeroed, so DW(0) = 0. ReLU/pooling/Add/Concatenate keep zeros zero, and a
    zero input channel contributes nothing downstream: so this model must
    compute what the pruned one does.
    """
    m = tf_keras.models.clone_model(model)
    m.set_weights(model.get_weights())
    for layer in m.layers:
        if layer.name not in plan.layers:
            continue
        keep_in, keep_out = plan.layers[layer.name]
        kind = type(layer).__name__
        w = layer.get_weights()
        if kind in ("Conv2D", "Dense", "SeparableConv2D") and keep_out is not None:
            k = 1 if kind == "SeparableConv2D" else 0
            removed = np.setdiff1d(np.arange(w[k].shape[-1]), keep_out)
            w[k][..., removed] = 0
            if len(w) > k + 1:
                w[k + 1][removed] = 0
        elif kind == "BatchNormalization" and keep_in is not None:
            removed = np.setdiff1d(np.arange(w[0].shape[0]), keep_in)
            w[1][removed] = 0  # beta
            w[2][removed] = 0  # moving mean
        elif kind == "DepthwiseConv2D" and keep_in is not None and len(w) > 1:
            removed = np.setdiff1d(np.arange(w[1].shape[0]), keep_in)
            w[1][removed] = 0
        layer.set_weights(w)
    return m


def _assert_exact(tf_keras, model, small, plan, shape, seed=0):
    x = np.random.default_rng(seed).uniform(size=(3, *shape)).astype(np.float32)
    want = _zero_removed(tf_keras, model, plan)(x).numpy()
    got = small(x).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # ... and the pruning did change the function (channels with signal were removed).
    assert not np.allclose(model(x).numpy(), got, atol=1e-6)


def test_digits_cnn_is_physically_smaller_and_exact(tf_keras):
    from edgekit.example import build_digits_cnn

    tf_keras.utils.set_random_seed(1)
    model = build_digits_cnn(tf_keras)
    before = model.get_weights()
    small, report, plan = prune_channels(model, 0.5)
    assert [w.shape for w in model.get_weights()] == [w.shape for w in before]  # the input model is untouched
    assert [l.filters for l in small.layers if type(l).__name__ == "Conv2D"] == [16, 32, 32]
    dense = [l for l in small.layers if type(l).__name__ == "Dense"]
    assert dense[0].units == 32 and dense[-1].units == 10  # the classifier keeps its classes
    assert dense[0].kernel.shape[0] == 3 * 3 * 32  # Flatten rows follow the removed channels
    assert report.params_after < report.params_before and report.macs_after < report.macs_before / 3
    assert small.count_params() == report.params_after
    assert any(g.kept_whole and "softmax" in g.kept_whole for g in report.groups)
    _assert_exact(tf_keras, model, small, plan, (28, 28, 1))


def test_l2_ranking_keeps_the_strongest_filters(tf_keras):
    inp = tf_keras.Input((8, 8, 2))
    x = tf_keras.layers.Conv2D(4, 1, use_bias=False, name="c")(inp)
    out = tf_keras.layers.Dense(2, name="head")(tf_keras.layers.GlobalAveragePooling2D()(x))
    model = tf_keras.Model(inp, out)
    k = np.zeros((1, 1, 2, 4), np.float32)
    k[0, 0, :, 0], k[0, 0, :, 1], k[0, 0, :, 2], k[0, 0, :, 3] = [3, 0], [0.1, 0.1], [0, 2], [1, 1]
    model.get_layer("c").set_weights([k])
    _, _, plan = prune_channels(model, 0.5, norm="l2")
    assert plan.layers["c"][1].tolist() == [0, 2]


def test_add_concatenate_depthwise_and_squeeze_excite_are_coupled_correctly(tf_keras):
    L = tf_keras.layers
    tf_keras.utils.set_random_seed(2)
    inp = tf_keras.Input((12, 12, 3))
    a = L.Conv2D(8, 3, padding="same", activation="relu", name="a")(inp)
    b = L.BatchNormalization(name="b_bn")(L.Conv2D(8, 1, name="b")(inp))
    added = L.Add(name="add")([a, b])  # a and b: one coupled group
    c = L.Conv2D(6, 1, name="c")(inp)
    cat = L.Concatenate(name="cat")([added, c])  # 8 + 6 channels, offsets matter downstream
    d = L.ReLU(6.0)(L.BatchNormalization(name="dw_bn")(L.DepthwiseConv2D(3, padding="same", name="dw")(cat)))
    e = L.Conv2D(10, 1, name="e")(d)
    se = L.Reshape((1, 1, 10), name="se_reshape")(L.GlobalAveragePooling2D()(e))
    se = L.Conv2D(10, 1, activation="sigmoid", name="se_expand")(L.Conv2D(4, 1, activation="relu", name="se_reduce")(se))
    scaled = L.Multiply(name="se_scale")([e, se])  # e and se_expand: one coupled group
    f = L.SeparableConv2D(12, 3, name="sep")(scaled)
    out = L.Dense(3, activation="softmax", name="head")(L.Dense(9, activation="relu", name="fc")(L.Flatten()(f)))
    model = tf_keras.Model(inp, out)
    _randomise_bn(model)

    small, report, plan = prune_channels(model, 0.5)
    groups = {tuple(sorted(g.producers)): g for g in report.groups}
    assert groups[("a", "b")].coupled and groups[("a", "b")].channels_after == 4
    assert groups[("e", "se_expand")].coupled and groups[("e", "se_expand")].channels_after == 5
    assert small.get_layer("se_reshape").output_shape[-1] == 5
    keep_dw = plan.layers["dw"][0]
    keep_ab, keep_c = plan.layers["a"][1], plan.layers["c"][1]
    assert keep_dw.tolist() == keep_ab.tolist() + (keep_c + 8).tolist()  # Concatenate offsets
    _assert_exact(tf_keras, model, small, plan, (12, 12, 3))


def test_mobilenet_v2_prunes_converts_to_int8_and_runs_in_the_interpreter(tf_keras, tmp_path):
    from edgekit.compile.check import load_interpreter
    from edgekit.compile.convert import convert_model
    from edgekit.profiles import get_target
    from edgekit.runtime.tensors import run_batch

    tf_keras.utils.set_random_seed(3)
    model = tf_keras.applications.MobileNetV2(alpha=0.35, weights=None, input_shape=(96, 96, 3), classes=10)
    _randomise_bn(model)
    small, report, plan = prune_channels(model, 0.5)
    assert report.params_after < 0.6 * report.params_before
    assert report.macs_reduction > 2.5
    coupled = [g for g in report.groups if g.coupled]
    assert coupled and all(g.channels_after < g.channels_before for g in coupled)  # residual stages were pruned together
    _assert_exact(tf_keras, model, small, plan, (96, 96, 3))

    rep = np.random.default_rng(0).uniform(-1, 1, size=(8, 96, 96, 3)).astype(np.float32)
    converted = convert_model(small, get_target("cpu"), rep)
    path = tmp_path / "small.tflite"
    path.write_bytes(converted.content)
    interp = load_interpreter(path, target="cpu")
    assert interp.get_input_details()[0]["dtype"] == np.int8
    out = run_batch(interp, rep[:2])
    assert out.shape == (2, 10) and np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=0.05)


def test_bad_ratio_and_unprunable_models_are_clear_errors(tf_keras):
    inp = tf_keras.Input((4,))
    only_head = tf_keras.Model(inp, tf_keras.layers.Dense(3, activation="softmax")(inp))
    for ratio in (0, 1, -0.2, 1.5, True):
        with pytest.raises(ConfigError, match="structured="):
            prune_channels(only_head, ratio)
    with pytest.raises(ConfigError, match="no channels it can remove"):
        prune_channels(only_head, 0.5)

    class Sub(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.d = tf_keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.zeros((1, 4), np.float32))
    with pytest.raises(UnsupportedModelError, match="subclassed"):
        prune_channels(sub, 0.5)


def test_a_layer_it_cannot_slice_keeps_its_channels_whole(tf_keras):
    L = tf_keras.layers
    inp = tf_keras.Input((6, 6, 2))
    a = L.Conv2D(8, 1, name="a")(inp)
    norm = L.LayerNormalization(name="ln")(a)  # normalises across channels: removing some would change the rest
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(L.Conv2D(8, 1, name="b")(norm)))
    model = tf_keras.Model(inp, out)
    small, report, plan = prune_channels(model, 0.5)
    groups = {tuple(g.producers): g for g in report.groups}
    assert groups[("a",)].channels_after == 8 and "ln (LayerNormalization)" in groups[("a",)].kept_whole
    assert groups[("b",)].channels_after == 4
    _assert_exact(tf_keras, model, small, plan, (6, 6, 2))
