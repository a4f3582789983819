"""The bundled example data: scikit-learn's real handwritten digits as an image folder.

``calibration/digits/<class>/<index>.png`` holds the 1,797 8x8 scans from
``sklearn.datasets.load_digits`` (UCI ML hand-written digits, CC BY 4.0) as
grayscale PNGs scaled 0..16 -> 0..255. They are stored at their native 8x8;
:data:`DIGITS_SPEC` resizes them to the example model's 28x28 input.

:func:`write_digits` is a development-time tool that (re)creates that folder;
it needs scikit-learn (the ``dev`` extra). Users only ever read the folder::

    python -c "from edgekit.data.digits import write_digits; write_digits('calibration/digits', overwrite=True)"
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from edgekit.data.dataset import Dataset
from edgekit.errors import DataError, MissingExtraError
from edgekit.preprocess import PreprocessSpec

# The spec of the bundled example model (28x28 gray, x / 255, softmax output).
DIGITS_SPEC = PreprocessSpec(
    input_size=(28, 28),
    channels=1,
    color_order="gray",
    interpolation="bilinear",
    preset="unit",
    output="probabilities",
)

_README = """\
# Handwritten digits (bundled example data)

The {n:,} real 8x8 handwritten-digit scans that ship with scikit-learn
(`sklearn.datasets.load_digits`), one grayscale PNG per scan, one folder per
class (`0` .. `9`). File names are the sample's index in scikit-learn's array.

- **Source:** scikit-learn {sklearn_version}, `load_digits()`, a copy of the test
  set of the UCI ML hand-written digits data set
  (E. Alpaydin, C. Kaynak, 1998; https://doi.org/10.24432/C50P49).
- **License:** Creative Commons Attribution 4.0 International (CC BY 4.0).
- **Pixels:** the original 0..16 ink counts scaled to 0..255 (`round(v * 255 / 16)`),
  white ink on black, kept at 8x8. Resizing to the model input (28x28) is the
  job of the preprocessing spec, `edgekit.data.digits.DIGITS_SPEC`.
- **Regenerate:** `python -c "from edgekit.data.digits import write_digits; write_digits('calibration/digits', overwrite=True)"`

| class | images |
| --- | --- |
{rows}
| total | {n} |
"""


def load_digits(spec: PreprocessSpec = DIGITS_SPEC) -> Dataset:
    """The bundled digits, preprocessed with ``spec`` (default :data:`DIGITS_SPEC`).

    Example:
        >>> ds = load_digits()
        >>> ds.x.shape, len(ds.class_names)
        ((1797, 28, 28, 1), 10)
    """
    from edgekit.data.load import load_dataset
    from edgekit.resources import digits_dir

    return load_dataset(digits_dir(), spec, labelled=True)


def write_digits(dest: str | Path, *, overwrite: bool = False) -> dict[str, int]:
    """Write scikit-learn's digits to ``dest/<class>/<index>.png`` plus a README.

    A development-time tool: the result is committed under ``calibration/``.
    The folder is built beside ``dest`` and renamed into place, so a failure
    never leaves half a data set.

    Args:
        dest: the folder to create.
        overwrite: replace ``dest`` if it exists.

    Returns:
        Images per class.

    Raises:
        MissingExtraError: scikit-learn or OpenCV is not installed.
        DataError: ``dest`` exists and ``overwrite`` is False.

    Example:
        >>> write_digits("/tmp/digits", overwrite=True)["0"]  # doctest: +SKIP
        178
    """
    try:
        import cv2
        import sklearn
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as e:
        raise MissingExtraError(
            f"writing the digits needs scikit-learn and OpenCV ({e}).", hint='Install them: pip install "edgekit[dev]"'
        ) from e
    out = Path(dest)
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; pass overwrite=True to replace it.")

    digits = sk_load_digits()
    # 0..16 ink counts -> 0..255; 16 * 255 / 16 hits 255 exactly, so no clipping is needed.
    images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target.astype(int)
    width = len(str(len(images) - 1))  # zero-padded so sorted names follow the index

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = tmp / str(label)
            folder.mkdir(exist_ok=True)
            ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
            if not ok:
                raise DataError(f"OpenCV could not encode digit {i} as PNG.")
            (folder / f"{i:0{width}d}.png").write_bytes(png.tobytes())
        counts = {str(c): int((labels == c).sum()) for c in range(10)}
        rows = "\n".join(f"| {c} | {k} |" for c, k in counts.items())
        (tmp / "README.md").write_text(
            _README.format(n=len(images), sklearn_version=sklearn.__version__, rows=rows), encoding="utf-8"
        )
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return counts
