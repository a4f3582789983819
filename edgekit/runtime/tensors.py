"""Moving numbers in and out of a (possibly quantized) TFLite tensor.

Shared by the build side's evaluation and the device pipeline, so an artifact
is scored exactly the way it will run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.metrics import class_probabilities, softmax  # noqa: F401 - re-exported: the device's output rule


@dataclass(frozen=True)
class TensorInfo:
    """What the pipeline needs to know about one input or output tensor."""

    name: str
    index: int
    shape: tuple[int, ...]
    dtype: str  # numpy dtype name: float32, float16, int8, uint8
    scale: float  # 0.0 when not quantized
    zero_point: int

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and self.dtype in ("int8", "uint8", "int16")

    @classmethod
    def from_detail(cls, d: dict[str, Any]) -> "TensorInfo":
        scale, zero = d.get("quantization", (0.0, 0))
        return cls(
            name=str(d["name"]),
            index=int(d["index"]),
            shape=tuple(int(s) for s in d["shape"]),
            dtype=np.dtype(d["dtype"]).name,
            scale=float(scale),
            zero_point=int(zero),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }


def quantize(x: np.ndarray, info: TensorInfo) -> np.ndarray:
    """Float input -> the tensor's dtype, using its scale and zero point."""
    if not info.quantized:
        return np.ascontiguousarray(x, dtype=np.dtype(info.dtype))
    limits = np.iinfo(np.dtype(info.dtype))
    # One temporary, updated in place: this runs on every frame of deploy.
    q = np.divide(x, np.float32(info.scale), dtype=np.float32)
    q += np.float32(info.zero_point)
    np.rint(q, out=q)
    np.clip(q, limits.min, limits.max, out=q)
    return q.astype(info.dtype)


def dequantize(y: np.ndarray, info: TensorInfo) -> np.ndarray:
    """The tensor's values -> float32."""
    if not info.quantized:
        return y.astype(np.float32, copy=False)
    return ((y.astype(np.float32) - info.zero_point) * info.scale).astype(np.float32)


def run_batch(interpreter: Any, x: np.ndarray) -> np.ndarray:
    """Run an allocated single-input, single-output interpreter over ``x``.

    Samples go through one at a time: edge artifacts have batch fixed to 1.

    Returns:
        float32 outputs, shape (N, *output_shape[1:]).
    """
    inp = TensorInfo.from_detail(interpreter.get_input_details()[0])
    out = TensorInfo.from_detail(interpreter.get_output_details()[0])
    results = []
    for sample in x:
        interpreter.set_tensor(inp.index, quantize(sample[None, ...], inp))
        interpreter.invoke()
        results.append(dequantize(interpreter.get_tensor(out.index), out)[0])
    return np.stack(results) if results else np.zeros((0, *out.shape[1:]), np.float32)
