"""The data set every loader returns and every consumer takes: a file list read lazily.

A :class:`Dataset` holds what is small (labels, class names, the source of each
sample, skipped files) and a :class:`~edgekit.data.source.Source` that decodes
and preprocesses samples on demand with the shared
:class:`~edgekit.preprocess.PreprocessSpec`. Subsets (the split, calibration
samples) are index lists, so nothing is decoded until a consumer asks, and
consumers ask in batches (:meth:`Dataset.batches`): peak memory is a few
batches, whatever the number of images.

A Dataset also reads like a read-only array of preprocessed samples:
``len(ds)``, ``ds.shape``, ``ds[i]``, ``ds[:n]`` and iteration over samples,
so code written for arrays (the interpreter's ``run_batch``) streams unchanged.
``ds.x`` decodes everything into one array: for small data only (tests, the
bundled digits); compress never uses it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from edgekit.data.source import ArraySource, Source

DEFAULT_BATCH = 64  # samples decoded together when a consumer does not say


@dataclass
class Dataset:
    """Labels and class names in memory, images decoded on demand.

    Example:
        >>> ds = Dataset.from_arrays(np.zeros((2, 8, 8, 1), np.float32), np.array([0, 1]), ["a", "b"])
        >>> len(ds), ds.shape, ds.class_counts()
        (2, (2, 8, 8, 1), {'a': 1, 'b': 1})
    """

    reader: Source  # decodes sample i of the whole file list
    index: np.ndarray  # (N,) positions in ``reader`` this data set holds, in order
    y: np.ndarray | None  # (N,) int64 class indices; None when unlabelled
    class_names: list[str]
    paths: list[str] | None = None  # source file per sample (image folders), else None
    skipped: list[str] = field(default_factory=list)  # files skipped as unreadable / not images
    source: str = ""  # the folder or file it was read from

    @classmethod
    def from_arrays(
        cls, x: np.ndarray, y: np.ndarray | None = None, class_names: list[str] | None = None, *, source: str = "arrays"
    ) -> "Dataset":
        """Wrap float32 inputs that are already preprocessed (no copy), e.g. for the library API.

        Example:
            >>> len(Dataset.from_arrays(np.zeros((3, 4, 4, 1), np.float32)))
            3
        """
        x = np.asarray(x)
        ys = None if y is None else np.asarray(y, dtype=np.int64)
        names = list(class_names) if class_names is not None else ([] if ys is None else [str(i) for i in range(int(ys.max()) + 1)])
        return cls(ArraySource(x, None, source), np.arange(len(x), dtype=np.int64), ys, names, None, [], source)

    # ---------------------------------------------------------------- size

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """``(N, H, W, C)``: what ``ds.x`` would be, without decoding anything."""
        return (len(self), *self.reader.sample_shape)

    @property
    def sample_bytes(self) -> int:
        return int(np.prod(self.reader.sample_shape)) * 4

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
        """The samples at ``indices`` (in that order): an index list, nothing is decoded."""
        idx = np.asarray(indices, dtype=np.int64)
        return Dataset(
            reader=self.reader,
            index=self.index[idx],
            y=None if self.y is None else self.y[idx],
            class_names=list(self.class_names),
            paths=None if self.paths is None else [self.paths[i] for i in idx],
            skipped=list(self.skipped),
            source=self.source,
        )

    # ------------------------------------------------------------- reading

    def batches(self, batch_size: int = DEFAULT_BATCH, order: np.ndarray | None = None, *, prefetch: int = 2) -> Iterator[np.ndarray]:
        """Preprocessed float32 batches ``(b, H, W, C)``, in ``order`` (positions in this data set) or as stored.

        Decoding runs on a thread pool ``prefetch`` batches ahead of the
        consumer, so at most ``prefetch + 1`` batches are in memory.
        """
        positions = np.arange(len(self)) if order is None else np.asarray(order, dtype=np.int64)
        yield from self.reader.batches(self.index[positions], int(batch_size), prefetch=prefetch)

    def read(self, positions: np.ndarray | slice | None = None) -> np.ndarray:
        """The samples at ``positions`` (all when None) decoded into one float32 array."""
        if positions is None:
            positions = np.arange(len(self))
        elif isinstance(positions, slice):
            positions = np.arange(len(self))[positions]
        pos = np.asarray(positions, dtype=np.int64)
        out = np.empty((len(pos), *self.reader.sample_shape), dtype=np.float32)
        at = 0
        for batch in self.batches(DEFAULT_BATCH, pos):
            out[at : at + len(batch)] = batch
            at += len(batch)
        return out

    @property
    def x(self) -> np.ndarray:
        """Every sample decoded into one ``(N, H, W, C)`` float32 array (small data sets only)."""
        return self.read()

    def __getitem__(self, key: int | slice | np.ndarray) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.read(np.array([int(key) % max(len(self), 1)]))[0]
        return self.read(key)

    def __iter__(self) -> Iterator[np.ndarray]:
        """One preprocessed sample at a time, decoded a batch ahead."""
        for batch in self.batches():
            yield from batch

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        # np.asarray(ds) would decode the whole data set behind the caller's back.
        raise TypeError(f"{self!r} streams its images; read them with .batches(), .read(positions) or .x (all at once).")

    def __repr__(self) -> str:
        return f"Dataset({len(self)} samples of {self.reader.sample_shape}, {len(self.class_names)} classes, from {self.source!r})"
