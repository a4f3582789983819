"""Size caps on what edgekit reads from outside, each raisable by an environment variable.

A 2 MB ``.keras`` whose ``config.json`` inflates to 1 GiB, a 20000×20000 PNG in
a data folder, or ``--frame-size 100000x100000`` would otherwise be read
whole: gigabytes of memory, then a MemoryError traceback or a machine that
swaps. Each cap is checked *before* the read (from the zip header, the image
header, the flag) and refused with one line naming the cap and the variable
that raises it.

To add a cap: one :class:`Cap` row below, checked where the read happens.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from edgekit.errors import ConfigError


@dataclass(frozen=True)
class Cap:
    name: str
    env: str  # the environment variable that overrides it
    default: int
    unit: str  # how the value reads in a message: "bytes", "pixels"

    @property
    def value(self) -> int:
        raw = os.environ.get(self.env)
        if raw is None or not raw.strip():
            return self.default
        try:
            v = int(raw.replace("_", ""))
        except ValueError:
            raise ConfigError(f"{self.env}={raw!r} is not a whole number of {self.unit}.") from None
        if v < 1:
            raise ConfigError(f"{self.env}={raw!r} must be >= 1.")
        return v

    def how_to_raise(self) -> str:
        return f"the cap is {self.value:,} {self.unit}; raise it with {self.env}=N if this input is genuine."


# A real model config is well under 1 MiB (a ResNet-152's is ~0.5 MiB).
CONFIG_BYTES = Cap("model config.json", "EDGEKIT_MAX_CONFIG_BYTES", 64 << 20, "bytes")
# 100 megapixels: above any camera still (a 48 MP phone photo is 8000x6000),
# far below what makes decoding a memory problem (100 MP BGR = 300 MB).
IMAGE_PIXELS = Cap("image size", "EDGEKIT_MAX_IMAGE_PIXELS", 100_000_000, "pixels")


def check_pixels(width: int, height: int, what: str, error: type = ConfigError) -> None:
    """Refuse an image of ``width`` x ``height`` above :data:`IMAGE_PIXELS`."""
    cap = IMAGE_PIXELS.value
    if width * height > cap:
        raise error(f"{what} is {width}x{height} = {width * height:,} pixels, over the {IMAGE_PIXELS.name} cap; "
                    f"{IMAGE_PIXELS.how_to_raise()}")


def image_dimensions(data: bytes) -> tuple[int, int] | None:
    """(width, height) from an encoded image's header, without decoding it; None when unknown.

    PNG, JPEG, BMP and GIF are read here; other formats through Pillow's lazy
    header read when it is installed.
    """
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
            return struct.unpack(">II", data[16:24])
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
        if data.startswith(b"BM") and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
            return struct.unpack("<HH", data[6:10])
    except struct.error:
        return None
    try:
        import io

        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:  # reads the header only
            return im.size
    except Exception:  # noqa: BLE001 - no Pillow, or a format it does not know: OpenCV decides
        return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start-of-frame: the size
            h, w = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return w, h
        if marker == 0xDA:
            return None
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None
