"""Magnitude pruning (unstructured, M:N) and QAT with tfmot, on the digits CNN and real digit scans."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.compress.prune import (
    MIN_PRUNE_WEIGHTS,
    UPDATES,
    PruneReport,
    check_sparsity,
    measure_sparsity,
    output_layers,
    overall_sparsity,
    prune_magnitude,
    pruning_schedule,
    select_pruning_wrapper,
)
from edgekit.errors import ConfigError, EdgekitError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits():
    from edgekit.data import load_digits, sample_stratified

    return sample_stratified(load_digits(), 320, seed=0)  # 10 steps per epoch at batch 32: quick, real


@pytest.fixture(scope="module")
def cnn(tf_keras):
    from edgekit.example import build_digits_cnn

    tf_keras.utils.set_random_seed(0)
    return build_digits_cnn(tf_keras)


def test_unstructured_sparsity_lands_within_one_point_per_layer_and_overall(cnn, digits):
    before = [w.copy() for w in cnn.get_weights()]
    pruned, report = prune_magnitude(cnn, digits.x, digits.y, sparsity=0.8, epochs=1)
    assert abs(report.achieved - 0.8) <= 0.01
    measured = measure_sparsity(pruned)
    big = [r for r in measured if r.weights >= MIN_PRUNE_WEIGHTS]
    assert big and all(abs(r.sparsity - 0.8) <= 0.01 for r in big)
    small = [r for r in report.layers if not r.pruned]
    assert small and all("weights" in r.note for r in small)  # the 288- and 640-weight layers stay dense, said why
    total = sum(r.weights for r in measured)
    assert abs(sum(r.zeros for r in measured) / total - 0.8) <= 0.01  # also over every kernel in the model
    assert report.params_after_nonzero < 0.3 * report.params_before
    assert report.macs_after_effective < 0.3 * report.macs_before
    assert report.schedule["end_step"] <= report.schedule["total_steps"] == 10
    assert all(np.array_equal(a, b) for a, b in zip(cnn.get_weights(), before))  # the input model is untouched
    assert not any("prune" in l.name for l in pruned.layers)  # stripped: a plain model


def test_tfmot_defaults_end_at_zero_sparsity_and_the_check_catches_it(cnn, digits, tf_keras):
    """The trap: PolynomialDecay(frequency=100) over a 10-step fine-tune never updates a mask."""
    from edgekit._tf import tfmot
    from edgekit.compress.finetune import copy_model, fine_tune

    mot = tfmot()
    schedule = mot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=0.8, begin_step=0, end_step=1000)
    wrapped = mot.sparsity.keras.prune_low_magnitude(copy_model(cnn), pruning_schedule=schedule)
    fine_tune(wrapped, digits.x, digits.y, epochs=1, batch_size=32, learning_rate=5e-4, output_kind="probabilities",
              callbacks=[mot.sparsity.keras.UpdatePruningStep()])  # fmt: skip
    layers = measure_sparsity(mot.sparsity.keras.strip_pruning(wrapped))
    achieved = overall_sparsity(layers)
    assert achieved < 0.01
    report = PruneReport("unstructured", 0.8, achieved, layers, 0, 0, 0, 0, fine_tune={"steps": 10})
    with pytest.raises(EdgekitError, match=r"achieved 0\.\d% sparsity but 80\.0% was requested"):
        check_sparsity(report)


def test_m_by_n_keeps_at_most_m_nonzeros_in_every_block_of_n(cnn, digits):
    pruned, report = prune_magnitude(cnn, digits.x, digits.y, mn=(2, 4), epochs=1)
    assert report.kind == "m:n" and report.mn == "2:4" and report.achieved == pytest.approx(0.5, abs=0.01)
    checked = 0
    for layer in pruned.layers:
        row = next((r for r in report.layers if r.name == layer.name), None)
        if row is None or not row.pruned:
            continue
        k = layer.get_weights()[0]
        blocks = np.moveaxis(k, -1, 0).reshape(-1, k.shape[-2]).reshape(-1, 4)  # along input channels
        assert np.count_nonzero(blocks, axis=1).max() <= 2
        checked += 1
    assert checked == 3  # the 2nd and 3rd conv and the first dense; the 1st conv has 1 input channel, the head is tiny
    first = report.layers[0]  # the 1-channel input conv
    assert first.type == "Conv2D" and not first.pruned and first.sparsity == 0.0 and first.note


@pytest.fixture(scope="module")
def headed(tf_keras):
    """A digits CNN whose 128->10 head (1,280 weights) is above the tiny-layer bar, behind a Softmax layer."""
    L = tf_keras.layers
    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input((28, 28, 1))
    x = L.Conv2D(8, 3, activation="relu", name="c1")(inp)  # 72 weights: tiny
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(16, 3, activation="relu", name="c2")(x)  # 1,152 weights
    x = L.Flatten()(x)
    x = L.Dense(128, activation="relu", name="hidden")(x)
    x = L.Dense(10, name="head")(x)
    out = L.Softmax(name="probs")(x)
    return tf_keras.Model(inp, out)


def test_output_layer_is_found_behind_weightless_layers(headed, cnn):
    assert output_layers(headed) == {"head"}
    assert output_layers(cnn) == {cnn.layers[-1].name}


def test_output_and_tiny_layers_stay_dense_by_default_and_the_rest_hits_the_target(headed, digits):
    pruned, report = prune_magnitude(headed, digits.x, digits.y, sparsity=0.7, epochs=1)
    rows = {r.name: r for r in measure_sparsity(pruned)}
    notes = {r.name: r for r in report.layers}
    assert rows["head"].zeros == 0 and not notes["head"].pruned and "output layer" in notes["head"].note
    assert rows["c1"].zeros == 0 and not notes["c1"].pruned and "72 weights" in notes["c1"].note
    for name in ("c2", "hidden"):  # what was pruned lands on the target, measured after strip_pruning
        assert notes[name].pruned and abs(rows[name].sparsity - 0.7) <= 0.01, (name, rows[name].sparsity)
    assert abs(report.achieved - 0.7) <= 0.01


def test_recipe_switches_prune_the_output_and_tiny_layers_too(headed, digits):
    pruned, report = prune_magnitude(headed, digits.x, digits.y, sparsity=0.7, epochs=1, prune_output=True, min_weights=0)
    rows = {r.name: r for r in measure_sparsity(pruned)}
    assert all(r.pruned for r in report.layers)
    for name in ("c1", "c2", "hidden", "head"):
        assert abs(rows[name].sparsity - 0.7) <= 0.02, (name, rows[name].sparsity)  # c1 has 72 weights: 1 weight = 1.4 points


def test_the_recipe_default_is_the_pruners_default():
    from edgekit.compress.recipe import recipe_defaults

    assert recipe_defaults()["prune_min_weights"] == MIN_PRUNE_WEIGHTS
    assert recipe_defaults()["prune_output_layer"] is False


def test_bad_min_weights_is_refused(headed, digits):
    with pytest.raises(ConfigError, match="min_weights=-1"):
        prune_magnitude(headed, digits.x, digits.y, sparsity=0.5, epochs=1, min_weights=-1)


@pytest.mark.parametrize("zeros", [0.1, 0.79])  # ties at zero, as after an earlier mask update
@pytest.mark.parametrize("sparsity", [0.05, 0.5, 0.8, 0.999])
def test_the_fast_mask_is_tfmots_mask(tf_keras, sparsity, zeros):
    """numpy's selection finds the same threshold and mask as tfmot's full sort."""
    import tensorflow as tf

    from edgekit._tf import tfmot

    tfmot()
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_impl

    wrapper = select_pruning_wrapper()
    layer = wrapper(tf_keras.layers.Dense(37), pruning_schedule=tfmot().sparsity.keras.ConstantSparsity(sparsity, 0))
    layer.build((None, 53))
    rng = np.random.default_rng(1)
    w = rng.standard_normal((53, 37)).astype(np.float32)
    w[rng.random(w.shape) < zeros] = 0.0
    ours = layer.pruning_obj._update_mask(tf.constant(w))
    theirs = pruning_impl.Pruning(
        lambda: tf.constant(1, tf.int64), layer.pruning_vars, layer.pruning_schedule, (1, 1), "AVG"
    )._update_mask(tf.constant(w))
    assert type(layer.pruning_obj).__name__ == "SelectPruning"
    assert float(ours[0]) == float(theirs[0])
    assert np.array_equal(ours[1].numpy(), theirs[1].numpy())


@pytest.mark.parametrize("total", [1, 5, 7, 14, 20, 40, 45, 90, 100, 1000, 60000])
def test_schedule_ramps_over_the_real_steps_with_a_bounded_number_of_mask_updates(total):
    s = pruning_schedule(total)
    updates = (s.end_step - s.begin_step) // s.frequency
    assert 1 <= updates <= UPDATES  # each update costs a selection over every pruned weight
    assert updates >= min(UPDATES, round(0.7 * total)) // 2  # and enough of them for a ramp
    assert 0.5 * total <= s.end_step <= total or total < 3  # the ramp covers most of the fine-tune, then it recovers


def test_frequency_is_derived_from_the_step_count_not_tfmots_default():
    assert pruning_schedule(1000) == pruning_schedule(1000).__class__(1000, 0, 700, 70)
    assert pruning_schedule(7).frequency == 1 and pruning_schedule(7).end_step == 5
    assert pruning_schedule(60000).frequency == 4200  # not 100: 10 selections over 50M weights, not 420


def test_one_of_sparsity_or_mn_is_required(cnn, digits):
    with pytest.raises(ConfigError, match="exactly one"):
        prune_magnitude(cnn, digits.x, digits.y, epochs=1)


def test_pqat_keeps_the_zeros_and_qat_model_converts(cnn, digits):
    from edgekit.compile.convert import convert_model
    from edgekit.compress.qat import quantize_aware
    from edgekit.profiles import get_target

    pruned, report = prune_magnitude(cnn, digits.x, digits.y, sparsity=0.6, epochs=1)
    qmodel, qreport = quantize_aware(pruned, digits.x, digits.y, preserve_sparsity=True, epochs=1)
    assert qreport.scheme == "prune_preserve_8bit"
    assert qreport.sparsity_before > 0.55
    assert qreport.sparsity_after == pytest.approx(qreport.sparsity_before, abs=1e-6)
    assert any(l.name.startswith("quant_") for l in qmodel.layers)
    content = convert_model(qmodel, get_target("cpu"), digits.x[:16]).content
    assert len(content) > 0


def test_layers_tfmot_cannot_quantize_stay_float_and_are_reported(tf_keras, digits):
    from edgekit.compress.qat import quantize_aware

    L = tf_keras.layers
    tf_keras.utils.set_random_seed(0)
    inp = tf_keras.Input((28, 28, 1))
    x = L.Rescaling(2.0, offset=-1.0, name="rescale")(inp)  # no tfmot config: must stay float
    x = L.Conv2D(8, 3, activation="relu")(x)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(10, activation="softmax")(x)
    model = tf_keras.Model(inp, out)
    qmodel, report = quantize_aware(model, digits.x, digits.y, epochs=1)
    assert [f["name"] for f in report.float_layers] == ["rescale"]
    assert "Rescaling" in report.float_layers[0]["reason"]
    assert np.all(np.isfinite(qmodel.predict(digits.x[:4], verbose=0)))
