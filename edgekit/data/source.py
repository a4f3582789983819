"""Where a data set's samples come from, decoded on demand in batches.

A :class:`Source` turns position ``i`` of a file list (or of an array on
disk) into one preprocessed float32 sample, with the same
:meth:`~edgekit.preprocess.PreprocessSpec.apply` the device runs. Batches
are decoded on one shared thread pool a few batches ahead of the consumer
(OpenCV releases the GIL while it decodes and resizes), so memory holds a few
batches, never the data set.

To read a new kind of storage, subclass :class:`Source` with ``sample_shape``
and ``decode``; override ``batches`` only when a whole batch is cheaper to
read at once (as :class:`ArraySource` does for preprocessed floats).
"""
from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from edgekit.errors import DataError
from edgekit.preprocess import PreprocessSpec, read_image

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def decode_workers() -> int:
    """Threads that decode images: ``EDGEKIT_DATA_WORKERS``, else the CPU count (at most 8)."""
    raw = os.environ.get("EDGEKIT_DATA_WORKERS", "")
    if raw.strip():
        try:
            n = int(raw)
        except ValueError:
            raise DataError(f"EDGEKIT_DATA_WORKERS={raw!r} is not valid; expected a positive integer.") from None
        if n < 1:
            raise DataError(f"EDGEKIT_DATA_WORKERS={raw!r} is not valid; expected a positive integer.")
        return n
    return max(1, min(8, os.cpu_count() or 1))


def pool() -> ThreadPoolExecutor:
    """The process-wide decode pool (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=decode_workers(), thread_name_prefix="edgekit-decode")
        return _POOL


def parallel_map(fn: Callable[[Any], Any], items: Iterable[Any], *, window: int = 256) -> Iterator[Any]:
    """``map(fn, items)`` on the decode pool, in order, with at most ``window`` calls in flight."""
    ex = pool()
    pending: deque[Future[Any]] = deque()
    try:
        for item in items:
            pending.append(ex.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:
            f.cancel()


class Source(ABC):
    """Decodes sample ``i`` of a fixed list into a preprocessed float32 array of ``sample_shape``."""

    sample_shape: tuple[int, ...]

    @abstractmethod
    def decode(self, i: int) -> np.ndarray:
        """Sample ``i``, preprocessed."""

    def batches(self, positions: np.ndarray, batch_size: int, *, prefetch: int = 2) -> Iterator[np.ndarray]:
        """Batches of the samples at ``positions``, decoded on the pool ``prefetch`` batches ahead."""
        ex = pool()
        pending: deque[list[Future[np.ndarray]]] = deque()
        try:
            for start in range(0, len(positions), batch_size):
                pending.append([ex.submit(self.decode, int(i)) for i in positions[start : start + batch_size]])
                if len(pending) > prefetch:
                    yield self._collect(pending.popleft())
            while pending:
                yield self._collect(pending.popleft())
        finally:  # the consumer stopped early: drop the decodes nobody will read
            for futures in pending:
                for f in futures:
                    f.cancel()

    def _collect(self, futures: Sequence[Future[np.ndarray]]) -> np.ndarray:
        out = np.empty((len(futures), *self.sample_shape), dtype=np.float32)
        for j, f in enumerate(futures):
            out[j] = f.result()
        return out


class ImageFiles(Source):
    """Image files (listed and checked readable up front), decoded and preprocessed on demand."""

    def __init__(self, paths: Sequence[str], spec: PreprocessSpec):
        self.paths = list(paths)
        self.spec = spec
        self.sample_shape = tuple(spec.shape)

    def decode(self, i: int) -> np.ndarray:
        path = self.paths[i]
        image = read_image(path)
        if image is None:
            raise DataError(
                f"{path} can no longer be read as an image; it was readable when the data set was listed.",
                hint="Keep the data set unchanged while edgekit runs, or remove the file and run again.",
            )
        return self.spec.apply(image, input_order="bgr")


class ArraySource(Source):
    """Rows of an array (a memory map for ``.npz`` files): uint8 RGB images with a spec, or preprocessed floats."""

    def __init__(self, array: np.ndarray, spec: PreprocessSpec | None, origin: str = "", *, keep: Any = None):
        self.array = array
        self.spec = spec
        self.origin = origin
        self._keep = keep  # whatever must outlive the array (a temporary file's finaliser)
        if spec is not None:
            self.sample_shape = tuple(spec.shape)
        else:
            self.sample_shape = tuple(int(d) for d in array.shape[1:])

    def decode(self, i: int) -> np.ndarray:
        if self.spec is None:
            return np.asarray(self.array[i], dtype=np.float32)
        try:
            return self.spec.apply(np.asarray(self.array[i]), input_order="rgb")
        except DataError as e:
            raise DataError(f"{self.origin} image {i}: {e.message}", hint=e.hint) from None

    def batches(self, positions: np.ndarray, batch_size: int, *, prefetch: int = 2) -> Iterator[np.ndarray]:
        if self.spec is not None:
            yield from super().batches(positions, batch_size, prefetch=prefetch)
            return
        # Preprocessed floats: one fancy-indexed read per batch, reshaped like the spec.
        for start in range(0, len(positions), batch_size):
            chunk = self.array[np.asarray(positions[start : start + batch_size])]
            yield np.asarray(chunk, dtype=np.float32).reshape((len(chunk), *self.sample_shape))
