"""Deterministic, stratified subsets: the held-out split and calibration samples.

Both draw from ``numpy.random.default_rng(seed)`` class by class, so the same
data set and seed always give the same indices, and each part keeps the class
proportions. Indices are returned in their original order.
"""
from __future__ import annotations

import numpy as np

from edgekit.data.dataset import Dataset
from edgekit.errors import ConfigError, DataError


def split_dataset(ds: Dataset, holdout: float = 0.2, seed: int = 0) -> tuple[Dataset, Dataset]:
    """Split into (train, held-out), stratified by class.

    Every class with at least 2 samples lands in both parts; a class with a
    single sample goes to train. Unlabelled data is split at random.

    Args:
        ds: the data set.
        holdout: fraction held out, strictly between 0 and 1.
        seed: the same seed gives the same split.

    Returns:
        (train, held_out).

    Raises:
        ConfigError: ``holdout`` outside (0, 1).
        DataError: fewer than 2 samples, so one part would be empty.

    Example:
        >>> from edgekit.data import load_digits
        >>> train, held = split_dataset(load_digits(), holdout=0.2, seed=0)
        >>> len(train), len(held)
        (1438, 359)
    """
    if isinstance(holdout, bool) or not isinstance(holdout, (int, float)) or not 0 < holdout < 1:
        raise ConfigError(f"holdout={holdout!r} is not valid; expected a fraction between 0 and 1 (e.g. 0.2).")
    if len(ds) < 2:
        raise DataError(f"data set {ds.source} has {len(ds)} sample(s); a split needs at least 2.")
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for idx in _groups(ds):
        if len(idx) < 2:
            continue
        k = min(max(int(round(len(idx) * holdout)), 1), len(idx) - 1)
        held.append(rng.permutation(idx)[:k])
    held_idx = np.sort(np.concatenate(held)) if held else np.empty(0, np.int64)
    mask = np.zeros(len(ds), dtype=bool)
    mask[held_idx] = True
    return ds.subset(np.flatnonzero(~mask)), ds.subset(held_idx)


def sample_stratified(ds: Dataset, n: int, seed: int = 0) -> Dataset:
    """Pick ``n`` samples that keep the class proportions (e.g. int8 calibration data).

    Shares are proportional to class size (largest remainder), and each class
    present gets at least one sample when ``n`` allows. When ``n`` is at
    least ``len(ds)`` the whole data set is returned.

    Args:
        ds: the data set (unlabelled data is sampled at random).
        n: how many samples, > 0.
        seed: the same seed gives the same sample.

    Returns:
        A :class:`Dataset` of ``min(n, len(ds))`` samples in original order.

    Raises:
        ConfigError: ``n`` is not a positive integer.

    Example:
        >>> from edgekit.data import load_digits
        >>> len(sample_stratified(load_digits(), 200))
        200
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ConfigError(f"n={n!r} is not valid; expected a positive number of samples.")
    if n >= len(ds):
        return ds.subset(np.arange(len(ds)))
    rng = np.random.default_rng(seed)
    groups = [g for g in _groups(ds) if len(g)]
    take = _allocate(np.array([len(g) for g in groups]), int(n), rng)
    picked = [rng.permutation(g)[:k] for g, k in zip(groups, take)]
    return ds.subset(np.sort(np.concatenate(picked)))


def _groups(ds: Dataset) -> list[np.ndarray]:
    """Indices per class in class order; one group of everything when unlabelled."""
    if ds.y is None:
        return [np.arange(len(ds))]
    return [np.flatnonzero(ds.y == c) for c in range(max(len(ds.class_names), int(ds.y.max()) + 1))]


def _allocate(sizes: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """How many to take from each group: largest remainder, then at least one each."""
    k = len(sizes)
    if n < k:
        # Not enough for every class: one each from n classes chosen by the seed.
        take = np.zeros(k, dtype=np.int64)
        take[rng.permutation(k)[:n]] = 1
        return take
    quota = sizes * (n / sizes.sum())
    take = np.floor(quota).astype(np.int64)
    # Ties go to the lower class index (stable sort), so the result is fixed.
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: n - int(take.sum())]] += 1
    # A class too small for its share still gets one, lent by the largest share;
    # n >= k guarantees a share of 2 or more exists while any share is 0.
    for c in np.flatnonzero(take == 0):
        take[int(np.argmax(take))] -= 1
        take[c] = 1
    return take
