"""Per-layer structure of a tf_keras model: output shapes, parameters, MACs.

MACs count multiply-accumulates for one image (batch 1), by the formula in
the layer's :mod:`edgekit.intake.registry` row. Layers that only move or
rescale data (pooling, BN, activations, Add) are counted as 0 MACs, as
TFLite's benchmark tools and most papers do.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgekit.intake import registry as reg


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
    """Multiply-accumulates of one layer for batch 1 (the registry row's formula; 0 without one)."""
    spec = reg.lookup(type(layer).__name__)
    if spec is None or spec.macs is None:
        return 0
    out, inp = _io_shapes(layer)
    return int(spec.macs(layer.get_config(), inp, out))


def _io_shapes(layer: Any) -> tuple[list[Any], list[Any]]:
    # tf_keras layers have output_shape/input_shape; Keras 3 layers (the no-bridge path) only their tensors.
    if hasattr(layer, "output_shape"):
        return _shape(layer.output_shape), _shape(layer.input_shape) if hasattr(layer, "input_shape") else []
    out = layer.output
    inp = layer.input
    out = out[0] if isinstance(out, (list, tuple)) else out
    inp = inp[0] if isinstance(inp, (list, tuple)) else inp
    return _shape(list(out.shape)), _shape(list(inp.shape))


def layer_stats(model: Any) -> list[LayerStats]:
    """One row per layer, in graph order."""
    rows = []
    for layer in model.layers:
        rows.append(
            LayerStats(
                name=layer.name,
                type=type(layer).__name__,
                output_shape=_io_shapes(layer)[0],
                params=int(layer.count_params()),
                macs=int(layer_macs(layer)),
            )
        )
    return rows
