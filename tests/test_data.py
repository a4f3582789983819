"""Data sets: image folders, .npz, the bundled digits, splits and checks (no TensorFlow here)."""
from __future__ import annotations

import os
import time
from pathlib import Path
import warnings

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from edgekit.data import (
    DIGITS_SPEC,
    Dataset,
    SkippedFilesWarning,
    check_labels,
    load_dataset,
    load_digits,
    sample_stratified,
    split_dataset,
)
from edgekit.errors import ConfigError, DataError
from edgekit.preprocess import PreprocessSpec, read_image
from edgekit.resources import digits_dir

SPEC = PreprocessSpec(input_size=(24, 24))
# Real photographs from scikit-image, one class each; crops give several samples per class.
PHOTOS = {"astronaut": skdata.astronaut, "coffee": skdata.coffee, "rocket": skdata.rocket}
EXTS = [".jpg", ".PNG", ".bmp", ".jpeg", ".png"]


def _write(path, rgb: np.ndarray) -> None:
    bgr = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(path.suffix.lower(), bgr)
    path.write_bytes(buf.tobytes())


def _crops(rgb: np.ndarray, n: int) -> list[np.ndarray]:
    return [rgb[i * 20 : i * 20 + 96, i * 15 : i * 15 + 128] for i in range(n)]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """astronaut/ coffee/ rocket/, 5 files each in mixed formats and cases."""
    root = tmp_path_factory.mktemp("photos")
    for name, load in PHOTOS.items():
        (root / name).mkdir()
        for i, crop in enumerate(_crops(load(), 5)):
            _write(root / name / f"{i}{EXTS[i]}", crop)
    return root


# ------------------------------------------------------------- image folders

def test_labelled_folder(photo_folder):
    ds = load_dataset(photo_folder, SPEC)
    assert ds.x.shape == (15, 24, 24, 3) and ds.x.dtype == np.float32
    assert ds.class_names == ["astronaut", "coffee", "rocket"]
    assert ds.y.dtype == np.int64 and ds.y.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert ds.skipped == [] and ds.source == str(photo_folder)
    assert ds.paths[0].endswith("0.jpg") and len(ds.paths) == 15
    # each sample is exactly what the runtime would compute from that file
    for i in (0, 7, 14):
        np.testing.assert_array_equal(ds.x[i], SPEC.apply(read_image(ds.paths[i])))


def test_same_folder_same_arrays(photo_folder):
    a, b = load_dataset(photo_folder, SPEC), load_dataset(photo_folder, SPEC)
    assert a.x.tobytes() == b.x.tobytes() and a.paths == b.paths


def test_class_names_fix_the_order(photo_folder):
    ds = load_dataset(photo_folder, SPEC, class_names=["rocket", "unused", "astronaut", "coffee"])
    assert ds.class_names == ["rocket", "unused", "astronaut", "coffee"]
    assert ds.y.tolist() == [2] * 5 + [3] * 5 + [0] * 5
    with pytest.raises(DataError, match=r"\['rocket'\] that are not among"):
        load_dataset(photo_folder, SPEC, class_names=["astronaut", "coffee"])
    with pytest.raises(ConfigError, match="duplicates"):
        load_dataset(photo_folder, SPEC, class_names=["a", "a"])


def test_flat_folder_is_unlabelled(tmp_path):
    for i, crop in enumerate(_crops(skdata.chelsea(), 4)):
        _write(tmp_path / f"cat_{i}.jpg", crop)
    _write(tmp_path / "camera.png", skdata.camera())
    ds = load_dataset(tmp_path, PreprocessSpec(input_size=(16, 16), channels=1, color_order="gray"))
    assert ds.y is None and ds.class_names == [] and ds.x.shape == (5, 16, 16, 1)
    assert [p.rsplit("/", 1)[-1] for p in ds.paths] == ["camera.png", "cat_0.jpg", "cat_1.jpg", "cat_2.jpg", "cat_3.jpg"]
    with pytest.raises(DataError, match="no class subfolders"):
        load_dataset(tmp_path, SPEC, labelled=True)


def test_labelled_folder_read_as_unlabelled(photo_folder):
    ds = load_dataset(photo_folder, SPEC, labelled=False)
    assert ds.y is None and len(ds) == 15


def test_unreadable_files_are_skipped_counted_and_warned(tmp_path):
    root = tmp_path / "set"
    for name, load in PHOTOS.items():
        (root / name).mkdir(parents=True)
        for i, crop in enumerate(_crops(load(), 3)):
            _write(root / name / f"{i}.jpg", crop)
    ok, jpg = cv2.imencode(".jpg", skdata.coffee())
    (root / "coffee" / "truncated.jpg").write_bytes(jpg.tobytes()[: len(jpg) // 3])
    (root / "rocket" / "notes.png").write_text("a text file renamed .png\n")
    (root / "rocket" / "labels.txt").write_text("not an image\n")
    (root / "astronaut" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # hidden: ignored, not counted
    (root / "README.md").write_text("documentation beside the classes is not data\n")
    _write(root / "stray.png", skdata.camera())  # an image with no class folder

    with pytest.warns(SkippedFilesWarning) as record:
        ds = load_dataset(root, SPEC)
    assert len(record) == 1
    msg = str(record[0].message)
    assert msg.startswith(f"skipped 4 file(s) in {root}")
    for name in ("coffee/truncated.jpg", "rocket/notes.png", "rocket/labels.txt", "stray.png"):
        assert name in msg
    assert "2 unreadable" in msg and "1 not an image" in msg and "1 not in a class folder" in msg
    assert len(ds) == 9 and len(ds.skipped) == 4
    assert ds.class_counts() == {"astronaut": 3, "coffee": 3, "rocket": 3}


def test_build_side_and_device_take_the_same_files_from_a_folder(tmp_path):
    """Every format read_image decodes counts on both sides; hidden folders count on neither."""
    from edgekit.preprocess import IMAGE_EXTENSIONS, list_images
    from edgekit.runtime.sources import open_source

    crops = _crops(skdata.chelsea(), 5)
    (tmp_path / "cat" / ".ipynb_checkpoints").mkdir(parents=True)
    for i, ext in enumerate([".jpg", ".webp", ".TIF", ".ppm", ".png"]):
        _write(tmp_path / "cat" / f"{i}{ext}", crops[i])
    _write(tmp_path / "cat" / ".ipynb_checkpoints" / "0-checkpoint.png", crops[0])  # a notebook's copy: not data
    _write(tmp_path / "cat" / ".hidden.png", crops[1])
    ds = load_dataset(tmp_path, SPEC)
    device = [f.source for f in open_source(tmp_path).frames()]
    assert ds.paths == device == [str(p) for p in list_images(tmp_path)]
    assert [p.rsplit("/", 1)[-1] for p in ds.paths] == ["0.jpg", "1.webp", "2.TIF", "3.ppm", "4.png"]
    assert ds.skipped == [] and {".webp", ".tif", ".ppm"} <= set(IMAGE_EXTENSIONS)


def test_warning_lists_only_the_first_few(tmp_path):
    for i in range(8):
        (tmp_path / f"bad{i}.jpg").write_bytes(b"nope")
    _write(tmp_path / "good.png", skdata.camera())
    with pytest.warns(SkippedFilesWarning, match=r"skipped 8 file\(s\).*\(\+3 more\)"):
        ds = load_dataset(tmp_path, SPEC)
    assert len(ds) == 1 and len(ds.skipped) == 8


def test_nothing_usable_is_an_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"{empty} has no readable images"):
        load_dataset(empty, SPEC)
    junk = tmp_path / "junk" / "cls"
    junk.mkdir(parents=True)
    (junk / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.warns(SkippedFilesWarning), pytest.raises(DataError, match=r"skipped 1 unusable"):
        load_dataset(tmp_path / "junk", SPEC)


def test_missing_path_and_wrong_file_type(tmp_path):
    with pytest.raises(DataError, match=rf"{tmp_path / 'nope'} does not exist; expected a folder of images"):
        load_dataset(tmp_path / "nope", SPEC)
    (tmp_path / "data.csv").write_text("1,2\n")
    with pytest.raises(DataError, match=r"\.csv file; expected a folder"):
        load_dataset(tmp_path / "data.csv", SPEC)
    with pytest.raises(ConfigError, match="PreprocessSpec"):
        load_dataset(tmp_path, {"input_size": [8, 8]})


def test_unicode_folder_and_file_names(tmp_path):
    (tmp_path / "café").mkdir()
    (tmp_path / "日本").mkdir()
    _write(tmp_path / "café" / "tasse_é.png", skdata.coffee())
    _write(tmp_path / "日本" / "写真.jpg", skdata.astronaut())
    ds = load_dataset(tmp_path, SPEC)
    assert ds.class_names == ["café", "日本"] and ds.y.tolist() == [0, 1]


# ----------------------------------------------------------------------- npz

def test_npz_uint8_images_are_preprocessed_as_rgb(tmp_path):
    x = np.stack(_crops(skdata.astronaut(), 4))  # (4, 96, 128, 3) RGB
    np.savez(tmp_path / "d.npz", x=x, y=np.array([0, 1, 0, 1]), class_names=np.array(["a", "b"]))
    ds = load_dataset(tmp_path / "d.npz", SPEC)
    np.testing.assert_array_equal(ds.x, SPEC.apply_batch(x, input_order="rgb"))
    assert ds.y.tolist() == [0, 1, 0, 1] and ds.class_names == ["a", "b"] and ds.paths is None


def test_npz_gray_uint8_without_channel_axis(tmp_path):
    np.savez(tmp_path / "g.npz", x=np.stack([skdata.camera()[:64, :64]] * 3))
    ds = load_dataset(tmp_path / "g.npz", DIGITS_SPEC)
    assert ds.x.shape == (3, 28, 28, 1) and ds.y is None


def test_npz_float_is_taken_as_preprocessed(tmp_path):
    x = np.random.default_rng(0).random((6, 24, 24, 3))  # float64
    np.savez(tmp_path / "f.npz", x=x, y=np.eye(3)[[0, 1, 2, 2, 1, 0]])  # one-hot
    ds = load_dataset(tmp_path / "f.npz", SPEC)
    assert ds.x.dtype == np.float32 and ds.x.flags.c_contiguous
    np.testing.assert_array_equal(ds.x, x.astype(np.float32))
    assert ds.y.tolist() == [0, 1, 2, 2, 1, 0] and ds.class_names == ["0", "1", "2"]
    np.savez(tmp_path / "f1.npz", x=np.zeros((2, 28, 28), np.float32), y=np.array([[1], [0]]))
    assert load_dataset(tmp_path / "f1.npz", DIGITS_SPEC).y.tolist() == [1, 0]


def test_npz_float_shape_mismatch_says_expected_and_received(tmp_path):
    np.savez(tmp_path / "f.npz", x=np.zeros((2, 32, 32, 3), np.float32))
    with pytest.raises(DataError, match=r"\(H, W, C\)=\(32, 32, 3\); expected \(24, 24, 3\)"):
        load_dataset(tmp_path / "f.npz", SPEC)


def test_npz_missing_x_lists_the_keys(tmp_path):
    np.savez(tmp_path / "m.npz", images=np.zeros((2, 8, 8), np.uint8), labels=np.zeros(2))
    with pytest.raises(DataError, match=r"no 'x' array; found keys \['images', 'labels'\]"):
        load_dataset(tmp_path / "m.npz", SPEC)


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"x": np.zeros((3, 8, 8), np.uint8), "y": np.array([0, 1])}, "3 images in 'x' but 2 labels"),
        ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array([0.5, 1])}, "non-integer"),
        ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array([0, -1])}, "negative label -1"),
        ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array(["a", "b"])}, "dtype <U1"),
        ({"x": np.zeros((2, 8, 8), np.int64)}, "dtype int64; expected uint8"),
        ({"x": np.zeros((2, 8, 8, 2), np.uint8)}, r"shape \(2, 8, 8, 2\)"),
        ({"x": np.zeros((0, 8, 8), np.uint8)}, "empty"),
        ({"x": np.full((1, 24, 24, 3), np.nan, np.float32)}, "NaN"),
        ({"x": np.zeros((2, 8, 8), np.uint8), "y": np.array([0, 2]), "class_names": np.array(["a", "b"])},
         "label 2 but there are only 2 class names"),
        ({"x": np.zeros((1, 8, 8), np.uint8), "y": np.array([0]), "class_names": np.array([{"a": 1}], dtype=object)},
         "does not unpickle"),
    ],
)
def test_npz_inconsistencies_are_data_errors(tmp_path, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=match):
        load_dataset(tmp_path / "bad.npz", SPEC)


def test_npz_labels_and_names_options(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 8, 8), np.uint8), y=np.array([0, 1]), class_names=np.array(["a", "b"]))
    assert load_dataset(tmp_path / "d.npz", SPEC, labelled=False).y is None
    with pytest.raises(DataError, match=r"stores class_names \['a', 'b'\] but \['b', 'a'\] were expected"):
        load_dataset(tmp_path / "d.npz", SPEC, class_names=["b", "a"])
    np.savez(tmp_path / "u.npz", x=np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(DataError, match="no 'y' array but labels were asked for"):
        load_dataset(tmp_path / "u.npz", SPEC, labelled=True)
    assert load_dataset(tmp_path / "u.npz", SPEC, class_names=["a", "b"]).class_names == ["a", "b"]


def test_files_that_are_not_npz(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(DataError, match="not an .npz archive"):
        load_dataset(tmp_path / "text.npz", SPEC)
    np.savez(tmp_path / "ok.npz", x=np.zeros((50, 8, 8), np.uint8))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:300])
    with pytest.raises(DataError, match="cannot read"):
        load_dataset(tmp_path / "cut.npz", SPEC)


# ------------------------------------------------------------ bundled digits

def test_bundled_digits_load_fast_and_complete():
    start = time.perf_counter()
    ds = load_dataset(digits_dir(), DIGITS_SPEC)
    elapsed = time.perf_counter() - start
    # A slow board or an emulated one (tools/emulated_pi.sh) stretches the bound with EDGEKIT_TEST_TIME_SCALE.
    assert elapsed < 2.0 * float(os.environ.get("EDGEKIT_TEST_TIME_SCALE", "1")), f"loading the digits took {elapsed:.2f} s"
    assert ds.x.shape == (1797, 28, 28, 1) and ds.skipped == []
    assert ds.class_names == [str(i) for i in range(10)]
    assert ds.class_counts() == {"0": 178, "1": 182, "2": 177, "3": 183, "4": 181,
                                 "5": 182, "6": 181, "7": 179, "8": 174, "9": 180}
    assert 0.0 == ds.x.min() and ds.x.max() == 1.0
    assert load_digits().x.tobytes() == ds.x.tobytes()


def test_bundled_digits_are_sklearns_digits_at_8x8():
    from sklearn.datasets import load_digits as sk_load_digits

    digits = sk_load_digits()
    files = sorted(digits_dir().glob("*/*.png"))
    assert len(files) == len(digits.images) == 1797
    assert sum(f.stat().st_size for f in files) < 400_000  # tiny files, no upscaling
    expected = np.round(digits.images * (255 / 16)).astype(np.uint8)
    for f in files:
        index, label = int(f.stem), int(f.parent.name)
        image = read_image(f)
        assert image.shape == (8, 8), f
        assert label == digits.target[index], f
        np.testing.assert_array_equal(image, expected[index], err_msg=str(f))
    assert "CC BY 4.0" in (digits_dir() / "README.md").read_text(encoding="utf-8")


def test_write_digits_is_atomic_and_refuses_to_overwrite(tmp_path):
    from edgekit.data.digits import write_digits

    counts = write_digits(tmp_path / "digits")
    assert sum(counts.values()) == 1797
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits"]  # no temp folder left
    with pytest.raises(DataError, match="already exists"):
        write_digits(tmp_path / "digits")
    ds = load_dataset(tmp_path / "digits", DIGITS_SPEC)
    assert ds.x.tobytes() == load_digits().x.tobytes()


# ---------------------------------------------------------- splits and samples

@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_digits()


def test_split_is_deterministic_disjoint_and_complete(digits):
    train, held = split_dataset(digits, holdout=0.2, seed=0)
    again_train, again_held = split_dataset(digits, holdout=0.2, seed=0)
    assert train.paths == again_train.paths and held.paths == again_held.paths
    assert set(train.paths).isdisjoint(held.paths)
    assert sorted(train.paths + held.paths) == sorted(digits.paths)
    assert train.x.shape[1:] == held.x.shape[1:] == (28, 28, 1)
    assert split_dataset(digits, holdout=0.2, seed=1)[1].paths != held.paths


def test_split_keeps_class_proportions(digits):
    train, held = split_dataset(digits, holdout=0.25, seed=3)
    total = digits.class_counts()
    for name, n in held.class_counts().items():
        assert n == round(total[name] * 0.25), name
        assert train.class_counts()[name] == total[name] - n
    assert held.class_names == digits.class_names


def test_split_puts_every_class_with_two_samples_in_both_parts():
    y = np.array([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2])
    ds = Dataset.from_arrays(np.zeros((len(y), 2, 2, 1), np.float32), y, ["a", "b", "c"], source="toy")
    train, held = split_dataset(ds, holdout=0.1)
    assert held.class_counts() == {"a": 1, "b": 1, "c": 0}  # c has one sample: train only
    assert train.class_counts() == {"a": 1, "b": 9, "c": 1}


def test_split_unlabelled_and_bad_arguments(digits):
    unl = Dataset.from_arrays(digits.x[:100], None, [], source="unl")
    train, held = split_dataset(unl, holdout=0.3, seed=0)
    assert (len(train), len(held)) == (70, 30) and held.y is None
    for bad in (0, 1, 1.5, -0.1, True, "0.2"):
        with pytest.raises(ConfigError, match="holdout"):
            split_dataset(digits, holdout=bad)
    with pytest.raises(DataError, match="at least 2"):
        split_dataset(digits.subset(np.array([0])))


def test_sample_stratified(digits):
    s = sample_stratified(digits, 100, seed=0)
    assert len(s) == 100 and set(s.class_counts().values()) == {10}
    assert sample_stratified(digits, 100, seed=0).paths == s.paths
    assert sample_stratified(digits, 100, seed=1).paths != s.paths
    assert s.paths == sorted(s.paths, key=digits.paths.index)  # original order
    odd = sample_stratified(digits, 37)
    assert len(odd) == 37 and min(odd.class_counts().values()) >= 3
    assert len(sample_stratified(digits, 5)) == 5  # fewer than the classes: one each from 5 of them
    assert len(sample_stratified(digits, 10_000)) == len(digits)
    with pytest.raises(ConfigError, match="positive"):
        sample_stratified(digits, 0)


def test_sample_stratified_keeps_proportions_of_unequal_classes():
    y = np.array([0] * 80 + [1] * 15 + [2] * 5)
    ds = Dataset.from_arrays(np.zeros((100, 2, 2, 1), np.float32), y, ["big", "mid", "small"], source="toy")
    assert sample_stratified(ds, 20).class_counts() == {"big": 16, "mid": 3, "small": 1}


# ---------------------------------------------------------------- check_labels

def test_check_labels_passes_and_returns_counts(digits):
    assert check_labels(digits, 10) == digits.class_counts()


def test_check_labels_errors(digits, photo_folder):
    with pytest.raises(DataError, match=r"has 10 classes \(0, 1, 2, 3, 4, \.\.\.\) but the model outputs 5 values"):
        check_labels(digits, 5)
    with pytest.raises(DataError, match="unlabelled"):
        check_labels(Dataset.from_arrays(digits.x[:3], None, [], source="u"), 10)
    ds = load_dataset(photo_folder, SPEC, class_names=["astronaut", "coffee", "rocket", "empty"])
    with pytest.raises(DataError, match=r"1 class\(es\) have fewer than 2 samples: 'empty' has 0"):
        check_labels(ds, 4)
    few = ds.subset(np.array([0, 1, 5, 10, 11, 12]))
    with pytest.raises(DataError, match=r"'coffee' has 1, 'empty' has 0"):
        check_labels(few, 4)
    assert check_labels(few, 4, min_per_class=0)["coffee"] == 1


def test_no_warnings_on_clean_data(digits, photo_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(photo_folder, SPEC)


# ------------------------------------------------------------------ streaming

def test_folder_streams_batches_identical_to_the_device_preprocessing(photo_folder):
    """Each streamed sample is bit for bit what the device computes from that file."""
    ds = load_dataset(photo_folder, SPEC)
    device = np.stack([SPEC.apply(read_image(p), input_order="bgr") for p in ds.paths])
    streamed = np.concatenate(list(ds.batches(4)))
    assert streamed.dtype == np.float32 and np.array_equal(streamed, device)
    assert np.array_equal(np.stack(list(ds)), device)  # sample by sample, as the interpreter reads it
    assert np.array_equal(ds[:3], device[:3]) and np.array_equal(ds[7], device[7])
    order = np.array([14, 0, 7, 3])
    assert np.array_equal(np.concatenate(list(ds.batches(3, order))), device[order])
    train, held = split_dataset(ds, holdout=0.4, seed=1)
    assert np.array_equal(held.read(), device[[ds.paths.index(p) for p in held.paths]])
    assert ds.shape == (15, 24, 24, 3) and held.reader is ds.reader  # a subset is an index list
    with pytest.raises(TypeError, match="streams its images"):
        np.asarray(ds)


def test_loading_a_folder_keeps_no_pixels_and_a_file_spoilt_later_is_named(tmp_path):
    root = tmp_path / "set"
    for name, load in PHOTOS.items():
        (root / name).mkdir(parents=True)
        for i, crop in enumerate(_crops(load(), 3)):
            _write(root / name / f"{i}.jpg", crop)
    ds = load_dataset(root, SPEC)
    assert len(ds) == 9 and not any(isinstance(v, np.ndarray) and v.ndim == 4 for v in vars(ds).values())
    (root / "coffee" / "1.jpg").write_bytes(b"overwritten after listing")
    with pytest.raises(DataError, match=r"coffee/1\.jpg can no longer be read"):
        ds.read()


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "compressed"])
def test_npz_images_are_memory_mapped_not_read(tmp_path, save):
    import gc

    x = np.stack(_crops(skdata.astronaut(), 4))
    save(tmp_path / "d.npz", x=x, y=np.array([0, 1, 0, 1]))
    ds = load_dataset(tmp_path / "d.npz", SPEC)
    mapped = ds.reader.array
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(np.asarray(mapped), x)
    np.testing.assert_array_equal(ds.x, SPEC.apply_batch(x, input_order="rgb"))
    if save is np.savez:  # mapped in place, inside the archive
        assert Path(mapped.filename) == (tmp_path / "d.npz").resolve()
    else:  # deflate has no random access: inflated once to a temporary .npy, deleted with the data set
        tmp = Path(mapped.filename)
        assert tmp.suffix == ".npy" and tmp.exists()
        del ds, mapped
        gc.collect()
        assert not tmp.exists()


def test_streaming_memory_stays_at_a_few_batches(tmp_path):
    """Peak traced allocations while reading a 28 MB .npz stay near three batches, not the data set."""
    import tracemalloc

    n = 4000
    x = np.random.default_rng(0).random((n, 24, 24, 3), dtype=np.float32)
    np.savez(tmp_path / "big.npz", x=x, y=np.arange(n) % 4)
    del x
    ds = load_dataset(tmp_path / "big.npz", SPEC)
    batch = 64 * ds.sample_bytes
    tracemalloc.start()
    total = 0.0
    for b in ds.batches(64):
        total += float(b[:, 0, 0, 0].sum())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert n * ds.sample_bytes > 25 * batch
    assert peak < 4 * batch, f"peak {peak:,} bytes for batches of {batch:,}"
