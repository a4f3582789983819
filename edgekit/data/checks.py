"""Checks that a data set fits the model before any long work starts."""
from __future__ import annotations

from edgekit.data.dataset import Dataset
from edgekit.errors import DataError
from edgekit.metrics import output_classes

_SHOWN = 5


def check_labels(ds: Dataset, num_outputs: int, *, min_per_class: int = 2) -> dict[str, int]:
    """Check that labels match the model's output size and every class has enough samples.

    Args:
        ds: a labelled data set.
        num_outputs: the model's number of output units: one per class, or 1 for a
            binary (sigmoid) model, whose output is the probability of class index 1
            (class folders sort by name, so the second folder is the positive class).
        min_per_class: fewest samples a class may have (2 lets a stratified
            split put it in both parts).

    Returns:
        Samples per class name, in class order.

    Raises:
        DataError: unlabelled data, a class count that differs from
            ``num_outputs`` (2 when it is 1), a label out of range, or a class with too few
            samples (named, with its count).

    Example:
        >>> from edgekit.data import load_digits
        >>> check_labels(load_digits(), 10)["0"]
        178
    """
    if ds.y is None:
        raise DataError(
            f"data set {ds.source} is unlabelled; expected labels (one subfolder per class, or 'y' in the .npz)."
        )
    k = len(ds.class_names)
    classes = output_classes(num_outputs)
    if k != classes:
        expected = (
            "expected 2 classes for a single-output (sigmoid) model"
            if num_outputs == 1
            else "expected one class per output (or 2 classes for a single sigmoid output)"
        )
        present = sorted({int(v) for v in ds.y}) if len(ds.y) else []
        if len(present) != k:  # the class list came from elsewhere (the spec's labels): say what the data holds
            found = [ds.class_names[i] for i in present if 0 <= i < k]
            what = f"holds {len(present)} classes {_names(found)} (the class list given has {k})"
        else:
            what = f"has {k} classes {_names(ds.class_names)}"
        raise DataError(
            f"data set {ds.source} {what} but the model outputs {num_outputs} "
            f"value{'s' if num_outputs != 1 else ''}; {expected}.",
            hint="Use data with the model's classes, or pass class_names in the model's order.",
        )
    if len(ds.y) and int(ds.y.max()) >= classes:
        raise DataError(
            f"data set {ds.source} has label {int(ds.y.max())}; expected labels 0..{classes - 1} for a model "
            f"with {num_outputs} output{'s' if num_outputs != 1 else ''}."
        )
    counts = ds.class_counts()
    short = [(name, c) for name, c in counts.items() if c < min_per_class]
    if short:
        listed = ", ".join(f"{name!r} has {c}" for name, c in short[:_SHOWN])
        more = f" (and {len(short) - _SHOWN} more)" if len(short) > _SHOWN else ""
        raise DataError(
            f"data set {ds.source}: {len(short)} class(es) have fewer than {min_per_class} samples: {listed}{more}.",
            hint="Add images for those classes, or remove them from the data and the model.",
        )
    return counts


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return f"({shown}{', ...' if len(names) > _SHOWN else ''})"
