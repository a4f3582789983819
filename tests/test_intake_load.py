"""load_model on every accepted format, and every bad input as a one-line error."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from edgekit.errors import ModelLoadError, UnsafeModelError, UnsupportedModelError
from edgekit.intake import load_model

EXPECTED_CNN_PARAMS = 93_322  # Conv32 320 + Conv64 18,496 + Conv64 36,928 + Dense64 36,928 + Dense10 650


def test_keras3_file_is_bridged_to_tf_keras(keras3_cnn_path, keras3):
    loaded = load_model(keras3_cnn_path)
    assert loaded.file.flavour == "keras3" and loaded.file.format == "keras_zip"
    assert type(loaded.model).__module__.startswith("tf_keras")
    assert loaded.model.count_params() == EXPECTED_CNN_PARAMS
    assert loaded.bridge is not None and loaded.bridge.max_relative_deviation <= 1e-5
    assert loaded.input_shape == (28, 28, 1) and loaded.num_outputs == 10
    assert len(loaded.sha256) == 64


def test_tf_keras_h5(tf_keras_h5_path):
    loaded = load_model(tf_keras_h5_path)
    assert (loaded.file.flavour, loaded.file.format) == ("tf_keras", "h5")
    assert loaded.bridge is None
    assert loaded.model.count_params() == EXPECTED_CNN_PARAMS


def test_tf_keras_savedmodel(savedmodel_path, tf_keras_cnn):
    loaded = load_model(savedmodel_path)
    assert (loaded.file.flavour, loaded.file.format) == ("tf_keras", "savedmodel")
    x = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded.model(x).numpy(), tf_keras_cnn(x).numpy(), rtol=1e-5, atol=1e-6)


def test_tf_keras_dot_keras(tf_keras_cnn, tmp_path):
    path = tmp_path / "tfk.keras"
    tf_keras_cnn.save(path)
    loaded = load_model(path)
    assert (loaded.file.flavour, loaded.file.format) == ("tf_keras", "keras_zip")
    assert loaded.model.count_params() == EXPECTED_CNN_PARAMS


# --- bad inputs: each one a clear EdgekitError naming the file -----------------


def test_missing_file(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "nope.keras")


def test_truncated_keras(keras3_cnn_path, tmp_path):
    bad = tmp_path / "truncated.keras"
    bad.write_bytes(keras3_cnn_path.read_bytes()[:2000])
    with pytest.raises(ModelLoadError, match="truncated or corrupt") as e:
        load_model(bad)
    assert str(bad) in str(e.value)


def test_corrupt_member(keras3_cnn_path, tmp_path):
    data = bytearray(keras3_cnn_path.read_bytes())
    # Flip bytes inside the weights member (past the local headers), keep the zip directory intact.
    mid = len(data) // 2
    data[mid : mid + 64] = bytes(64)
    bad = tmp_path / "corrupt.keras"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError):
        load_model(bad)


def test_text_file_named_keras(tmp_path):
    bad = tmp_path / "notes.keras"
    bad.write_text("not a model")
    with pytest.raises(ModelLoadError, match="corrupt or truncated"):
        load_model(bad)


def test_zip_that_is_not_a_model(tmp_path):
    bad = tmp_path / "photos.keras"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("a.txt", "hello")
    with pytest.raises(ModelLoadError, match="not a Keras model"):
        load_model(bad)


def test_unknown_file_type(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07onnx")
    with pytest.raises(ModelLoadError, match="not a model file"):
        load_model(bad)


def test_directory_that_is_not_a_savedmodel(tmp_path):
    with pytest.raises(ModelLoadError, match="not a SavedModel"):
        load_model(tmp_path)


def test_savedmodel_without_keras_metadata(tmp_path):
    from edgekit._tf import quiet_native_logs, tf

    tfm = tf()

    class Plain(tfm.Module):
        @tfm.function(input_signature=[tfm.TensorSpec([1, 4], tfm.float32)])
        def __call__(self, x):
            return x * 2.0

    with quiet_native_logs():
        tfm.saved_model.save(Plain(), str(tmp_path / "plain"))
    with pytest.raises(ModelLoadError, match="no Keras metadata"):
        load_model(tmp_path / "plain")


def test_weights_only_h5(tf_keras_cnn, tmp_path):
    path = tmp_path / "w.weights.h5"
    tf_keras_cnn.save_weights(path)
    with pytest.raises(ModelLoadError, match="weights-only"):
        load_model(path)


def test_lambda_refused_keras3(keras3, tmp_path):
    inp = keras3.Input((8, 8, 1))
    out = keras3.layers.Lambda(lambda t: t * 2.0, name="double")(inp)
    path = tmp_path / "lambda.keras"
    keras3.Model(inp, keras3.layers.Flatten()(out)).save(path)
    with pytest.raises(UnsafeModelError, match=r"'double'.*--allow-unsafe"):
        load_model(path)


def test_lambda_refused_tf_keras_h5(tf_keras, tmp_path):
    inp = tf_keras.Input((8, 8, 1))
    out = tf_keras.layers.Lambda(lambda t: t * 2.0, name="double")(inp)
    path = tmp_path / "lambda.h5"
    tf_keras.Model(inp, tf_keras.layers.Flatten()(out)).save(path)
    with pytest.raises(UnsafeModelError, match="'double'"):
        load_model(path)


def test_lambda_allowed_with_flag(keras3, tmp_path):
    inp = keras3.Input((8, 8, 1))
    x = keras3.layers.Lambda(lambda t: t * 2.0, name="double")(inp)
    path = tmp_path / "lambda_ok.keras"
    keras3.Model(inp, keras3.layers.Dense(3)(keras3.layers.Flatten()(x))).save(path)
    loaded = load_model(path, allow_unsafe=True)
    assert any("double" in n for n in loaded.notes)


def test_custom_layer_refused(keras3, tmp_path):
    @keras3.saving.register_keras_serializable(package="acme")
    class Scale(keras3.layers.Layer):
        def call(self, x):
            return x * 3.0

    inp = keras3.Input((8, 8, 1))
    path = tmp_path / "custom.keras"
    keras3.Model(inp, keras3.layers.Flatten()(Scale(name="scale3")(inp))).save(path)
    with pytest.raises(UnsafeModelError, match="scale3.*custom class"):
        load_model(path)


def test_unsupported_layer_named(keras3, tmp_path):
    inp = keras3.Input((8, 8, 1))
    x = keras3.layers.RandomCrop(4, 4, name="crop")(inp)  # not a no-op: it center-crops at inference
    path = tmp_path / "randomcrop.keras"
    keras3.Model(inp, keras3.layers.Flatten()(x)).save(path)
    with pytest.raises(UnsupportedModelError, match="'crop'.*RandomCrop"):
        load_model(path)


def test_input_without_fixed_height_width(keras3, tmp_path):
    inp = keras3.Input((None, None, 3))
    x = keras3.layers.Conv2D(4, 3)(inp)
    path = tmp_path / "dynamic.keras"
    keras3.Model(inp, keras3.layers.GlobalAveragePooling2D()(x)).save(path)
    with pytest.raises(UnsupportedModelError, match="fixed height, width"):
        load_model(path)


def test_h5_with_corrupt_config(tf_keras_h5_path, tmp_path):
    import shutil

    import h5py

    bad = tmp_path / "badconfig.h5"
    shutil.copy(tf_keras_h5_path, bad)
    with h5py.File(bad, "r+") as f:
        f.attrs["model_config"] = '{"class_name": "Sequential", "config": {'
    with pytest.raises(ModelLoadError, match="model_config attribute is not valid JSON"):
        load_model(bad)


def test_savedmodel_hash_covers_weights(savedmodel_path, tmp_path):
    import shutil

    copy = tmp_path / "sm_copy"
    shutil.copytree(savedmodel_path, copy)
    from edgekit.intake.load import _sha256

    first = load_model(copy).sha256
    assert first == _sha256(copy)
    weights = next((copy / "variables").glob("variables.data-*"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # other weights, same graph file
    weights.write_bytes(bytes(data))
    assert _sha256(copy) != first
