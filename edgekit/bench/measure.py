"""The measurement loop, after TFLite's benchmark_model and MLPerf Mobile.

For one subject (an artifact opened by the runtime, or a peer) and each
repeat:

1. **init**: open it (what deploy pays at start-up), timed;
2. **first inference**, timed on its own: cold caches, lazy delegate work;
3. **warm-up**: ``warmup`` more frames and at least ``warmup_seconds``;
4. **measured runs**: at least ``runs`` frames *and* at least ``min_seconds``,
   stopping at ``max_seconds`` (benchmark_model's ``num_runs``, ``min_secs``,
   ``max_secs``).

A frame is one call of the per-frame path deploy uses
(:meth:`edgekit.runtime.pipeline.Predictor.predict`, or a whole
:meth:`~edgekit.runtime.pipeline.Predictor.run` step end to end), so the
numbers are what a deployment sees, with the invoke stage broken out for
comparison with benchmark_model. Timings are never thresholds here: this
module only measures.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

import numpy as np

from edgekit.bench import stats
from edgekit.errors import ConfigError, SourceError

# benchmark_model's defaults: num_runs=50, min_secs=1, max_secs=150,
# warmup_runs=1, warmup_min_secs=0.5.
DEFAULT_RUNS = 50
DEFAULT_WARMUP = 1
DEFAULT_WARMUP_SECONDS = 0.5
DEFAULT_MIN_SECONDS = 1.0
DEFAULT_MAX_SECONDS = 150.0
MAX_SAMPLES_KEPT = 2_000  # per row in the JSON (an even sub-sample, for plots); statistics use every sample


@dataclass(frozen=True)
class BenchProfile:
    """A named set of run lengths and the latency statistic that is its headline."""

    name: str
    runs: int  # minimum measured frames (queries) per repeat
    min_seconds: float
    max_seconds: float
    headline: str  # "p50" | "p90"
    about: str
    binding: bool = False  # True: runs and min_seconds are rules a run may not go below


# benchmark_model's defaults, and MLPerf Mobile's single-stream rules (a run
# is at least 1024 queries and at least 60 s; the 90th percentile latency is
# the result). Adding a profile is one row here.
PROFILES: dict[str, BenchProfile] = {
    "default": BenchProfile("default", DEFAULT_RUNS, DEFAULT_MIN_SECONDS, DEFAULT_MAX_SECONDS, "p50",
                            "TFLite benchmark_model's defaults: >= 50 frames and >= 1 s per repeat"),
    "mlperf": BenchProfile("mlperf", 1024, 60.0, 3600.0, "p90",
                           "MLPerf single-stream rules: >= 1024 queries and >= 60 s per repeat; p90 latency is the result",
                           binding=True),
}


@dataclass(frozen=True)
class BenchConfig:
    """How long and how often to measure; validated on construction.

    Example::

        BenchConfig(runs=200, min_seconds=5, repeats=5)
    """

    runs: int = DEFAULT_RUNS
    warmup: int = DEFAULT_WARMUP
    warmup_seconds: float = DEFAULT_WARMUP_SECONDS
    min_seconds: float = DEFAULT_MIN_SECONDS
    max_seconds: float = DEFAULT_MAX_SECONDS
    repeats: int = 1
    threads: int | None = None  # None: the runtime's default (the device profile's, else all usable cores)
    frame_size: tuple[int, int] | None = None  # (width, height) of the synthetic frame; None: the model input
    seed: int = 0
    profile: str = "default"  # a PROFILES name: which rules the run lengths follow, and the headline statistic

    def __post_init__(self) -> None:
        def whole(name: str, value: Any, low: int) -> None:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= {low}; received {value!r}.")

        def seconds(name: str, value: Any) -> None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value < float("inf")):
                raise ConfigError(f"--{name.replace('_', '-')} must be a number of seconds >= 0; received {value!r}.")

        whole("runs", self.runs, 1)
        whole("warmup", self.warmup, 0)
        whole("repeats", self.repeats, 1)
        for name in ("warmup_seconds", "min_seconds", "max_seconds"):
            seconds(name, getattr(self, name))
        if self.max_seconds <= 0:
            raise ConfigError(f"--max-seconds must be > 0; received {self.max_seconds!r}.")
        if self.min_seconds > self.max_seconds:
            raise ConfigError(
                f"--min-seconds ({self.min_seconds}) is more than --max-seconds ({self.max_seconds}); "
                "expected min <= max.",
            )
        if self.profile not in PROFILES:
            raise ConfigError(f"unknown bench profile {self.profile!r}; expected one of: {', '.join(PROFILES)}.")
        rules = PROFILES[self.profile]
        if rules.binding and (self.runs < rules.runs or self.min_seconds < rules.min_seconds):
            raise ConfigError(
                f"--profile {self.profile} needs >= {rules.runs} runs and >= {rules.min_seconds:g} s per repeat; "
                f"received --runs {self.runs} and --min-seconds {self.min_seconds:g}.",
                hint=f"Drop --runs/--min-seconds (the profile sets them) or raise them; without --profile {self.profile} any length goes.",
            )
        if self.threads is not None:
            whole("threads", self.threads, 1)
        if self.frame_size is not None:
            fs = self.frame_size
            if not isinstance(fs, (tuple, list)) or len(fs) != 2 or not all(isinstance(v, int) and v > 0 for v in fs):
                raise ConfigError(f"--frame-size must be WIDTHxHEIGHT with positive integers; received {fs!r}.")
            object.__setattr__(self, "frame_size", (int(fs[0]), int(fs[1])))

    @classmethod
    def for_profile(cls, profile: str = "default", **given: Any) -> "BenchConfig":
        """A config with ``profile``'s run lengths, then ``given`` (None values ignored) on top.

        Raises:
            ConfigError: unknown profile, or ``given`` run lengths below the profile's rules.

        Example::

            BenchConfig.for_profile("mlperf", repeats=3)   # >= 1024 queries, >= 60 s, 3 repeats
        """
        if profile not in PROFILES:
            raise ConfigError(f"unknown bench profile {profile!r}; expected one of: {', '.join(PROFILES)}.")
        rules = PROFILES[profile]
        base = {"runs": rules.runs, "min_seconds": rules.min_seconds, "max_seconds": rules.max_seconds}
        return cls(**{**base, **{k: v for k, v in given.items() if v is not None}, "profile": profile})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["frame_size"] = list(self.frame_size) if self.frame_size else None
        del d["seed"]
        return d


def parse_frame_size(text: str | None) -> tuple[int, int] | None:
    """``"640x480"`` -> (640, 480).

    Raises:
        ConfigError: not WIDTHxHEIGHT.
    """
    if text is None:
        return None
    w, sep, h = text.lower().partition("x")
    if not sep or not w.strip().isdigit() or not h.strip().isdigit() or int(w) < 1 or int(h) < 1:
        raise ConfigError(f"--frame-size must be WIDTHxHEIGHT, e.g. 640x480; received {text!r}.")
    from edgekit.limits import check_pixels

    check_pixels(int(w), int(h), what=f"--frame-size {text}")
    return int(w), int(h)


# ------------------------------------------------------------------- memory


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float | None:
    """This process's resident memory now, in MiB."""
    kb = _status_kb("VmRSS")
    if kb is not None:
        return kb / 1024.0
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except Exception:  # noqa: BLE001 - psutil missing: no reading
        return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux: ``5 > /proc/self/clear_refs``); False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float | None:
    """Peak resident memory since the last reset (else since the process started), in MiB."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024.0
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024.0  # bytes on macOS, KiB on Linux
    except Exception:  # noqa: BLE001
        return None


# ------------------------------------------------------------------ frames

# One timed frame: (total milliseconds, per-stage milliseconds).
Step = Callable[[], "tuple[float, dict[str, float]]"]


def synthetic_frame(spec: Any, frame_size: tuple[int, int] | None, seed: int = 0) -> np.ndarray:
    """A fixed random BGR uint8 frame, as a camera would hand it over.

    At the model's input size unless ``frame_size`` (width, height) is given,
    in which case the per-frame path includes the resize a camera frame needs.
    Content does not change a CNN's latency; a fixed seed keeps runs identical.
    """
    h, w = spec.input_size if frame_size is None else (frame_size[1], frame_size[0])
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def frame_step(predictor: Any, frame: np.ndarray) -> Step:
    """Time one :meth:`Predictor.predict` call on ``frame``: deploy's per-frame path minus capture."""
    perf = time.perf_counter

    def step() -> tuple[float, dict[str, float]]:
        t0 = perf()
        prediction = predictor.predict(frame)
        return (perf() - t0) * 1e3, prediction.timings

    return step


def source_step(predictor: Any, open_source: Callable[[], Any]) -> Step:
    """Time whole deploy steps over a source (capture, preprocess, invoke, postprocess).

    A finite source (images, a video file) is opened again when it ends, so
    ``runs`` and ``min_seconds`` can be met by a short clip.

    Raises (from the step):
        SourceError: the source gives no frames at all.
    """
    state: dict[str, Any] = {"it": None, "frames": 0}

    def fresh() -> Iterator[Any]:
        return iter(predictor.run(open_source()))

    def step() -> tuple[float, dict[str, float]]:
        for attempt in range(2):
            if state["it"] is None:
                state["it"] = fresh()
            try:
                result = next(state["it"])
            except StopIteration:
                state["it"] = None
                if attempt == 1 or state["frames"] == 0:
                    raise SourceError(
                        "the source produced no frames that could be classified (all unreadable, or empty).",
                        hint="Check it with 'edgekit deploy BUNDLE --source SRC'.",
                    ) from None
                continue
            state["frames"] += 1
            timings = result.timings
            return float(sum(timings.values())), timings
        raise AssertionError("unreachable")

    def close() -> None:
        it = state["it"]
        if it is not None and hasattr(it, "close"):
            it.close()  # closes the source (Predictor.run's finally)

    step.close = close  # type: ignore[attr-defined]
    return step


# ------------------------------------------------------------------ the loop


@dataclass
class Repeat:
    """One repeat's numbers."""

    init_ms: float
    first_ms: float
    samples_ms: np.ndarray
    stages_ms: dict[str, np.ndarray]
    seconds: float
    rss_before_mb: float | None
    rss_peak_mb: float | None
    plan: Any  # what the runtime decided (edgekit.runtime.accelerators.Plan)

    @property
    def fps(self) -> float:
        return stats.fps(len(self.samples_ms), self.seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "init_ms": round(self.init_ms, 4),
            "first_ms": round(self.first_ms, 4),
            "latency_ms": stats.rounded(stats.latency_summary(self.samples_ms)),
            "fps": round(self.fps, 3),
            "rss_peak_mb": None if self.rss_peak_mb is None else round(self.rss_peak_mb, 2),
        }


def measure_once(open_predictor: Callable[[], Any], make_step: Callable[[Any], Step], config: BenchConfig) -> Repeat:
    """Open, time the first frame, warm up, then time frames until runs and min_seconds are met.

    Args:
        open_predictor: opens the subject; returns a Predictor-like object
            (``plan``, ``close()``); its time is ``init_ms``.
        make_step: builds the timed frame function for that predictor.
        config: the run lengths.
    """
    perf = time.perf_counter
    reset_peak_rss()
    before = rss_mb()
    t0 = perf()
    predictor = open_predictor()
    init_ms = (perf() - t0) * 1e3
    step = make_step(predictor)
    try:
        first_ms, _ = step()
        started = perf()
        done = 0
        while done < config.warmup or perf() - started < config.warmup_seconds:
            if perf() - started >= config.max_seconds:
                break
            step()
            done += 1
        totals: list[float] = []
        stages: dict[str, list[float]] = {}
        started = perf()
        elapsed = 0.0
        while len(totals) < config.runs or elapsed < config.min_seconds:
            total, timings = step()
            totals.append(total)
            for name, ms in timings.items():
                stages.setdefault(name, []).append(ms)
            elapsed = perf() - started
            if elapsed >= config.max_seconds:
                break
        peak = peak_rss_mb()
        return Repeat(
            init_ms=init_ms,
            first_ms=first_ms,
            samples_ms=np.asarray(totals, dtype=np.float64),
            stages_ms={k: np.asarray(v, dtype=np.float64) for k, v in stages.items()},
            seconds=elapsed,
            rss_before_mb=before,
            rss_peak_mb=peak,
            plan=getattr(predictor, "plan", None),
        )
    finally:
        close = getattr(step, "close", None)
        if close is not None:
            close()
        predictor.close()


def summarize_repeats(repeats: list[Repeat]) -> dict[str, Any]:
    """The row numbers: medians over repeats, spread of p50/p90, all stages, memory."""
    summaries = [stats.latency_summary(r.samples_ms) for r in repeats]
    stage_names = list(dict.fromkeys(name for r in repeats for name in r.stages_ms))
    stages_ms = {
        name: stats.rounded(stats.median_summary([stats.latency_summary(r.stages_ms[name]) for r in repeats if name in r.stages_ms]))
        for name in stage_names
    }
    peaks = [r.rss_peak_mb for r in repeats if r.rss_peak_mb is not None]
    growth = [r.rss_peak_mb - r.rss_before_mb for r in repeats if r.rss_peak_mb is not None and r.rss_before_mb is not None]
    last = repeats[-1].samples_ms
    step = max(1, math.ceil(len(last) / MAX_SAMPLES_KEPT))
    return {
        "init_ms": round(stats.median(r.init_ms for r in repeats), 4),
        "first_ms": round(stats.median(r.first_ms for r in repeats), 4),
        "latency_ms": stats.rounded(stats.median_summary(summaries)),
        "stages_ms": stages_ms,
        "fps": round(stats.median(r.fps for r in repeats), 3),
        "rss_peak_mb": round(max(peaks), 2) if peaks else None,
        "rss_increase_mb": round(max(max(growth), 0.0), 2) if growth else None,
        "repeats": [r.to_dict() for r in repeats],
        "spread": {
            "p50": _round_or_none(stats.spread(float(s["p50"]) for s in summaries)),
            "p90": _round_or_none(stats.spread(float(s["p90"]) for s in summaries)),
        },
        # Every k-th sample: the distribution survives, a baseline file stays small.
        "samples_ms": [round(float(v), 4) for v in last[::step]],
    }


def _round_or_none(v: float | None) -> float | None:
    return None if v is None else round(v, 4)

