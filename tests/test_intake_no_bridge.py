"""Models the bridge cannot rebuild still compress: the Keras 3 model is converted with calibration-only int8."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from edgekit.cli import app
from edgekit.errors import ConfigError, UnsupportedModelError
from edgekit.resources import digits_dir

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def custom_model(keras3, tmp_path_factory):
    """A digits CNN with a custom (registered) Keras 3 layer, as a user allowed by --allow-unsafe has."""
    from edgekit.data import load_digits
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.example import spec_path_for

    @keras3.saving.register_keras_serializable(package="edgekit_tests")
    class Gain(keras3.layers.Layer):
        def call(self, x):
            return x * 1.5

    L = keras3.layers
    keras3.utils.set_random_seed(0)
    inp = keras3.Input((28, 28, 1))
    x = L.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = Gain(name="gain")(x)
    x = L.GlobalAveragePooling2D()(L.Conv2D(16, 3, activation="relu")(x))
    model = keras3.Model(inp, L.Dense(10, activation="softmax")(x), name="custom_digits")
    ds = load_digits()
    model.compile(optimizer=keras3.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(ds.x, ds.y, epochs=10, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("nobridge") / "custom.keras"
    model.save(path)
    spec_path_for(path).write_text(json.dumps({"preprocess": DIGITS_SPEC.to_dict(), "labels": ds.class_names}))
    return path


def test_load_without_bridge_names_the_layer(custom_model):
    from edgekit.intake import load_model

    with pytest.raises(UnsupportedModelError, match="'gain'"):
        load_model(custom_model, allow_unsafe=True)  # inspect's strict load
    loaded = load_model(custom_model, allow_unsafe=True, require_bridge=False)
    assert not loaded.bridged and "'gain'" in loaded.bridge_blocker
    assert type(loaded.model).__module__.startswith("keras")


def test_default_recipe_converts_the_keras3_model(custom_model, tmp_path):
    from edgekit.bundle import load_bundle, verify_bundle
    from edgekit.compress import compress

    result = compress(custom_model, digits_dir(), tmp_path / "bundle", allow_unsafe=True, targets=["cpu", "edgetpu"],
                      overrides={"calibration_samples": 40, "max_accuracy_drop": 50.0}, progress=False)  # fmt: skip
    assert verify_bundle(result.bundle).ok
    line = next(n for n in result.notes if "need the tf_keras bridge" in n)
    assert "'gain'" in line and "calibration-only int8" in line
    assert result.reports["qat"] is None and not result.recipe.qat
    m = load_bundle(result.bundle).manifest
    assert {a.target for a in m.artifacts} >= {"cpu", "edgetpu"}
    assert "'gain'" in m.source_model["bridge_blocker"]
    float_top1 = result.variants[0]["top1"]
    int8 = next(v for v in result.variants if v["variant"].startswith("cpu int8"))
    assert float_top1 > 0.5, result.variants
    assert abs(int8["top1"] - float_top1) < 0.1, result.variants


def test_pruning_or_explicit_qat_is_refused_with_the_layer(custom_model, tmp_path):
    from edgekit.compress import compress

    with pytest.raises(ConfigError, match=r"need the tf_keras bridge.*'gain'.*sparsity"):
        compress(custom_model, digits_dir(), tmp_path / "b1", allow_unsafe=True, overrides={"sparsity": 0.5}, progress=False)
    r = runner.invoke(app, ["compress", str(custom_model), "--data", str(digits_dir()), "--out", str(tmp_path / "b2"), "--allow-unsafe", "--qat"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "'gain'" in lines[0] and "qat" in lines[0]
    assert not (tmp_path / "b2").exists()
