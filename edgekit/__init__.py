"""edgekit: from a trained Keras CNN to a verified, benchmarked artifact per edge device.

The public API is imported lazily so that ``import edgekit`` (and the CLI's
``--help``) never pulls in TensorFlow::

    import edgekit
    loaded = edgekit.load_model("model.keras")
    print(loaded.input_shape, loaded.source_info())
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it; resolved on first attribute access.
_LAZY = {
    "load_model": "edgekit.intake",
    "LoadedModel": "edgekit.intake",
    "inspect_model": "edgekit.intake",
    "PreprocessSpec": "edgekit.preprocess",
    "load_dataset": "edgekit.data",
    "split_dataset": "edgekit.data",
    "train_example": "edgekit.example",
    "compress": "edgekit.compress",
    "Recipe": "edgekit.compress",
    "build_bundle": "edgekit.compile",
    "load_bundle": "edgekit.bundle",
    "verify_bundle": "edgekit.bundle",
    "Predictor": "edgekit.runtime",
    "deploy": "edgekit.runtime",
    "run_bench": "edgekit.bench",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
