"""Data sets for edgekit: image folders and ``.npz`` files, preprocessed with a spec.

Every loader returns a :class:`Dataset` (float32 ``x`` already preprocessed with
a :class:`~edgekit.preprocess.PreprocessSpec`, int64 ``y``). Splits and samples
are deterministic and stratified. To support a new on-disk format, add a
module with a ``load_<format>(path, spec, *, labelled, class_names)`` function
and route to it in :mod:`edgekit.data.load`.

    from edgekit.data import load_dataset, split_dataset
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.resources import digits_dir

    ds = load_dataset(digits_dir(), DIGITS_SPEC)
    train, held_out = split_dataset(ds, holdout=0.2, seed=0)
"""
from __future__ import annotations

from edgekit.data.checks import check_labels
from edgekit.data.dataset import Dataset
from edgekit.data.digits import DIGITS_SPEC, load_digits
from edgekit.data.folders import IMAGE_EXTENSIONS, SkippedFilesWarning
from edgekit.data.load import load_dataset
from edgekit.data.split import sample_stratified, split_dataset

__all__ = [
    "DIGITS_SPEC",
    "IMAGE_EXTENSIONS",
    "Dataset",
    "SkippedFilesWarning",
    "check_labels",
    "load_dataset",
    "load_digits",
    "sample_stratified",
    "split_dataset",
]
