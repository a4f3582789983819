"""Latency and throughput statistics for a run: per-stage percentiles, FPS, drops.

numpy only, so the benchmark side reuses it as is: :func:`summarize` turns any
list of millisecond samples into min/mean/p50/p90/p99/max, and
:class:`RunStats` collects a deploy run's per-frame stage times.

A stage keeps every sample up to ``capacity`` and then a uniform reservoir
sample, so a camera left running for days holds bounded memory while its
percentiles stay unbiased. Counts, means and maxima stay exact.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

STAGES: tuple[str, ...] = ("capture", "preprocess", "invoke", "postprocess")
PERCENTILES: tuple[int, ...] = (50, 90, 99)


def summarize(samples_ms: Sequence[float] | np.ndarray, percentiles: Iterable[int] = PERCENTILES) -> dict[str, float | int]:
    """min, mean, pNN and max of a set of millisecond samples.

    Returns:
        ``{"n", "mean", "min", "p50", "p90", "p99", "max"}`` (NaN-free: an empty
        input gives n=0 and zeros).

    Example::

        summarize([1.0, 2.0, 3.0])["p50"]  # 2.0
    """
    a = np.asarray(samples_ms, dtype=np.float64).ravel()
    pcts = tuple(percentiles)
    if a.size == 0:
        return {"n": 0, "mean": 0.0, "min": 0.0, **{f"p{p}": 0.0 for p in pcts}, "max": 0.0}
    values = np.percentile(a, pcts)  # linear interpolation, numpy's default
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "min": float(a.min()),
        **{f"p{p}": float(v) for p, v in zip(pcts, values)},
        "max": float(a.max()),
    }


class StageSamples:
    """Millisecond samples of one stage: exact up to ``capacity``, then a reservoir."""

    def __init__(self, capacity: int = 100_000, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._buf = np.empty(min(capacity, 1024), dtype=np.float64)
        self._kept = 0
        self.count = 0
        self.total = 0.0
        self.max = 0.0
        self._rng = random.Random(seed)

    def add(self, ms: float) -> None:
        self.count += 1
        self.total += ms
        self.max = max(self.max, ms)
        if self._kept < self.capacity:
            if self._kept == self._buf.size:
                self._buf = np.resize(self._buf, min(self.capacity, self._buf.size * 2))
            self._buf[self._kept] = ms
            self._kept += 1
            return
        # Algorithm R: every sample seen so far is kept with equal probability.
        j = self._rng.randrange(self.count)
        if j < self.capacity:
            self._buf[j] = ms

    @property
    def samples(self) -> np.ndarray:
        return self._buf[: self._kept]

    def summary(self) -> dict[str, float | int]:
        s = summarize(self.samples)
        s["n"] = self.count
        s["mean"] = self.total / self.count if self.count else 0.0
        s["max"] = self.max
        return s


@dataclass
class RunStats:
    """Everything the end-of-run summary reports.

    ``frames`` are frames that went through the model; ``dropped`` were
    discarded by a live source to stay current; ``skipped`` could not be
    decoded or preprocessed.
    """

    stages: dict[str, StageSamples] = field(default_factory=lambda: {s: StageSamples() for s in (*STAGES, "total")})
    frames: int = 0
    dropped: int = 0
    skipped: int = 0
    unread: int = 0  # frames a truncated file announced but did not hold
    paused_s: float = 0.0  # spent waiting to reconnect a live source: not part of the frame rate
    started: float = field(default_factory=time.perf_counter)
    ended: float | None = None

    def add_frame(self, timings_ms: dict[str, float]) -> None:
        """Record one processed frame's per-stage times (missing stages count as 0)."""
        self.frames += 1
        total = 0.0
        for stage in STAGES:
            ms = float(timings_ms.get(stage, 0.0))
            total += ms
            self.stages[stage].add(ms)
        self.stages["total"].add(total)

    def stop(self) -> None:
        if self.ended is None:
            self.ended = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        end = self.ended if self.ended is not None else time.perf_counter()
        return max(end - self.started, 0.0)

    @property
    def fps(self) -> float:
        elapsed = self.elapsed_s - self.paused_s
        return self.frames / elapsed if elapsed > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "unread": self.unread,
            "reconnect_wait_s": round(self.paused_s, 3),
            "elapsed_s": round(self.elapsed_s, 3),
            "fps": round(self.fps, 2),
            "latency_ms": {name: _rounded(s.summary()) for name, s in self.stages.items()},
        }


def _rounded(d: dict[str, float | int]) -> dict[str, float | int]:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in d.items()}
