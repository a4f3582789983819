"""Per-layer structure of a tf_keras model: output shapes, parameters, MACs.

MACs count multiply-accumulates for one image (batch 1). Layers that only
move or rescale data (pooling, BN, activations, Add) are counted as 0 MACs,
as TFLite's benchmark tools and most papers do.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


@dataclass
class LayerStats:
    name: str
    type: str
    output_shape: list[Any]
    params: int
    macs: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shape(s: Any) -> list[Any]:
    # Multi-input/-output layers report a list of shapes; the first is representative.
    if isinstance(s, list) and s and isinstance(s[0], (list, tuple)):
        s = s[0]
    return [None if d is None else int(d) for d in s] if s is not None else []


def layer_macs(layer: Any) -> int:
    """Multiply-accumulates of one layer for batch 1."""
    kind = type(layer).__name__
    out = _shape(layer.output_shape)
    inp = _shape(layer.input_shape) if hasattr(layer, "input_shape") else []
    spatial = int(np.prod([d for d in out[1:-1] if d is not None])) if len(out) > 2 else 1
    if kind == "Conv2D":
        kh, kw = layer.kernel_size
        cin = inp[-1] // getattr(layer, "groups", 1)
        return spatial * out[-1] * kh * kw * cin
    if kind == "DepthwiseConv2D":
        kh, kw = layer.kernel_size
        return spatial * out[-1] * kh * kw
    if kind == "SeparableConv2D":
        kh, kw = layer.kernel_size
        depth = inp[-1] * layer.depth_multiplier
        return spatial * depth * kh * kw + spatial * depth * out[-1]
    if kind == "Dense":
        return spatial * inp[-1] * out[-1]
    return 0


def layer_stats(model: Any) -> list[LayerStats]:
    """One row per layer, in graph order."""
    rows = []
    for layer in model.layers:
        rows.append(
            LayerStats(
                name=layer.name,
                type=type(layer).__name__,
                output_shape=_shape(layer.output_shape),
                params=int(layer.count_params()),
                macs=int(layer_macs(layer)),
            )
        )
    return rows
