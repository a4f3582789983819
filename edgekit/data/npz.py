"""``.npz`` data sets: ``x`` (images or preprocessed floats), optional ``y`` and ``class_names``.

uint8 ``x`` is taken as RGB images (numpy's convention) and preprocessed with
the spec; float ``x`` is taken as already preprocessed and must have the spec's
shape. Arrays are loaded with ``allow_pickle=False``: a data file never runs code.

``x`` is never read whole: an ``np.savez`` member is stored uncompressed and
is memory-mapped in place; an ``np.savez_compressed`` member cannot be
memory-mapped (deflate has no random access), so it is decompressed once, in
chunks, into a temporary ``.npy`` file (disk, not memory) that is mapped and
deleted with the data set. ``y`` and ``class_names`` are small and read whole.
"""
from __future__ import annotations

import shutil
import struct
import tempfile
import weakref
import zipfile
from pathlib import Path

import numpy as np

from edgekit.data.dataset import Dataset
from edgekit.data.source import ArraySource
from edgekit.errors import DataError
from edgekit.preprocess import PreprocessSpec

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip member's local file header (30 bytes)
_FINITE_CHUNK = 1 << 24  # floats checked for NaN/inf per step (64 MB)


def load_npz(
    path: Path, spec: PreprocessSpec, *, labelled: bool | None = None, class_names: list[str] | None = None
) -> Dataset:
    """Read and check an ``.npz`` data set; see :func:`edgekit.data.load_dataset`."""
    # np.load sniffs the content, and anything that is not a zip or .npy looks
    # like pickled data to it; say plainly what the file is not instead.
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}.") from e
    if head[:2] != b"PK":
        raise DataError(f"{path} is not an .npz archive; expected a file written by numpy.savez.")
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            if "x" not in keys:
                raise DataError(
                    f"{path} has no 'x' array; found keys {keys}. Expected 'x' (images), "
                    "optional 'y' (labels) and 'class_names'."
                )
            raw_x, keep = _map_member(path, "x")
            raw_y = z["y"] if "y" in keys and labelled is not False else None
            stored_names = z["class_names"] if "class_names" in keys else None
    except DataError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise DataError(
                f"{path} holds Python objects (pickled arrays); edgekit does not unpickle data files.",
                hint="Save x and y as numeric arrays and class_names as a string array (np.array(names, dtype=str)).",
            ) from e
        raise DataError(f"cannot read {path} as .npz: {e}.") from e
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {path} as .npz ({e}); expected a file written by numpy.savez.") from e

    reader = _images(path, raw_x, spec, keep)
    n = int(raw_x.shape[0])
    if labelled and raw_y is None:
        raise DataError(f"{path} has no 'y' array but labels were asked for; found keys {keys}.")
    y = None if raw_y is None else _labels(path, raw_y, n)
    names = _names(path, stored_names, class_names, y)
    return Dataset(
        reader=reader, index=np.arange(n, dtype=np.int64), y=y, class_names=names, paths=None, skipped=[], source=str(path)
    )


def _map_member(path: Path, key: str) -> tuple[np.ndarray, object]:
    """Member ``key`` of the archive as a read-only memory map (and what keeps its backing file alive).

    Raises:
        ValueError: the member holds Python objects (the caller words it).
    """
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
        if info.compress_type == zipfile.ZIP_STORED:
            with open(path, "rb") as f:
                f.seek(info.header_offset)
                header = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
                if header[0] != b"PK\x03\x04":
                    raise zipfile.BadZipFile(f"bad local header for member {info.filename}")
                f.seek(info.header_offset + _LOCAL_HEADER.size + header[-2] + header[-1])
                shape, fortran, dtype, offset = _npy_header(f)
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"), None
        # Compressed: inflate once to a temporary .npy beside nothing the user owns, then map it.
        tmp = tempfile.NamedTemporaryFile(prefix="edgekit-npz-", suffix=".npy", delete=False)
        try:
            with tmp, zf.open(info) as member:
                shutil.copyfileobj(member, tmp, length=1 << 22)
            with open(tmp.name, "rb") as f:
                shape, fortran, dtype, offset = _npy_header(f)
            arr = np.memmap(tmp.name, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
        except BaseException:
            Path(tmp.name).unlink(missing_ok=True)
            raise
        return arr, _TempFile(tmp.name)


class _TempFile:
    """Deletes the inflated copy when the last data set reading it is gone (or at exit)."""

    def __init__(self, name: str):
        self.name = name
        self._done = weakref.finalize(self, Path(name).unlink, missing_ok=True)


def _npy_header(f: object) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
    else:
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
    if dtype.hasobject:
        raise ValueError("Object arrays cannot be loaded when allow_pickle=False")
    return tuple(shape), bool(fortran), dtype, f.tell()  # type: ignore[attr-defined]


def _images(path: Path, x: np.ndarray, spec: PreprocessSpec, keep: object) -> ArraySource:
    if x.ndim == 0 or x.shape[0] == 0:
        raise DataError(f"{path} 'x' is empty (shape {x.shape}); expected at least one image.")
    if x.dtype == np.uint8:
        if not (x.ndim == 3 or (x.ndim == 4 and x.shape[3] in (1, 3, 4))):
            raise DataError(
                f"{path} 'x' is uint8 with shape {x.shape}; expected images as (N, H, W) or (N, H, W, 1|3|4)."
            )
        return ArraySource(x, spec, str(path), keep=keep)
    if np.issubdtype(x.dtype, np.floating):
        if x.ndim == 3 and spec.channels == 1:
            x = x.reshape((*x.shape, 1))
        if x.shape[1:] != spec.shape:
            raise DataError(
                f"{path} 'x' holds preprocessed floats of shape (H, W, C)={x.shape[1:]}; "
                f"expected {spec.shape} from the preprocessing spec.",
                hint="Store uint8 images to have them resized and normalised, or preprocess to that shape.",
            )
        flat = x.reshape(-1)
        for start in range(0, flat.size, _FINITE_CHUNK):  # in chunks: the map is never read whole
            if not np.isfinite(flat[start : start + _FINITE_CHUNK]).all():
                raise DataError(f"{path} 'x' contains NaN or infinite values; expected finite preprocessed inputs.")
        return ArraySource(x, None, str(path), keep=keep)
    raise DataError(
        f"{path} 'x' has dtype {x.dtype}; expected uint8 images or float32 preprocessed inputs.",
        hint="Convert pixel arrays with x.astype(np.uint8) after checking they are 0..255.",
    )


def _labels(path: Path, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot (or per-class scores): the class is the largest column
        y = y.argmax(axis=1)
    elif y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(f"{path} 'y' has shape {y.shape}; expected (N,) class indices or (N, classes) one-hot.")
    if len(y) != n:
        raise DataError(f"{path} has {n} images in 'x' but {len(y)} labels in 'y'; expected one label per image.")
    if np.issubdtype(y.dtype, np.floating):
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise DataError(f"{path} 'y' has non-integer values; expected class indices 0..K-1.")
    elif not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{path} 'y' has dtype {y.dtype}; expected integer class indices 0..K-1.",
            hint="Map names to indices and store the names as 'class_names'.",
        )
    y = y.astype(np.int64)
    if y.min() < 0:
        raise DataError(f"{path} 'y' has negative label {int(y.min())}; expected class indices 0..K-1.")
    return y


def _names(
    path: Path, stored: np.ndarray | None, given: list[str] | None, y: np.ndarray | None
) -> list[str]:
    stored_list = None if stored is None else [str(c) for c in np.asarray(stored).ravel().tolist()]
    if stored_list is not None and given is not None and stored_list != list(given):
        raise DataError(
            f"{path} stores class_names {stored_list} but {list(given)} were expected.",
            hint="Relabel the file, or load it without class_names to use its own.",
        )
    names = list(given) if given is not None else stored_list
    if y is None:
        return names or []
    top = int(y.max())
    if names is None:
        return [str(i) for i in range(top + 1)]
    if top >= len(names):
        raise DataError(
            f"{path} 'y' has label {top} but there are only {len(names)} class names {names}; "
            "expected labels 0..K-1 for K names."
        )
    return names
