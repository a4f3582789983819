"""The one preprocessing implementation, shared by the build side and the device.

A :class:`PreprocessSpec` says how a uint8 picture becomes the float tensor the
model was trained on: colour order, resize method, scale, mean and std. The
build side stores ``spec.to_dict()`` in the bundle manifest and the device
rebuilds it with :meth:`PreprocessSpec.from_dict`, so both run *this* code on
the same numbers. That is why this module imports only numpy and OpenCV (lazily)
and never TensorFlow.

To add a named normalisation, add one row to ``_PRESETS`` below; the tests are
parametrized over :func:`list_presets`, so it is under test at once.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from edgekit.errors import ConfigError, DataError

COLOR_ORDERS = ("rgb", "bgr", "gray")
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")
OUTPUTS = ("logits", "probabilities")
# Keras (and so every .tflite we convert) is channels-last; NCHW would need a
# transpose that the runtime does not do.
LAYOUTS = ("nhwc",)
INPUT_ORDERS = ("bgr", "rgb")

# Only the *_EXACT variants are bit-exact across CPUs (x86 SIMD vs ARM NEON) for
# uint8 images, which is what lets a Raspberry Pi reproduce the build machine.
# INTER_NEAREST_EXACT also samples pixel centres, as PIL and tf.image do.
_CV2_FLAGS = {
    "nearest": "INTER_NEAREST_EXACT",
    "bilinear": "INTER_LINEAR_EXACT",
    "bicubic": "INTER_CUBIC",
    "area": "INTER_AREA",
}


@dataclass(frozen=True)
class _Preset:
    scale: float
    mean_rgb: tuple[float, ...]  # one value, or one per channel in R, G, B order
    std_rgb: tuple[float, ...]
    about: str


_PRESETS: dict[str, _Preset] = {
    "unit": _Preset(1 / 255, (0.0,), (1.0,), "x / 255 -> [0, 1]"),
    "raw": _Preset(1.0, (0.0,), (1.0,), "x as float -> [0, 255] (the model rescales itself)"),
    "symmetric": _Preset(1 / 127.5, (1.0,), (1.0,), "x / 127.5 - 1 -> [-1, 1] (MobileNet style)"),
    "imagenet": _Preset(
        1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "(x / 255 - ImageNet mean) / ImageNet std"
    ),
}


def list_presets() -> dict[str, str]:
    """Names of the normalisation presets and what each does, in a fixed order."""
    return {name: p.about for name, p in _PRESETS.items()}


def _preset_values(name: str, channels: int, color_order: str) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    p = _PRESETS[name]
    if len(p.mean_rgb) == 1:
        return p.scale, p.mean_rgb, p.std_rgb
    if channels != 3:
        raise ConfigError(
            f"preset {name!r} has one mean/std per RGB channel; expected channels=3, received channels={channels}.",
            hint=f"Use a single-value preset ({', '.join(n for n, q in _PRESETS.items() if len(q.mean_rgb) == 1)}) "
            "or give mean/std yourself.",
        )
    if color_order == "bgr":
        return p.scale, p.mean_rgb[::-1], p.std_rgb[::-1]
    return p.scale, p.mean_rgb, p.std_rgb


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _choice(field_name: str, value: Any, allowed: Sequence[str]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(
            f"preprocess {field_name}={value!r} is not valid; expected one of: {', '.join(allowed)}."
        )


def _number(field_name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"preprocess {field_name}={value!r} is not valid; expected a number.")
    x = float(value)
    if not math.isfinite(x):
        raise ConfigError(f"preprocess {field_name}={value!r} is not valid; expected a finite number.")
    return x


def _floats(field_name: str, value: Any, channels: int) -> tuple[float, ...]:
    items = [value] if isinstance(value, (int, float, np.integer, np.floating)) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, (list, tuple, np.ndarray)):
        raise ConfigError(
            f"preprocess {field_name}={value!r} is not valid; expected a number or a list of 1 or {channels} numbers."
        )
    out = tuple(_number(field_name, v) for v in items)
    if len(out) not in (1, channels):
        raise ConfigError(
            f"preprocess {field_name} has {len(out)} values {list(out)}; expected 1 or {channels} "
            f"(one per model channel, in the model's colour order)."
        )
    return out


@dataclass(frozen=True)
class PreprocessSpec:
    """How one uint8 picture becomes the model's float input.

    ``pixel * scale``, then ``(x - mean) / std`` per channel, all in float32;
    ``mean`` and ``std`` are in the model's colour order.

    Example:
        >>> spec = PreprocessSpec.from_preset("unit", (28, 28), channels=1)
        >>> spec.apply(np.zeros((8, 8), np.uint8)).shape
        (28, 28, 1)

    Raises:
        ConfigError: a field has a wrong type or value (the message names it).
    """

    # What the model takes.
    input_size: tuple[int, int]  # (height, width)
    channels: int = 3  # 1 or 3
    color_order: str = "rgb"  # "rgb" | "bgr" | "gray": channel order the MODEL expects
    interpolation: str = "bilinear"  # "nearest" | "bilinear" | "bicubic" | "area"
    # How pixels become numbers.
    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    preset: str | None = None  # the preset these numbers came from, for humans; checked against them
    # What the model gives back and how tensors are laid out.
    output: str = "probabilities"  # "logits" | "probabilities"
    layout: str = "nhwc"

    def __post_init__(self) -> None:
        # Lists (from JSON) become tuples so the spec stays hashable and comparable.
        size = self.input_size
        if (
            not isinstance(size, (list, tuple))
            or len(size) != 2
            or not all(_is_int(s) and s > 0 for s in size)
        ):
            raise ConfigError(
                f"preprocess input_size={size!r} is not valid; expected (height, width), two positive integers."
            )
        object.__setattr__(self, "input_size", (int(size[0]), int(size[1])))

        if not _is_int(self.channels) or self.channels not in (1, 3):
            raise ConfigError(f"preprocess channels={self.channels!r} is not valid; expected 1 or 3.")
        object.__setattr__(self, "channels", int(self.channels))
        _choice("color_order", self.color_order, COLOR_ORDERS)
        if (self.channels == 1) != (self.color_order == "gray"):
            raise ConfigError(
                f"preprocess color_order={self.color_order!r} does not fit channels={self.channels}; "
                "expected color_order='gray' with channels=1, and 'rgb' or 'bgr' with channels=3."
            )
        _choice("interpolation", self.interpolation, INTERPOLATIONS)

        scale = _number("scale", self.scale)
        if scale <= 0:
            raise ConfigError(f"preprocess scale={self.scale!r} is not valid; expected a number > 0.")
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "mean", _floats("mean", self.mean, self.channels))
        std = _floats("std", self.std, self.channels)
        if any(s <= 0 for s in std):
            raise ConfigError(f"preprocess std={list(std)} is not valid; expected every value > 0.")
        object.__setattr__(self, "std", std)

        if self.preset is not None:
            _choice("preset", self.preset, tuple(_PRESETS))
            self._check_preset()
        _choice("output", self.output, OUTPUTS)
        _choice("layout", self.layout, LAYOUTS)

    def _check_preset(self) -> None:
        # A preset name that contradicts the numbers would mislead whoever reads
        # the manifest, so refuse rather than trust either one.
        scale, mean, std = _preset_values(str(self.preset), self.channels, self.color_order)
        same = math.isclose(scale, self.scale, rel_tol=1e-9) and all(
            len(a) == len(b) and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for x, y in zip(a, b))
            for a, b in ((mean, self.mean), (std, self.std))
        )
        if not same:
            raise ConfigError(
                f"preprocess preset={self.preset!r} means scale={scale!r}, mean={list(mean)}, std={list(std)}; "
                f"received scale={self.scale!r}, mean={list(self.mean)}, std={list(self.std)}.",
                hint=f"Build it with PreprocessSpec.from_preset({self.preset!r}, ...), or set preset=None for custom values.",
            )

    # ----------------------------------------------------------- construction

    @classmethod
    def from_preset(
        cls,
        name: str,
        input_size: tuple[int, int],
        channels: int = 3,
        output: str = "probabilities",
        *,
        color_order: str | None = None,
        interpolation: str = "bilinear",
    ) -> "PreprocessSpec":
        """A spec whose scale/mean/std come from a named preset (see :func:`list_presets`).

        Args:
            name: "unit" (x/255), "raw" (0..255), "symmetric" ([-1, 1]) or "imagenet".
            input_size: (height, width) of the model input.
            channels: 1 or 3.
            output: "logits" or "probabilities".
            color_order: the model's channel order; default "gray" for 1 channel, else "rgb".
            interpolation: resize method.

        Returns:
            A validated spec with ``preset`` set to ``name``.

        Raises:
            ConfigError: unknown preset (lists the valid ones) or an invalid field.

        Example:
            >>> PreprocessSpec.from_preset("symmetric", (96, 96)).mean
            (1.0,)
        """
        if not isinstance(name, str) or name not in _PRESETS:
            raise ConfigError(f"unknown preprocess preset {name!r}; expected one of: {', '.join(_PRESETS)}.")
        if color_order is None:
            color_order = "gray" if channels == 1 else "rgb"
        _choice("color_order", color_order, COLOR_ORDERS)
        if not _is_int(channels) or channels not in (1, 3):
            raise ConfigError(f"preprocess channels={channels!r} is not valid; expected 1 or 3.")
        scale, mean, std = _preset_values(name, channels, color_order)
        return cls(
            input_size=input_size,
            channels=channels,
            color_order=color_order,
            interpolation=interpolation,
            scale=scale,
            mean=mean,
            std=std,
            preset=name,
            output=output,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (lists, not tuples); :meth:`from_dict` reads it back exactly."""
        d: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessSpec":
        """Rebuild a spec from :meth:`to_dict` output, strictly.

        Raises:
            ConfigError: not a mapping, an unknown key (named), a missing
                ``input_size``, or an invalid value.

        Example:
            >>> s = PreprocessSpec(input_size=(28, 28), channels=1, color_order="gray")
            >>> PreprocessSpec.from_dict(s.to_dict()) == s
            True
        """
        if not isinstance(d, dict):
            raise ConfigError(f"preprocess spec must be a mapping (JSON object); received {type(d).__name__}.")
        known = [f.name for f in fields(cls)]
        unknown = [k for k in d if k not in known]
        if unknown:
            raise ConfigError(
                f"unknown preprocess key {unknown[0]!r}; expected only: {', '.join(known)}.",
                hint="Remove it, or read the spec with the edgekit version that wrote it.",
            )
        if "input_size" not in d:
            raise ConfigError("preprocess spec has no 'input_size'; expected [height, width].")
        return cls(**d)

    # ---------------------------------------------------------------- applying

    @property
    def shape(self) -> tuple[int, int, int]:
        """(height, width, channels) of one preprocessed image."""
        return (*self.input_size, self.channels)

    @functools.cached_property
    def _consts(self) -> tuple[np.float32, np.ndarray | None, np.ndarray | None]:
        # cached_property writes straight into __dict__, so it works on a frozen
        # dataclass; computing these once keeps the per-frame cost to the math.
        # Mean and std are tiled to a whole image row (W*C values): numpy's
        # inner loop then runs over the row instead of over 3 channels, ~10x
        # faster for per-channel (ImageNet) values, with bit-identical results.
        # A zero mean or unit std is skipped: x - 0 and x / 1 change nothing.
        w, c = self.input_size[1], self.channels

        def row(values: tuple[float, ...], neutral: float) -> np.ndarray | None:
            if all(v == neutral for v in values):
                return None
            per_channel = np.broadcast_to(np.asarray(values, dtype=np.float32), (c,))
            return np.tile(per_channel, w)

        return np.float32(self.scale), row(self.mean, 0.0), row(self.std, 1.0)

    def apply(self, image: np.ndarray, *, input_order: str = "bgr") -> np.ndarray:
        """Preprocess one uint8 image into the model's float32 (H, W, C) input.

        Colour conversion, then ``cv2.resize`` on the uint8 pixels with the
        spec's interpolation, then ``float32(px) * scale``, ``- mean``, ``/ std``.

        Args:
            image: uint8, HxW (gray), HxWx1, HxWx3 or HxWx4 (with alpha, dropped).
            input_order: channel order of a colour ``image``: "bgr" as OpenCV
                reads it, "rgb" for arrays from PIL/numpy/scikit-image.

        Returns:
            A C-contiguous float32 array of shape ``spec.shape``.

        Raises:
            DataError: not a uint8 image of a supported shape.
            ConfigError: unknown ``input_order``.

        Example:
            >>> spec = PreprocessSpec(input_size=(2, 2))
            >>> float(spec.apply(np.full((4, 4, 3), 255, np.uint8)).max())
            1.0
        """
        return self.normalize(self.pixels(image, input_order=input_order))

    def pixels(self, image: np.ndarray, *, input_order: str = "bgr") -> np.ndarray:
        """The uint8 (H, W, C) pixels the model sees, before any arithmetic: colour conversion, then resize.

        :meth:`apply` is ``normalize(pixels(image))``; the device's fused uint8
        path (:mod:`edgekit.runtime.tensors`) starts from the same pixels.

        Raises:
            DataError: not a uint8 image of a supported shape.
            ConfigError: unknown ``input_order``.
        """
        _choice("input_order", input_order, INPUT_ORDERS)
        pixels = self._resize(self._convert(_check_image(image), input_order))
        return pixels.reshape(self.shape)

    def normalize(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 pixels (..., H, W, C) in the model's order -> float32: ``px * scale``, ``- mean``, ``/ std``.

        Every step is one float32 operation per element, so a pixel's result
        depends only on its value and channel: :meth:`channel_tables` relies on it.
        """
        scale, mean_row, std_row = self._consts
        x = np.multiply(pixels, scale, dtype=np.float32)
        rows = x.reshape(-1, self.input_size[1] * self.channels)  # a view: rows of W*C values
        if mean_row is not None:
            np.subtract(rows, mean_row, out=rows)
        if std_row is not None:
            np.divide(rows, std_row, out=rows)
        return x

    def channel_tables(self) -> np.ndarray:
        """float32 (C, 256): what :meth:`normalize` makes of each uint8 value in each channel.

        Computed by :meth:`normalize` itself on an image that holds every value
        in every channel, so a lookup in these tables is bit-identical to the
        arithmetic (each output element depends only on its pixel and channel).

        Example:
            >>> PreprocessSpec.from_preset("symmetric", (2, 2)).channel_tables()[:, 255].tolist()
            [1.0, 1.0, 1.0]
        """
        h, w = self.input_size
        c = self.channels
        # 256 values per channel laid out as rows of width W: ceil(256 / W) rows.
        n_rows = -(-256 // w)
        values = np.zeros((n_rows * w, c), dtype=np.uint8)
        values[:256] = np.arange(256, dtype=np.uint8)[:, None]
        x = self.normalize(values.reshape(n_rows, w, c))
        return np.ascontiguousarray(x.reshape(-1, c)[:256].T)

    def apply_batch(self, images: np.ndarray | Iterable[np.ndarray], *, input_order: str = "bgr") -> np.ndarray:
        """Preprocess many images (any sizes) into one float32 (N, H, W, C) array.

        Args:
            images: an array whose first axis is N (N x H x W [x C]), or an
                iterable of single images as :meth:`apply` takes them.
            input_order: as in :meth:`apply`.

        Returns:
            float32 array of shape ``(N, *spec.shape)``.

        Raises:
            DataError: an image is not a supported uint8 image (its index is named).

        Example:
            >>> spec = PreprocessSpec(input_size=(8, 8), channels=1, color_order="gray")
            >>> spec.apply_batch(np.zeros((5, 8, 8), np.uint8)).shape
            (5, 8, 8, 1)
        """
        items = list(images) if not isinstance(images, np.ndarray) else images
        out = np.empty((len(items), *self.shape), dtype=np.float32)
        for i, image in enumerate(items):
            try:
                out[i] = self.apply(image, input_order=input_order)
            except DataError as e:
                raise DataError(f"image {i} of the batch: {e.message}", hint=e.hint) from None
        return out

    def _convert(self, image: np.ndarray, input_order: str) -> np.ndarray:
        import cv2

        src = "gray" if image.ndim == 2 else {3: input_order, 4: input_order + "a"}[image.shape[2]]
        dst = self.color_order
        if src == dst:
            return image
        code = f"COLOR_{src.upper()}2{dst.upper()}"
        return cv2.cvtColor(image, getattr(cv2, code))

    def _resize(self, image: np.ndarray) -> np.ndarray:
        h, w = self.input_size
        if image.shape[:2] == (h, w):
            return image
        import cv2

        return cv2.resize(image, (w, h), interpolation=getattr(cv2, _CV2_FLAGS[self.interpolation]))


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise DataError(f"expected an image as a numpy array; received {type(image).__name__}.")
    if image.dtype != np.uint8:
        raise DataError(
            f"expected a uint8 image (0..255, as read from a file or camera); received dtype {image.dtype}.",
            hint="Convert it first, e.g. np.clip(img, 0, 255).astype(np.uint8); "
            "float arrays that are already preprocessed go to load_dataset as .npz instead.",
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))) or 0 in image.shape:
        raise DataError(
            f"expected an image of shape HxW, HxWx1, HxWx3 or HxWx4; received shape {tuple(image.shape)}."
        )
    # cvtColor/resize want contiguous rows; a sliced view (e.g. a crop) may not be.
    return np.ascontiguousarray(image)


# What counts as an image file, on both sides: every format read_image decodes
# with the OpenCV wheels. The build side (data sets) and the device (--source
# folders) both list folders with list_images, so they take the same files.
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".bmp", ".jpeg", ".jpg", ".pbm", ".pgm", ".png", ".pnm", ".ppm", ".tif", ".tiff", ".webp"
)


def is_image_name(path: str | Path) -> bool:
    """Whether ``path`` has an image file extension (any case); see ``IMAGE_EXTENSIONS``."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def list_files(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """The files under ``folder``, hidden ones left out, sorted by relative path.

    Hidden files and folders (``.DS_Store``, ``.ipynb_checkpoints/``) are OS
    or tool metadata, never data.
    """
    root = Path(folder)
    found = root.rglob("*") if recursive else root.iterdir()
    files = [f for f in found if not any(part.startswith(".") for part in f.relative_to(root).parts) and f.is_file()]
    return sorted(files, key=lambda f: f.relative_to(root).as_posix())


def list_images(folder: str | Path, *, recursive: bool = True) -> list[Path]:
    """The image files under ``folder`` in a fixed order: what both sides read from a folder.

    Args:
        folder: the folder to list.
        recursive: include subfolders.

    Returns:
        Paths with an image extension (``IMAGE_EXTENSIONS``), hidden files and
        folders left out, sorted by path relative to ``folder``. Whether each
        one decodes is up to :func:`read_image`.

    Example:
        >>> list_images("no/such/folder")
        []
    """
    if not Path(folder).is_dir():
        return []
    return [f for f in list_files(folder, recursive=recursive) if is_image_name(f)]


def read_image(path: str | Path) -> np.ndarray | None:
    """Read an image file as OpenCV does: HxW uint8 for gray, HxWx3 BGR otherwise.

    Alpha is dropped, 16-bit images become 8-bit, EXIF orientation is applied.
    Works with non-ASCII paths (``cv2.imread`` does not on Windows).

    Args:
        path: the image file.

    Returns:
        The image, or None when the file cannot be read, is not an image, or
        is a truncated JPEG/PNG.

    Raises:
        DataError: the header says the image is over the pixel cap
            (:data:`edgekit.limits.IMAGE_PIXELS`, ``EDGEKIT_MAX_IMAGE_PIXELS``).

    Example:
        >>> read_image("no/such/file.png") is None
        True
    """
    import cv2

    from edgekit.limits import check_pixels, image_dimensions

    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except (OSError, ValueError):
        return None
    if buf.size == 0 or not _complete(buf):
        return None
    size = image_dimensions(buf[:1 << 16].tobytes())
    if size is not None:
        from edgekit.errors import DataError

        check_pixels(*size, what=f"image {path}", error=DataError)  # before decoding: a 20000x20000 PNG is 1.2 GB
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_ANYCOLOR)
    except cv2.error:
        return None
    if image is None or image.size == 0:
        return None
    return image


def _complete(buf: np.ndarray) -> bool:
    """False for a JPEG or PNG whose end is missing; other formats pass.

    OpenCV 4.x decodes a truncated JPEG with a grey lower part and only a
    warning on stderr; training on such a picture would be silent damage.
    """
    data = buf.tobytes()
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data.rfind(b"IEND") != -1
    if data.startswith(b"\xff\xd8"):
        sos = _jpeg_first_scan(data)
        # Entropy-coded data escapes 0xFF, so an EOI after the first scan is the
        # image's own end; anything appended after it (motion photos) is fine.
        return sos != -1 and data.find(b"\xff\xd9", sos) != -1
    return True


def _jpeg_first_scan(data: bytes) -> int:
    """Offset of the main image's first SOS marker, skipping headers (and EXIF thumbnails) by length."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return -1
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:
            return pos
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            pos += 2
            continue
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return -1
