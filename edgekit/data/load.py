"""``load_dataset``: one entry point that picks the reader from what the path is."""
from __future__ import annotations

from pathlib import Path

from edgekit.data.dataset import Dataset
from edgekit.data.folders import IMAGE_EXTENSIONS, load_image_folder
from edgekit.data.npz import load_npz
from edgekit.errors import ConfigError, DataError
from edgekit.preprocess import PreprocessSpec

_EXPECTED = (
    "expected a folder of images (one subfolder per class, or flat for unlabelled) "
    "or a .npz file with 'x' (and 'y')"
)


def load_dataset(
    path: str | Path,
    spec: PreprocessSpec,
    *,
    labelled: bool | None = None,
    class_names: list[str] | None = None,
) -> Dataset:
    """Load an image folder or ``.npz`` file and preprocess it with ``spec``.

    Image folders: one subfolder per class (sorted names give the class
    index), files ``.jpg/.jpeg/.png/.bmp`` in any case; a flat folder is
    unlabelled. Unreadable or non-image files are skipped and reported in one
    :class:`SkippedFilesWarning`. ``.npz``: ``x`` uint8 images (RGB) or float
    inputs already preprocessed to ``spec.shape``, optional ``y`` (indices or
    one-hot) and ``class_names``.

    Args:
        path: the folder or ``.npz`` file.
        spec: how images become model inputs.
        labelled: None = decide from the data; True = labels required;
            False = ignore labels (a labelled folder is read recursively).
        class_names: the class order to use (e.g. the model's labels); folder
            names or stored names must agree with it.

    Returns:
        A :class:`Dataset` whose samples (decoded on demand) have ``ds.shape == (N, *spec.shape)``.

    Raises:
        DataError: missing path, no usable images, or inconsistent arrays.
        ConfigError: ``spec`` or ``class_names`` is not valid.

    Example:
        >>> from edgekit.data.digits import DIGITS_SPEC
        >>> from edgekit.resources import digits_dir
        >>> len(load_dataset(digits_dir(), DIGITS_SPEC))
        1797
    """
    if not isinstance(spec, PreprocessSpec):
        raise ConfigError(f"spec must be a PreprocessSpec; received {type(spec).__name__}.")
    if labelled not in (None, True, False):
        raise ConfigError(f"labelled={labelled!r} is not valid; expected None, True or False.")
    if class_names is not None:
        class_names = _check_names(class_names)
    p = Path(path)
    if not p.exists():
        raise DataError(f"data set {p} does not exist; {_EXPECTED}.")
    if p.is_dir():
        return load_image_folder(p, spec, labelled=labelled, class_names=class_names)
    if p.suffix.lower() == ".npz":
        return load_npz(p, spec, labelled=labelled, class_names=class_names)
    hint = " For a single image, put it in a folder." if p.suffix.lower() in IMAGE_EXTENSIONS else ""
    raise DataError(f"data set {p} is a {p.suffix or 'suffix-less'} file; {_EXPECTED}.{hint}")


def _check_names(names: object) -> list[str]:
    if isinstance(names, str) or not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"class_names={names!r} is not valid; expected a list of strings.")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"class_names has duplicates {dupes}; expected each class once.")
    return list(names)
