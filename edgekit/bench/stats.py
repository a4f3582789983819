"""Latency statistics for benchmarks: the runtime's percentiles plus std, FPS and spread.

Builds on :func:`edgekit.runtime.stats.summarize` (the numbers ``edgekit
deploy`` prints), so a bench and a deploy summary agree on what "p90" means:
numpy's linear interpolation between the two nearest ranks.

Repeated runs are reduced by their median, and their disagreement is the
*spread*: ``(max - min) / median`` of one statistic across repeats. The gate
refuses to judge a change that is smaller than the spread.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from edgekit.runtime.stats import summarize

# The statistics every latency summary carries, in display order.
LATENCY_KEYS: tuple[str, ...] = ("n", "min", "mean", "std", "p50", "p90", "p99", "max")


def latency_summary(samples_ms: Sequence[float] | np.ndarray) -> dict[str, float | int]:
    """min, mean, std, p50, p90, p99 and max of millisecond samples.

    ``std`` is the population standard deviation (``ddof=0``), as TFLite's
    benchmark_model prints it.

    Returns:
        A dict with exactly :data:`LATENCY_KEYS`; all zeros for no samples.

    Example::

        latency_summary([1.0, 2.0, 3.0, 4.0])["p50"]  # 2.5
    """
    a = np.asarray(samples_ms, dtype=np.float64).ravel()
    base = summarize(a)
    out: dict[str, float | int] = {k: base[k] for k in ("n", "min", "mean", "p50", "p90", "p99", "max")}
    out["std"] = float(a.std()) if a.size else 0.0
    return {k: out[k] for k in LATENCY_KEYS}


def fps(frames: int, seconds: float) -> float:
    """Frames per second; 0.0 when nothing ran."""
    return frames / seconds if seconds > 0 and frames > 0 else 0.0


def median(values: Iterable[float]) -> float:
    a = np.asarray(list(values), dtype=np.float64)
    return float(np.median(a)) if a.size else 0.0


def spread(values: Iterable[float]) -> float | None:
    """Relative spread of repeated measurements: ``(max - min) / median``.

    Returns:
        None for fewer than two values (one run says nothing about noise).

    Example::

        spread([10.0, 11.0, 10.5])  # 0.0952...
    """
    a = np.asarray(list(values), dtype=np.float64)
    if a.size < 2:
        return None
    mid = float(np.median(a))
    if mid <= 0:
        return 0.0 if float(a.max() - a.min()) == 0 else float("inf")
    return float((a.max() - a.min()) / mid)


def median_summary(summaries: Sequence[dict[str, float | int]]) -> dict[str, float | int]:
    """Reduce one latency summary per repeat to their per-statistic median.

    ``n`` is the total number of samples over all repeats.
    """
    if not summaries:
        return latency_summary([])
    out: dict[str, float | int] = {}
    for key in LATENCY_KEYS:
        if key == "n":
            out[key] = int(sum(int(s["n"]) for s in summaries))
        else:
            out[key] = median(float(s[key]) for s in summaries)
    return out


def rounded(d: dict[str, float | int], digits: int = 4) -> dict[str, float | int]:
    """Floats rounded for JSON (microsecond-and-below noise is not information)."""
    return {k: (round(v, digits) if isinstance(v, float) else v) for k, v in d.items()}
