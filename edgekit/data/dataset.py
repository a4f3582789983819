"""The in-memory data set every loader returns and every consumer takes."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Dataset:
    """Preprocessed images, their labels, and where they came from.

    Example:
        >>> ds = Dataset(np.zeros((2, 8, 8, 1), np.float32), np.array([0, 1]), ["a", "b"], None)
        >>> len(ds), ds.class_counts()
        (2, {'a': 1, 'b': 1})
    """

    x: np.ndarray  # (N, H, W, C) float32, already preprocessed with the spec
    y: np.ndarray | None  # (N,) int64 class indices; None when unlabelled
    class_names: list[str]
    paths: list[str] | None  # source file per sample (image folders), else None
    skipped: list[str] = field(default_factory=list)  # files skipped as unreadable / not images
    source: str = ""

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def labelled(self) -> bool:
        return self.y is not None

    def class_counts(self) -> dict[str, int]:
        """Samples per class, in class-index order (zero for a class with none); {} when unlabelled."""
        if self.y is None:
            return {}
        counts = np.bincount(self.y, minlength=len(self.class_names))
        return {name: int(counts[i]) for i, name in enumerate(self.class_names)}

    def subset(self, indices: np.ndarray) -> "Dataset":
        """The samples at ``indices`` (in that order), with the same class names and source."""
        idx = np.asarray(indices, dtype=np.int64)
        return Dataset(
            x=self.x[idx],
            y=None if self.y is None else self.y[idx],
            class_names=list(self.class_names),
            paths=None if self.paths is None else [self.paths[i] for i in idx],
            skipped=list(self.skipped),
            source=self.source,
        )
