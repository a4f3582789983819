"""Bench statistics against numpy on known data, and the run-length policy's validation."""
from __future__ import annotations

import numpy as np
import pytest

from edgekit.bench.measure import BenchConfig, parse_frame_size
from edgekit.bench.stats import LATENCY_KEYS, fps, latency_summary, median_summary, spread
from edgekit.errors import ConfigError


def test_percentiles_match_numpy_on_known_data():
    data = np.arange(1, 101, dtype=float)  # 1..100
    s = latency_summary(data)
    assert tuple(s) == LATENCY_KEYS
    assert s["n"] == 100 and s["min"] == 1.0 and s["max"] == 100.0
    assert s["p50"] == pytest.approx(50.5)
    assert s["p90"] == pytest.approx(90.1)
    assert s["p99"] == pytest.approx(99.01)
    assert s["mean"] == pytest.approx(50.5)
    assert s["std"] == pytest.approx(np.std(data))  # population std, as benchmark_model prints it


def test_percentiles_match_numpy_on_skewed_random_data():
    rng = np.random.default_rng(7)
    data = rng.lognormal(mean=1.0, sigma=0.6, size=1234)  # long right tail, like real latencies
    s = latency_summary(data.tolist())
    for p in (50, 90, 99):
        assert s[f"p{p}"] == pytest.approx(np.percentile(data, p))
    assert s["p50"] < s["mean"] < s["p90"]  # the tail pulls the mean above the median


def test_empty_and_single_samples():
    assert latency_summary([]) == {k: 0 if k == "n" else 0.0 for k in LATENCY_KEYS}
    one = latency_summary([3.25])
    assert one["n"] == 1 and one["p50"] == one["p99"] == one["min"] == one["max"] == 3.25 and one["std"] == 0.0


def test_spread_and_medians_of_repeats():
    assert spread([10.0]) is None
    assert spread([]) is None
    assert spread([10.0, 10.0, 10.0]) == 0.0
    assert spread([9.0, 10.0, 12.0]) == pytest.approx(0.3)  # (12 - 9) / 10
    reps = [latency_summary([1.0, 2.0, 3.0]), latency_summary([2.0, 3.0, 4.0]), latency_summary([10.0, 11.0, 12.0])]
    m = median_summary(reps)
    assert m["n"] == 9
    assert m["p50"] == 3.0  # median of 2, 3, 11: one slow repeat does not drag it
    assert m["max"] == 4.0


def test_fps():
    assert fps(100, 2.0) == 50.0
    assert fps(0, 1.0) == 0.0 and fps(10, 0.0) == 0.0


def test_config_defaults_follow_benchmark_model():
    c = BenchConfig()
    assert (c.runs, c.warmup, c.warmup_seconds, c.min_seconds, c.max_seconds) == (50, 1, 0.5, 1.0, 150.0)
    assert c.to_dict()["frame_size"] is None


@pytest.mark.parametrize(
    "kwargs, text",
    [
        ({"runs": 0}, "--runs"),
        ({"warmup": -1}, "--warmup"),
        ({"repeats": 0}, "--repeats"),
        ({"min_seconds": -1.0}, "--min-seconds"),
        ({"max_seconds": 0}, "--max-seconds"),
        ({"min_seconds": 10.0, "max_seconds": 5.0}, "--min-seconds"),
        ({"threads": 0}, "--threads"),
        ({"runs": True}, "--runs"),
        ({"frame_size": (640, 0)}, "--frame-size"),
    ],
)
def test_config_rejects_bad_values(kwargs, text):
    with pytest.raises(ConfigError, match=text):
        BenchConfig(**kwargs)


def test_frame_size_parsing():
    assert parse_frame_size("640x480") == (640, 480)
    assert parse_frame_size("1280X720") == (1280, 720)
    assert parse_frame_size(None) is None
    for bad in ("640", "x480", "640x", "-1x5", "axb", "0x10"):
        with pytest.raises(ConfigError, match="WIDTHxHEIGHT"):
            parse_frame_size(bad)
