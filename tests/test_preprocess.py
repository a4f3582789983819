"""The preprocessing spec and its one implementation (no TensorFlow here)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from edgekit.errors import ConfigError, DataError
from edgekit.preprocess import INTERPOLATIONS, PreprocessSpec, list_presets, read_image


@pytest.fixture(scope="module")
def astronaut_rgb() -> np.ndarray:
    return skdata.astronaut()  # 512x512x3 RGB uint8


@pytest.fixture(scope="module")
def astronaut_bgr(astronaut_rgb) -> np.ndarray:
    return cv2.cvtColor(astronaut_rgb, cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    return skdata.camera()  # 512x512 gray uint8


def _spec(**kw) -> PreprocessSpec:
    return PreprocessSpec(**{"input_size": (32, 48), **kw})


# ------------------------------------------------------------------ validation

@pytest.mark.parametrize(
    "field, value",
    [
        ("input_size", (0, 28)),
        ("input_size", (28,)),
        ("input_size", (28.0, 28)),
        ("input_size", "28x28"),
        ("input_size", (True, 28)),
        ("channels", 2),
        ("channels", True),
        ("channels", "3"),
        ("color_order", "rgba"),
        ("color_order", "gray"),  # with the default channels=3
        ("interpolation", "lanczos"),
        ("scale", 0),
        ("scale", -1.0),
        ("scale", float("nan")),
        ("scale", "1/255"),
        ("mean", (0.1, 0.2)),
        ("mean", ("a",)),
        ("mean", (float("inf"),)),
        ("std", (0.0,)),
        ("std", (1.0, -1.0, 1.0)),
        ("std", (1.0, 1.0, 1.0, 1.0)),
        ("preset", "mobilenet"),
        ("output", "softmax"),
        ("layout", "nchw"),
    ],
)
def test_every_field_is_validated(field, value):
    with pytest.raises(ConfigError) as e:
        _spec(**{field: value})
    msg = str(e.value)
    assert field in msg and "expected" in msg
    assert "\n" not in msg


def test_gray_requires_one_channel_and_one_channel_requires_gray():
    with pytest.raises(ConfigError, match="color_order='rgb' does not fit channels=1"):
        _spec(channels=1, color_order="rgb")
    assert _spec(channels=1, color_order="gray").shape == (32, 48, 1)


def test_values_are_normalised_to_tuples_and_floats():
    s = _spec(input_size=[28, 30], mean=[1, 2, 3], std=0.5, scale=1)
    assert s.input_size == (28, 30) and s.mean == (1.0, 2.0, 3.0) and s.std == (0.5,) and s.scale == 1.0
    assert hash(s) == hash(_spec(input_size=(28, 30), mean=(1.0, 2.0, 3.0), std=(0.5,), scale=1.0))


# --------------------------------------------------------- serialisation

ROUND_TRIP = [
    _spec(),
    PreprocessSpec(input_size=(28, 28), channels=1, color_order="gray", preset="unit"),
    _spec(color_order="bgr", interpolation="area", scale=0.5, mean=(1, 2, 3), std=(4, 5, 6), output="logits"),
    *[PreprocessSpec.from_preset(name, (96, 96)) for name in list_presets()],
]


@pytest.mark.parametrize("spec", ROUND_TRIP, ids=lambda s: s.preset or s.interpolation)
def test_round_trip_through_json(spec):
    d = json.loads(json.dumps(spec.to_dict()))
    assert d == spec.to_dict()
    assert PreprocessSpec.from_dict(d) == spec


def test_to_dict_is_plain_json_values():
    d = _spec().to_dict()
    assert d["input_size"] == [32, 48] and d["mean"] == [0.0]
    assert set(d) == {
        "input_size", "channels", "color_order", "interpolation", "scale",
        "mean", "std", "preset", "output", "layout",
    }


def test_from_dict_is_strict():
    d = _spec().to_dict()
    with pytest.raises(ConfigError, match="unknown preprocess key 'resize'"):
        PreprocessSpec.from_dict({**d, "resize": "bilinear"})
    d.pop("input_size")
    with pytest.raises(ConfigError, match="no 'input_size'"):
        PreprocessSpec.from_dict(d)
    with pytest.raises(ConfigError, match="mapping"):
        PreprocessSpec.from_dict([("input_size", [1, 1])])
    with pytest.raises(ConfigError, match="channels"):
        PreprocessSpec.from_dict({"input_size": [8, 8], "channels": 4})


# ----------------------------------------------------------------- presets

# pixel value -> expected model input value, per preset (first channel)
PRESET_ENDS = {"unit": (0.0, 1.0), "raw": (0.0, 255.0), "symmetric": (-1.0, 1.0), "imagenet": (-0.485 / 0.229, 0.515 / 0.229)}


@pytest.mark.parametrize("name", list(list_presets()))
def test_presets_map_black_and_white_as_documented(name):
    assert name in PRESET_ENDS, "a new preset needs its expected range here"
    spec = PreprocessSpec.from_preset(name, (4, 4))
    lo = spec.apply(np.zeros((4, 4, 3), np.uint8))
    hi = spec.apply(np.full((4, 4, 3), 255, np.uint8))
    np.testing.assert_allclose([lo[0, 0, 0], hi[0, 0, 0]], PRESET_ENDS[name], rtol=1e-6, atol=1e-6)
    assert spec.preset == name


def test_imagenet_preset_follows_the_models_colour_order():
    rgb = PreprocessSpec.from_preset("imagenet", (8, 8))
    bgr = PreprocessSpec.from_preset("imagenet", (8, 8), color_order="bgr")
    assert rgb.mean == (0.485, 0.456, 0.406) and bgr.mean == (0.406, 0.456, 0.485)
    assert bgr.std == rgb.std[::-1]
    with pytest.raises(ConfigError, match="channels=3"):
        PreprocessSpec.from_preset("imagenet", (8, 8), channels=1)


def test_gray_preset_defaults_to_gray_colour_order():
    spec = PreprocessSpec.from_preset("unit", (28, 28), channels=1, output="logits")
    assert (spec.color_order, spec.channels, spec.output) == ("gray", 1, "logits")


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError) as e:
        PreprocessSpec.from_preset("caffe", (8, 8))
    for name in list_presets():
        assert name in str(e.value)


def test_preset_name_must_match_the_numbers():
    with pytest.raises(ConfigError, match="preset='symmetric' means scale"):
        _spec(preset="symmetric")  # default scale is 1/255, not 1/127.5
    assert _spec(preset="unit").preset == "unit"


# ------------------------------------------------------------------ applying

def test_output_is_float32_contiguous_and_shaped(astronaut_bgr):
    spec = _spec()
    before = astronaut_bgr.copy()
    x = spec.apply(astronaut_bgr)
    assert x.shape == (32, 48, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(astronaut_bgr, before)  # input untouched


def test_math_is_scale_then_mean_then_std(astronaut_rgb):
    img = astronaut_rgb[:32, :48]  # already the input size: no resize
    spec = _spec(scale=0.5, mean=(10, 20, 30), std=(2, 4, 8))
    expected = (img.astype(np.float32) * np.float32(0.5) - np.float32([10, 20, 30])) / np.float32([2, 4, 8])
    np.testing.assert_array_equal(spec.apply(img, input_order="rgb"), expected)


def test_rgb_and_bgr_inputs_give_the_same_result(astronaut_rgb, astronaut_bgr):
    for order in ("rgb", "bgr"):
        spec = _spec(color_order=order)
        np.testing.assert_array_equal(spec.apply(astronaut_bgr), spec.apply(astronaut_rgb, input_order="rgb"))


def test_model_colour_order_is_respected(astronaut_rgb, astronaut_bgr):
    x_rgb = _spec(color_order="rgb").apply(astronaut_bgr)
    x_bgr = _spec(color_order="bgr").apply(astronaut_bgr)
    np.testing.assert_array_equal(x_rgb, x_bgr[..., ::-1])
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 255  # pure red, RGB
    assert _spec(input_size=(4, 4)).apply(red, input_order="rgb")[0, 0].tolist() == [1.0, 0.0, 0.0]
    assert _spec(input_size=(4, 4)).apply(red[..., ::-1])[0, 0].tolist() == [1.0, 0.0, 0.0]


def test_gray_input_to_colour_and_gray_models(camera):
    gray = _spec(channels=1, color_order="gray")
    np.testing.assert_array_equal(gray.apply(camera), gray.apply(camera[..., None]))
    x = _spec().apply(camera)  # gray picture, colour model: replicated channels
    assert np.array_equal(x[..., 0], x[..., 1]) and np.array_equal(x[..., 1], x[..., 2])
    np.testing.assert_array_equal(x[..., 0], gray.apply(camera)[..., 0])


def test_colour_input_to_gray_model_uses_opencv_luma(astronaut_bgr):
    spec = _spec(channels=1, color_order="gray", input_size=(512, 512))
    expected = cv2.cvtColor(astronaut_bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) * np.float32(1 / 255)
    np.testing.assert_array_equal(spec.apply(astronaut_bgr)[..., 0], expected)


def test_bgra_and_rgba_drop_alpha(astronaut_bgr):
    alpha = np.full(astronaut_bgr.shape[:2] + (1,), 7, np.uint8)
    bgra = np.concatenate([astronaut_bgr, alpha], axis=2)
    rgba = np.concatenate([astronaut_bgr[..., ::-1], alpha], axis=2)
    for spec in (_spec(), _spec(color_order="bgr"), _spec(channels=1, color_order="gray")):
        want = spec.apply(astronaut_bgr)
        np.testing.assert_array_equal(spec.apply(bgra), want)
        np.testing.assert_array_equal(spec.apply(rgba, input_order="rgb"), want)


def test_real_rgba_picture():
    logo = skdata.logo()  # 500x500x4 RGBA
    x = _spec().apply(logo, input_order="rgb")
    assert x.shape == (32, 48, 3) and 0.0 <= x.min() and x.max() <= 1.0


def test_non_contiguous_views_work(astronaut_bgr):
    view = astronaut_bgr[::2, 10:300]
    assert not view.flags.c_contiguous
    spec = _spec()
    np.testing.assert_array_equal(spec.apply(view), spec.apply(np.ascontiguousarray(view)))


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
def test_each_interpolation_resizes_like_opencv(interpolation, astronaut_bgr):
    spec = _spec(interpolation=interpolation, color_order="bgr")
    flag = {"nearest": cv2.INTER_NEAREST_EXACT, "bilinear": cv2.INTER_LINEAR_EXACT,
            "bicubic": cv2.INTER_CUBIC, "area": cv2.INTER_AREA}[interpolation]
    expected = cv2.resize(astronaut_bgr, (48, 32), interpolation=flag).astype(np.float32) * np.float32(1 / 255)
    np.testing.assert_array_equal(spec.apply(astronaut_bgr), expected)


def test_interpolations_differ_on_a_real_photo(astronaut_bgr):
    outs = {i: _spec(interpolation=i).apply(astronaut_bgr) for i in INTERPOLATIONS}
    assert len({o.tobytes() for o in outs.values()}) == len(INTERPOLATIONS)


def test_nearest_upscale_replicates_pixels():
    img = np.arange(16, dtype=np.uint8).reshape(4, 4)
    x = PreprocessSpec(input_size=(8, 8), channels=1, color_order="gray", interpolation="nearest", scale=1.0).apply(img)
    np.testing.assert_array_equal(x[..., 0], np.repeat(np.repeat(img, 2, 0), 2, 1).astype(np.float32))


def test_deterministic_and_batch_equals_single(astronaut_bgr, camera):
    spec = PreprocessSpec.from_preset("imagenet", (64, 64), interpolation="area")
    a, b = spec.apply(astronaut_bgr), spec.apply(astronaut_bgr.copy())
    assert a.tobytes() == b.tobytes()
    batch = spec.apply_batch([astronaut_bgr, camera, astronaut_bgr[:100, :200]])
    assert batch.shape == (3, 64, 64, 3) and batch.dtype == np.float32
    assert batch[0].tobytes() == a.tobytes()
    np.testing.assert_array_equal(batch[1], spec.apply(camera))


def test_apply_batch_takes_an_array_and_an_empty_list():
    spec = _spec(channels=1, color_order="gray", input_size=(8, 8))
    imgs = np.random.default_rng(0).integers(0, 256, (5, 10, 10), dtype=np.uint8)
    out = spec.apply_batch(imgs)
    assert out.shape == (5, 8, 8, 1)
    np.testing.assert_array_equal(out[3], spec.apply(imgs[3]))
    assert spec.apply_batch([]).shape == (0, 8, 8, 1)


@pytest.mark.parametrize(
    "image, match",
    [
        (np.zeros((8, 8, 3), np.float32), "uint8"),
        (np.zeros((8, 8, 3), np.uint16), "uint8"),
        (np.zeros((8, 8, 2), np.uint8), "shape"),
        (np.zeros((8,), np.uint8), "shape"),
        (np.zeros((0, 8, 3), np.uint8), "shape"),
        ([[0, 0], [0, 0]], "numpy array"),
    ],
)
def test_bad_images_are_refused(image, match):
    with pytest.raises(DataError, match=match):
        _spec().apply(image)


def test_bad_image_in_batch_is_named_and_bad_input_order_refused(astronaut_bgr):
    with pytest.raises(DataError, match="image 1 of the batch"):
        _spec().apply_batch([astronaut_bgr, astronaut_bgr.astype(np.float32)])
    with pytest.raises(ConfigError, match="input_order='gray'"):
        _spec().apply(astronaut_bgr, input_order="gray")


# --------------------------------------------------------------- read_image

@pytest.mark.parametrize("ext", [".png", ".bmp", ".jpg"])
def test_read_image_reads_bgr_and_unicode_paths(tmp_path, ext, astronaut_bgr):
    path = tmp_path / f"astronaut_é_宇航员{ext}"
    ok, buf = cv2.imencode(ext, astronaut_bgr)
    path.write_bytes(buf.tobytes())
    img = read_image(path)
    assert img.shape == astronaut_bgr.shape and img.dtype == np.uint8
    if ext != ".jpg":
        np.testing.assert_array_equal(img, astronaut_bgr)
    else:
        assert np.abs(img.astype(int) - astronaut_bgr).mean() < 5  # lossy but the same picture, same channel order


def test_read_image_keeps_gray_gray_and_drops_alpha(tmp_path, camera):
    ok, buf = cv2.imencode(".png", camera)
    (tmp_path / "g.png").write_bytes(buf.tobytes())
    assert read_image(tmp_path / "g.png").shape == (512, 512)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(skdata.logo(), cv2.COLOR_RGBA2BGRA))
    (tmp_path / "a.png").write_bytes(buf.tobytes())
    assert read_image(tmp_path / "a.png").shape == (500, 500, 3)


def test_read_image_returns_none_for_what_is_not_an_image(tmp_path, astronaut_bgr):
    ok, jpg = cv2.imencode(".jpg", astronaut_bgr)
    ok, png = cv2.imencode(".png", astronaut_bgr)
    cases = {
        "truncated.jpg": jpg.tobytes()[: len(jpg) // 2],
        "truncated.png": png.tobytes()[: len(png) - 20],
        "text.png": b"this is not an image\n",
        "empty.jpg": b"",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        assert read_image(tmp_path / name) is None, name
    assert read_image(tmp_path / "missing.png") is None
    assert read_image(tmp_path) is None  # a folder


def test_read_image_accepts_data_after_the_jpeg_end(tmp_path, astronaut_bgr):
    # Motion photos append a video after the JPEG's end marker: still a whole picture.
    ok, jpg = cv2.imencode(".jpg", astronaut_bgr)
    (tmp_path / "motion.jpg").write_bytes(jpg.tobytes() + b"\x00\x00ftypmp42" + bytes(range(256)) * 4)
    assert read_image(tmp_path / "motion.jpg").shape == astronaut_bgr.shape


# ----------------------------------------------------------- device safety

def test_preprocess_and_data_import_no_tensorflow(tmp_path):
    code = textwrap.dedent(
        """
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np
        from edgekit.preprocess import PreprocessSpec
        from edgekit.data import load_dataset, DIGITS_SPEC
        from edgekit.resources import digits_dir
        ds = load_dataset(digits_dir(), DIGITS_SPEC)
        print(len(ds), PreprocessSpec.from_dict(DIGITS_SPEC.to_dict()).apply(np.zeros((8, 8), np.uint8)).shape)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1797", "(28,", "28,", "1)"]


@pytest.mark.parametrize("preset", ["unit", "raw", "symmetric", "imagenet"])
def test_apply_is_bit_identical_to_the_step_by_step_definition(preset):
    """The row-tiled fast path must equal (px * scale - mean) / std computed channel by channel."""
    import skimage.data

    img = np.ascontiguousarray(skimage.data.astronaut()[:, :, ::-1])  # BGR, as OpenCV reads it
    spec = PreprocessSpec.from_preset(preset, (96, 128), channels=3)
    import cv2

    px = cv2.resize(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), (128, 96), interpolation=cv2.INTER_LINEAR_EXACT)
    ref = px.astype(np.float32) * np.float32(spec.scale)
    ref = (ref - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    np.testing.assert_array_equal(spec.apply(img), ref)


# ------------------------------------------------- the fused uint8 input path
#
# The device's per-frame path looks every pixel up in 256-entry tables instead
# of doing the float arithmetic; these tests prove it is the same tensor, bit
# for bit, as the float path the build side scores with.

from edgekit.runtime.tensors import PixelInput, TensorInfo, dequantize, dequantize_table, dequantize_bytes, quantize  # noqa: E402


def _input_info(spec: PreprocessSpec, dtype: str) -> TensorInfo:
    # Quantization parameters a converter calibrates: the spec's output range over [0, 255].
    lo = float(spec.channel_tables().min())
    hi = float(spec.channel_tables().max())
    if dtype in ("float32", "float16"):
        return TensorInfo("x", 0, (1, *spec.shape), dtype, 0.0, 0)
    q = np.iinfo(dtype)
    scale = (hi - lo) / (q.max - q.min)
    zero = int(round(q.min - lo / scale))
    return TensorInfo("x", 0, (1, *spec.shape), dtype, scale, zero)


@pytest.mark.parametrize("preset", ["unit", "raw", "symmetric", "imagenet"])
def test_pixels_then_normalize_is_apply_and_tables_hold_every_value(preset, astronaut_bgr):
    spec = PreprocessSpec.from_preset(preset, (37, 53), channels=3)
    np.testing.assert_array_equal(spec.normalize(spec.pixels(astronaut_bgr)), spec.apply(astronaut_bgr))
    tables = spec.channel_tables()
    assert tables.shape == (3, 256) and tables.dtype == np.float32
    # Every value of every channel, at scattered positions of a real-sized image.
    rng = np.random.default_rng(1)
    img = np.stack([rng.permutation(np.resize(np.arange(256, dtype=np.uint8), 37 * 53)) for _ in range(3)], -1)
    img = img.reshape(37, 53, 3)
    x = spec.normalize(img)
    for c in range(3):
        np.testing.assert_array_equal(x[..., c], tables[c][img[..., c]])


@pytest.mark.parametrize("dtype", ["int8", "uint8", "float32", "float16"])
@pytest.mark.parametrize("preset", ["unit", "raw", "symmetric", "imagenet"])
def test_fused_input_equals_quantize_of_apply_on_real_photos(preset, dtype, astronaut_bgr):
    """Colour orders, alpha, resize up and down, every interpolation: the same tensor as the float path."""
    rng = np.random.default_rng(0)
    small = np.ascontiguousarray(astronaut_bgr[::4, ::4])  # 128x128
    bgra = cv2.cvtColor(small, cv2.COLOR_BGR2BGRA)
    bgra[..., 3] = rng.integers(0, 256, bgra.shape[:2], dtype=np.uint8)
    for model_order in ("rgb", "bgr"):
        for interpolation in INTERPOLATIONS:
            for size in ((37, 53), (151, 170), (128, 128)):  # down, up, none
                spec = PreprocessSpec.from_preset(preset, size, channels=3, color_order=model_order, interpolation=interpolation)
                info = _input_info(spec, dtype)
                fused = PixelInput(spec, info)
                for image, order in ((small, "bgr"), (small, "rgb"), (bgra, "bgr"), (bgra, "rgb")):
                    out = np.full(spec.shape, 7, dtype=np.dtype(dtype))
                    fused.write(fused.prepare(image, input_order=order), out)
                    expected = quantize(spec.apply(image, input_order=order)[None], info)[0]
                    assert np.array_equal(out, expected), (model_order, interpolation, size, order, image.shape)
    assert fused.fused == (dtype != "float16")  # float16 takes the float path, also exact


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_fused_input_gray_models_and_gray_pictures(dtype, astronaut_bgr, camera):
    for spec in (
        PreprocessSpec.from_preset("unit", (28, 28), channels=1),
        PreprocessSpec(input_size=(31, 45), channels=1, color_order="gray", scale=1 / 255, mean=0.1307, std=0.3081),
        PreprocessSpec.from_preset("imagenet", (31, 45), channels=3),
    ):
        info = _input_info(spec, dtype)
        fused = PixelInput(spec, info)
        for image in (camera, camera[:, :, None], astronaut_bgr, camera[::2, 1::3]):  # last: a strided view
            out = np.empty(spec.shape, np.dtype(dtype))
            fused.write(fused.prepare(image), out)
            assert np.array_equal(out, quantize(spec.apply(image)[None], info)[0])


@pytest.mark.parametrize(
    "preset,dtype,scale,zero,shift",
    [
        ("raw", "int8", 1.0, -128, True),  # int8(v - 128): the byte v + 128
        ("unit", "uint8", 1 / 255, 0, True),
        ("unit", "int8", 1 / 255, -128, True),
        ("raw", "int8", 1.0, -120, False),  # saturates at 127 from v = 247: not a plain shift
        ("symmetric", "int8", 2 / 255, -1, False),  # MobileNet's calibration: float rounding breaks ties both ways
    ],
)
def test_fused_input_adds_a_byte_when_the_table_is_a_shift(preset, dtype, scale, zero, shift, astronaut_bgr):
    spec = PreprocessSpec.from_preset(preset, (40, 30), channels=3)
    info = TensorInfo("x", 0, (1, 40, 30, 3), dtype, scale, zero)
    fused = PixelInput(spec, info)
    assert (fused._shift is not None) == shift
    for order in ("bgr", "rgb"):
        out = np.empty(spec.shape, np.dtype(dtype))
        fused.write(fused.prepare(astronaut_bgr, input_order=order), out)
        assert np.array_equal(out, quantize(spec.apply(astronaut_bgr, input_order=order)[None], info)[0])


def test_fused_input_refuses_bad_images_before_writing():
    spec = PreprocessSpec.from_preset("unit", (8, 8), channels=3)
    fused = PixelInput(spec, _input_info(spec, "int8"))
    with pytest.raises(DataError, match="uint8"):
        fused.prepare(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(DataError, match="HxWx3"):
        fused.prepare(np.zeros((8, 8, 2), np.uint8))
    with pytest.raises(ConfigError, match="input_order"):
        fused.prepare(np.zeros((8, 8, 3), np.uint8), input_order="hsv")


@pytest.mark.parametrize("dtype,scale,zero", [("int8", 1 / 256, -128), ("uint8", 0.0173, 7), ("int8", 0.37, 3)])
def test_dequantize_table_equals_dequantize_for_every_byte(dtype, scale, zero):
    info = TensorInfo("y", 0, (1, 256), dtype, scale, zero)
    raw = np.arange(256, dtype=np.uint8).view(dtype)[None][:, ::-1].copy()
    table = dequantize_table(info)
    np.testing.assert_array_equal(dequantize_bytes(raw, table), dequantize(raw, info).reshape(-1))
    assert dequantize_table(TensorInfo("y", 0, (1, 4), "float32", 0.0, 0)) is None
