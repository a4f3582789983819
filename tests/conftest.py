"""Shared fixtures: small real models saved in each format edgekit accepts."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


@pytest.fixture(scope="session")
def keras3():
    from edgekit._tf import keras3 as _keras3

    return _keras3()


@pytest.fixture(scope="session")
def tf_keras():
    from edgekit._tf import tf_keras as _tf_keras

    return _tf_keras()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def keras3_cnn_path(keras3, model_dir):
    """The example architecture (untrained), saved as a Keras 3 .keras file."""
    from edgekit.example import build_digits_cnn

    keras3.utils.set_random_seed(0)
    model = build_digits_cnn(keras3)
    path = model_dir / "cnn_k3.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def tf_keras_cnn(tf_keras):
    from edgekit.example import build_digits_cnn

    tf_keras.utils.set_random_seed(0)
    return build_digits_cnn(tf_keras)


@pytest.fixture(scope="session")
def tf_keras_h5_path(tf_keras_cnn, model_dir):
    path = model_dir / "cnn_tfk.h5"
    tf_keras_cnn.save(path)
    return path


@pytest.fixture(scope="session")
def savedmodel_path(tf_keras_cnn, model_dir):
    from edgekit._tf import quiet_native_logs

    path = model_dir / "cnn_savedmodel"
    with quiet_native_logs():
        tf_keras_cnn.save(path, save_format="tf")
    return path


@pytest.fixture(scope="session")
def trained_example(tmp_path_factory):
    """The bundled example, trained once per session (about 5 s on 2 cores)."""
    from edgekit.example import train_example

    return train_example(tmp_path_factory.mktemp("example") / "digits_cnn.keras")
