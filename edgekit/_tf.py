"""Lazy, quiet import of the build-side stack (TensorFlow, tf_keras, tfmot).

tfmot works only with Keras 2, so ``TF_USE_LEGACY_KERAS=1`` must be set before
TensorFlow is first imported; doing it here, in the one place that imports TF,
keeps that invariant. Nothing on the device side may call this module.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
from types import ModuleType
from typing import Iterator

from edgekit.errors import MissingExtraError

_INSTALL = 'pip install "edgekit[compress]"'


def _prepare_env() -> None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    # TF's C++ start-up chatter (CUDA probing, oneDNN notices) buries our output.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Silence C++ log lines (absl/TSL) written straight to fd 2.

    TF 2.21's start-up notices (oneDNN, CUDA probing) and the converter's
    MLIR chatter ignore TF_CPP_MIN_LOG_LEVEL and would bury our one-line
    messages. Python-level exceptions are unaffected: they carry their text.
    Set EDGEKIT_DEBUG=1 to see everything. The redirection is the runtime's
    device-safe one (:func:`edgekit.runtime._native.captured_stderr`).
    """
    if os.environ.get("EDGEKIT_DEBUG"):
        yield
        return
    from edgekit.runtime._native import captured_stderr

    with captured_stderr():
        yield


def tf() -> ModuleType:
    """Return the ``tensorflow`` module, importing it on first use."""
    _prepare_env()
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    try:
        with quiet_native_logs():
            import tensorflow

            # Device discovery (cuInit) logs an error on hosts without CUDA; do it now, quietly.
            tensorflow.config.list_physical_devices()
    except ImportError as e:
        raise MissingExtraError(
            f"TensorFlow is not installed ({e}).", hint=f"Install the build side: {_INSTALL}"
        ) from e
    return tensorflow


def _require(module: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(f"{what} is not installed ({e}).", hint=f"Install the build side: {_INSTALL}") from e


def tf_keras() -> ModuleType:
    """Return ``tf_keras`` (Keras 2), the Keras that tfmot supports."""
    tf()
    return _require("tf_keras", "tf_keras")


def keras3() -> ModuleType:
    """Return Keras 3 (the ``keras`` package), used only to read Keras 3 files."""
    tf()
    keras = _require("keras", "Keras 3 (needed to read Keras 3 .keras files)")
    if not keras.__version__.startswith("3"):
        raise MissingExtraError(
            f"the 'keras' package is version {keras.__version__}, expected 3.x to read Keras 3 files.",
            hint=f"Reinstall the build side: {_INSTALL}",
        )
    return keras


def tfmot() -> ModuleType:
    """Return ``tensorflow_model_optimization``."""
    tf_keras()
    return _require("tensorflow_model_optimization", "tensorflow-model-optimization")
