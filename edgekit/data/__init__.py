"""Data sets for edgekit: image folders and ``.npz`` files, read lazily and preprocessed with a spec.

Every loader returns a :class:`Dataset`: the file list (or memory-mapped
array), int64 labels and class names, with images decoded and preprocessed by
the shared :class:`~edgekit.preprocess.PreprocessSpec` only when a consumer
reads them, in batches (:meth:`Dataset.batches`). Splits and samples are
deterministic, stratified index lists. To support a new on-disk format, add a
:class:`~edgekit.data.source.Source` and a ``load_<format>(path, spec, *,
labelled, class_names)`` function, and route to it in :mod:`edgekit.data.load`.

    from edgekit.data import load_dataset, split_dataset
    from edgekit.data.digits import DIGITS_SPEC
    from edgekit.resources import digits_dir

    ds = load_dataset(digits_dir(), DIGITS_SPEC)
    train, held_out = split_dataset(ds, holdout=0.2, seed=0)
    for batch in held_out.batches(64):  # float32 (<=64, 28, 28, 1), decoded on demand
        ...
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
