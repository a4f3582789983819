"""Binary classifiers with a single sigmoid output (Dense(1, activation="sigmoid")), end to end.

Real data: the shipped digit scans, classes 0 and 1 only (class folders sort by
name, so "1" is index 1, the positive class). Real tiny tf_keras CNNs, trained
in seconds; real LiteRT interpreters.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from edgekit.data import check_labels, load_dataset, split_dataset
from edgekit.data.digits import DIGITS_SPEC
from edgekit.errors import ConfigError, DataError
from edgekit.metrics import class_probabilities, classification_metrics, output_classes
from edgekit.resources import digits_dir


@pytest.fixture(scope="module")
def binary_digits(tmp_path_factory):
    """calibration/digits/{0,1} copied to a 2-class image folder."""
    root = tmp_path_factory.mktemp("digits01") / "data"
    for name in ("0", "1"):
        shutil.copytree(digits_dir() / name, root / name)
    return root


# ---------------------------------------------------------------- the shared rule (numpy only)


def test_class_probabilities_single_output_and_softmax_rows():
    logits = np.array([[-3.0], [0.0], [2.0]], np.float32)
    p = class_probabilities(logits, "logits")
    assert p.shape == (3, 2) and np.allclose(p.sum(axis=1), 1.0)
    assert np.allclose(p[:, 1], 1 / (1 + np.exp(-logits[:, 0])))
    assert p[1].tolist() == [0.5, 0.5]
    probs = np.array([0.2, 0.9], np.float32)[:, None]
    assert np.allclose(class_probabilities(probs, "probabilities"), [[0.8, 0.2], [0.1, 0.9]])
    assert class_probabilities(np.array([0.9], np.float32), "probabilities").shape == (2,)  # one row, as the device has
    # extreme logits neither overflow nor give NaN
    assert np.all(np.isfinite(class_probabilities(np.array([[-1e4], [1e4]], np.float32), "logits")))
    # K >= 2: softmax for logits, as they are for probabilities
    z = np.array([[1.0, 2.0, 3.0]], np.float32)
    assert np.allclose(class_probabilities(z, "logits").sum(), 1.0)
    assert np.array_equal(class_probabilities(z, "probabilities"), z)
    assert output_classes(1) == 2 and output_classes(10) == 10
    with pytest.raises(ConfigError, match="Expected output"):
        class_probabilities(z, "sigmoid")
    with pytest.raises(DataError, match="class_probabilities"):
        classification_metrics(np.array([0, 1]), np.array([[0.2], [0.9]]))  # a raw single column is not class scores


# ---------------------------------------------------------------- data checks


def test_check_labels_accepts_one_output_for_two_classes_only(binary_digits):
    ds = load_dataset(binary_digits, DIGITS_SPEC, labelled=True)
    assert ds.class_names == ["0", "1"]
    counts = check_labels(ds, 1)
    assert set(counts) == {"0", "1"} and min(counts.values()) > 100
    assert check_labels(ds, 2) == counts  # two softmax outputs still work


def test_check_labels_refuses_one_output_for_three_classes(tmp_path):
    root = tmp_path / "three"
    for name in ("0", "1", "2"):
        shutil.copytree(digits_dir() / name, root / name)
    ds = load_dataset(root, DIGITS_SPEC, labelled=True)
    with pytest.raises(DataError, match=r"3 classes .* outputs 1 value; expected 2 classes for a single-output"):
        check_labels(ds, 1)


# ---------------------------------------------------------------- models


def _tiny_binary_cnn(keras, activation):
    layers = keras.layers
    return keras.Sequential(
        [
            layers.Input((28, 28, 1)),
            layers.Conv2D(16, 3, strides=2, activation="relu"),
            layers.Conv2D(32, 3, strides=2, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(1, activation=activation),
        ]
    )


def _train_and_save(tf_keras, data, path, *, activation, output):
    ds = load_dataset(data, DIGITS_SPEC, labelled=True)
    train, _ = split_dataset(ds, holdout=0.2, seed=0)
    tf_keras.utils.set_random_seed(0)
    model = _tiny_binary_cnn(tf_keras, activation)
    model.compile(optimizer=tf_keras.optimizers.Adam(1e-2), loss=tf_keras.losses.BinaryCrossentropy(from_logits=activation is None))
    model.fit(train.x, train.y.astype("float32"), epochs=15, batch_size=16, verbose=0)  # confident, so pruning keeps the margin
    model.save(path)
    spec = {**DIGITS_SPEC.to_dict(), "output": output}
    from edgekit.example import spec_path_for

    spec_path_for(path).write_text(json.dumps({"preprocess": spec, "labels": ds.class_names}))
    return path


def _compress(model, data, out, *extra):
    from edgekit.cli import app

    args = ["compress", str(model), "--data", str(data), "--out", str(out), "--targets", "cpu", "--epochs", "2",
            "--calibration-samples", "40", "--json", *extra]  # fmt: skip
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _deploy_matches_build_side(out, data):
    """Deploy's top-k on the held-out split equals the build side's evaluation, sample by sample."""
    from edgekit.bundle import load_bundle
    from edgekit.compile.check import evaluate, load_interpreter
    from edgekit.compress.recipe import Recipe
    from edgekit.runtime import Predictor
    from edgekit.runtime.tensors import run_batch

    bundle = load_bundle(out)
    m = bundle.manifest
    assert m.labels == ["0", "1"]
    entry = next(a for a in m.artifacts if a.target == "cpu")
    assert entry.output["shape"][-1] == 1 and entry.input["dtype"] == "int8"
    assert entry.accuracy["top1"] >= 0.95

    rcp = Recipe()
    ds = load_dataset(data, DIGITS_SPEC, labelled=True)
    _, held = split_dataset(ds, holdout=rcp.holdout, seed=rcp.seed)
    assert entry.accuracy["n"] == len(held.x)

    spec_output = m.preprocess["output"]
    interp = load_interpreter(bundle.path / entry.file, target="cpu")
    build_probs = class_probabilities(run_batch(interp, held.x), spec_output)
    assert evaluate(interp, held.x, held.y, num_classes=2, output=spec_output) == {
        **classification_metrics(held.y, build_probs, num_classes=2)
    }

    p = Predictor.from_bundle(out, target="cpu", top_k=5)
    try:
        preds = [p.predict(x) for x in held.x]
    finally:
        p.close()
    for pred in preds:
        assert len(pred.topk) == 2 and {lab for lab, _ in pred.topk} == {"0", "1"}
        assert sum(s for _, s in pred.topk) == pytest.approx(1.0, abs=1e-6)
    deploy_probs = np.stack([pred.scores for pred in preds])
    np.testing.assert_allclose(deploy_probs, build_probs, rtol=0, atol=1e-6)
    deploy_labels = np.array([m.labels.index(pred.label) for pred in preds])
    assert np.array_equal(deploy_labels, np.argmax(build_probs, axis=1))
    assert float(np.mean(deploy_labels == held.y)) == entry.accuracy["top1"]
    return deploy_probs


@pytest.mark.slow
def test_compress_sigmoid_cnn_builds_an_accurate_int8_bundle_deploy_agrees(tf_keras, binary_digits, tmp_path):
    model = _train_and_save(tf_keras, binary_digits, tmp_path / "sigmoid.h5", activation="sigmoid", output="probabilities")
    payload = _compress(model, binary_digits, tmp_path / "bundle", "--sparsity", "0.3")
    assert payload  # JSON result
    probs = _deploy_matches_build_side(tmp_path / "bundle", binary_digits)
    assert probs.min() >= 0.0 and probs.max() <= 1.0


@pytest.mark.slow
def test_logits_single_output_gets_sigmoid_on_both_sides(tf_keras, binary_digits, tmp_path):
    """Dense(1) without activation and a spec saying output="logits": sigmoid is applied, fine-tuning uses BCE from logits."""
    from edgekit.compile.check import keras_reference

    model = _train_and_save(tf_keras, binary_digits, tmp_path / "logits.h5", activation=None, output="logits")
    raw = keras_reference(tf_keras.models.load_model(model), load_dataset(binary_digits, DIGITS_SPEC).x[:64])
    assert raw.min() < 0.0 or raw.max() > 1.0  # real logits, not probabilities
    _compress(model, binary_digits, tmp_path / "bundle", "--no-qat", "--distill", "--sparsity", "0.3")
    probs = _deploy_matches_build_side(tmp_path / "bundle", binary_digits)
    assert np.all((probs > 0) & (probs < 1))  # squashed by the sigmoid, not raw logits


def test_single_output_spec_that_contradicts_the_values_is_refused():
    from edgekit.compile.check import check_output_kind

    logits = np.array([[-2.5], [3.1], [0.4]], np.float32)
    with pytest.raises(ConfigError, match="single output is not a probability"):
        check_output_kind(logits, "probabilities")
    check_output_kind(logits, "logits")
    check_output_kind(np.array([[0.1], [0.95]], np.float32), "probabilities")


@pytest.mark.slow
def test_sigmoid_model_with_a_logits_spec_is_refused_before_training(tf_keras, binary_digits, tmp_path):
    from edgekit.cli import app

    model = _train_and_save(tf_keras, binary_digits, tmp_path / "sig.h5", activation="sigmoid", output="logits")
    args = ["compress", str(model), "--data", str(binary_digits), "--out", str(tmp_path / "b"), "--targets", "cpu"]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code != 0
    assert "apply sigmoid twice" in " ".join(result.output.split())
    assert not (tmp_path / "b").exists()


def test_build_bundle_refuses_a_sigmoid_model_declared_as_logits(tf_keras, binary_digits, tmp_path):
    """Called directly, build_bundle must catch what compress catches: sigmoid applied twice on the device."""
    from edgekit.compile import build_bundle
    from edgekit.errors import ConfigError
    from edgekit.preprocess import PreprocessSpec

    tf_keras.utils.set_random_seed(0)
    model = _tiny_binary_cnn(tf_keras, "sigmoid")  # untrained: outputs stay in (0, 1), values cannot tell
    ds = load_dataset(binary_digits, DIGITS_SPEC, labelled=True)
    spec = PreprocessSpec.from_dict({**DIGITS_SPEC.to_dict(), "output": "logits"})
    with pytest.raises(ConfigError, match="output='logits'.*single output is probabilities"):
        build_bundle(tmp_path / "b", model=model, spec=spec, labels=ds.class_names, representative=ds.x[:16], targets=["cpu-fp32"], progress=False)
    assert not (tmp_path / "b").exists()


def test_output_kind_is_read_past_reshaping_layers(tf_keras):
    from edgekit.compile.check import model_output_kind

    inp = tf_keras.Input((4, 4, 1))
    x = tf_keras.layers.Flatten()(inp)
    x = tf_keras.layers.Dense(1, activation="sigmoid")(x)
    x = tf_keras.layers.Reshape((1,))(x)
    assert model_output_kind(tf_keras.Model(inp, x)) == "probabilities"
    logits = tf_keras.layers.Dense(1)(tf_keras.layers.Flatten()(inp))
    assert model_output_kind(tf_keras.Model(inp, logits)) == "logits"


def test_float_model_that_is_not_a_model_is_a_one_line_error(tf_keras, binary_digits, tmp_path):
    from edgekit.compile import build_bundle
    from edgekit.errors import ConfigError

    model = _tiny_binary_cnn(tf_keras, "sigmoid")
    ds = load_dataset(binary_digits, DIGITS_SPEC, labelled=True)
    with pytest.raises(ConfigError, match="float_model must be a tf_keras model; received str"):
        build_bundle(tmp_path / "b", model=model, float_model="model.keras", spec=DIGITS_SPEC, labels=ds.class_names, representative=ds.x[:16], targets=["gpu"], progress=False)


def test_output_kind_sees_through_tfmot_wrappers(tf_keras):
    from edgekit._tf import tfmot
    from edgekit.compile.check import model_output_kind

    model = _tiny_binary_cnn(tf_keras, "sigmoid")
    assert model_output_kind(tfmot().quantization.keras.quantize_model(model)) == "probabilities"
    assert model_output_kind(tfmot().quantization.keras.quantize_model(_tiny_binary_cnn(tf_keras, None))) == "logits"
