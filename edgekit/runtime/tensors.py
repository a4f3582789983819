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


# ------------------------------------------------------------ fused uint8 path
#
# For an affine preprocessing spec (scale, mean, std per channel) followed by
# the input tensor's quantization, every uint8 value of every channel maps to
# one number of the tensor's dtype: 256 entries per channel. The tables are
# made by the float path itself (``spec.normalize`` then :func:`quantize`, the
# build side's code) on every value, and each of those operations is one
# float32 step per element, so a lookup is bit-identical to the arithmetic.
# tests/test_preprocess.py and tests/test_runtime_pipeline.py prove it on real
# photographs, for every preset, interpolation, dtype and colour order.

# Dtypes OpenCV's LUT writes (CV_8S, CV_8U, CV_32F); others take the float path.
_LUT_DTYPES = ("int8", "uint8", "float32")


def input_tables(spec: Any, info: TensorInfo) -> np.ndarray:
    """(C, 256) in the input tensor's dtype: ``quantize(spec.normalize(v))`` for each value v of each channel.

    Example:
        >>> from edgekit.preprocess import PreprocessSpec
        >>> spec = PreprocessSpec.from_preset("symmetric", (4, 4))
        >>> info = TensorInfo("x", 0, (1, 4, 4, 3), "int8", 2 / 255, -1)
        >>> input_tables(spec, info)[0, [0, 255]].tolist()
        [-128, 126]
    """
    return quantize(spec.channel_tables(), info)


def dequantize_table(info: TensorInfo) -> np.ndarray | None:
    """float32 (256,): :func:`dequantize` of each byte of a quantized 8-bit tensor, indexed by the byte; else None."""
    if not info.quantized or info.dtype not in ("int8", "uint8"):
        return None
    return dequantize(np.arange(256, dtype=np.uint8).view(info.dtype), info)


def dequantize_bytes(raw: np.ndarray, table: np.ndarray) -> np.ndarray:
    """:func:`dequantize` of a quantized 8-bit tensor by one lookup: a new flat float32 array, no temporaries."""
    return np.take(table, np.ascontiguousarray(raw).view(np.uint8).reshape(-1))


class PixelInput:
    """uint8 image -> the model's input tensor, with one table lookup per value.

    Same result, bit for bit, as ``quantize(spec.apply(image), info)``; used in
    two steps so nothing touches the destination until the image is checked:
    ``prepared = p.prepare(image)`` (may raise :class:`~edgekit.errors.DataError`),
    then ``p.write(prepared, out)`` into the tensor's (H, W, C) memory.

    Resize runs on uint8 pixels as in :meth:`~edgekit.preprocess.PreprocessSpec.pixels`;
    a BGR <-> RGB swap of a 3-channel picture is folded into the lookup, after
    the resize (a 3-channel resize commutes with reordering its channels, so
    this stays exact; the tests check every interpolation).

    Example:
        >>> from edgekit.preprocess import PreprocessSpec
        >>> spec = PreprocessSpec.from_preset("unit", (2, 2))
        >>> p = PixelInput(spec, TensorInfo("x", 0, (1, 2, 2, 3), "uint8", 1 / 255, 0))
        >>> out = np.zeros((2, 2, 3), np.uint8)
        >>> p.write(p.prepare(np.full((4, 4, 3), 7, np.uint8)), out)
        >>> int(out.max())
        7
    """

    def __init__(self, spec: Any, info: TensorInfo):
        self.spec = spec
        self.info = info
        self.dtype = np.dtype(info.dtype)
        self.fused = info.dtype in _LUT_DTYPES
        self.tables = input_tables(spec, info) if self.fused else None
        c = spec.channels
        self._one_table = self.fused and all(np.array_equal(self.tables[0], t) for t in self.tables[1:])
        # A table that is "value + the dtype's minimum" (the input scale and
        # zero point match the spec exactly: unit or raw presets calibrated on
        # the full 0..255 range) is one SIMD byte add instead of a gather.
        self._shift: np.uint8 | None = None
        if self._one_table and self.dtype.itemsize == 1:
            low = int(np.iinfo(self.dtype).min)
            if np.array_equal(self.tables[0].astype(np.int64), np.arange(256) + low):
                self._shift = np.uint8(low % 256)
        self._planes = [np.empty(spec.input_size, dtype=self.dtype) for _ in range(c)] if c > 1 else []
        self._reordered = np.empty(spec.shape, dtype=np.uint8)

    def prepare(self, image: np.ndarray, *, input_order: str = "bgr") -> tuple[np.ndarray, tuple[int, ...]]:
        """Check, colour-convert and resize: (uint8 pixels, which source channel feeds each model channel).

        Raises:
            DataError: not a uint8 image of a supported shape.
            ConfigError: unknown ``input_order``.
        """
        from edgekit.preprocess import INPUT_ORDERS, _check_image, _choice

        spec = self.spec
        _choice("input_order", input_order, INPUT_ORDERS)
        img = _check_image(image)
        if self.fused and spec.channels == 3 and img.ndim == 3 and img.shape[2] == 3:
            # Colour in, colour out: only the channel order can differ. Not for
            # 4 channels: OpenCV's bicubic resize rounds 4-channel rows differently.
            px = spec._resize(img)
            return px, ((0, 1, 2) if input_order == spec.color_order else (2, 1, 0))
        px = spec.pixels(img, input_order=input_order)
        return px, tuple(range(spec.channels))

    def write(self, prepared: tuple[np.ndarray, tuple[int, ...]], out: np.ndarray) -> None:
        """Fill ``out`` (the tensor's (H, W, C) memory, C-contiguous) from :meth:`prepare`'s result."""
        import cv2

        px, source = prepared
        h, w = self.spec.input_size
        if not self.fused:
            out[...] = quantize(self.spec.normalize(px.reshape(self.spec.shape)), self.info)
            return
        identity = source == tuple(range(len(source))) and px.shape[-1] == len(source)
        if self._one_table:
            if not identity:
                # One table for every channel: swap the bytes first (BGR2RGB is
                # its own inverse), then one lookup over the whole image.
                px = _into(cv2.cvtColor(px, cv2.COLOR_BGR2RGB, dst=self._reordered), self._reordered)
            flat_in, flat_out = px.reshape(h, -1), out.reshape(h, -1)
            if self._shift is not None:
                np.add(flat_in, self._shift, out=flat_out.view(np.uint8))
            else:
                _into(cv2.LUT(flat_in, self.tables[0], dst=flat_out), flat_out)
            return
        # One table per channel: split, look each model channel up from its
        # source plane (the reordering costs nothing here), merge into ``out``.
        planes = cv2.split(px) if px.ndim == 3 else [px]
        for m, s in enumerate(source):
            dst = self._planes[m] if len(self._planes) > m else out.reshape(h, w)
            _into(cv2.LUT(planes[s], self.tables[m], dst=dst), dst)
        if self._planes:
            _into(cv2.merge(self._planes, dst=out), out)


def _into(result: np.ndarray, out: np.ndarray) -> np.ndarray:
    # OpenCV writes into ``dst`` and returns that very object when it fits,
    # else returns a new array; never lose a frame to that.
    if result is not out:
        out[...] = result.reshape(out.shape)
    return out
