"""Preprocessing cost: a camera frame to the model's float input, and quantizing it."""
from __future__ import annotations

import pytest

from edgekit.preprocess import PreprocessSpec

SPECS = {
    "digits-28x28-gray": PreprocessSpec.from_preset("unit", (28, 28), channels=1),
    "mobilenet-224-rgb": PreprocessSpec.from_preset("symmetric", (224, 224), channels=3),
    "imagenet-224-rgb": PreprocessSpec.from_preset("imagenet", (224, 224), channels=3),
    "binary-150-rgb": PreprocessSpec.from_preset("unit", (150, 150), channels=3),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_preprocess_camera_frame(benchmark, camera_frame, name):
    spec = SPECS[name]
    x = benchmark(spec.apply, camera_frame, input_order="bgr")
    assert x.shape == spec.shape


def test_bundle_preprocess(benchmark, bundle, camera_frame):
    """The bundle's own spec on a 640x480 frame (what deploy does per frame)."""
    spec = PreprocessSpec.from_dict(bundle.manifest.preprocess)
    x = benchmark(spec.apply, camera_frame, input_order="bgr")
    assert x.shape == spec.shape


def test_quantize_input(benchmark, predictor, camera_frame):
    from edgekit.runtime.tensors import quantize

    x = predictor.preprocess(camera_frame)[None, ...]
    q = benchmark(quantize, x, predictor.input)
    assert q.dtype.name == predictor.input.dtype
