"""Run statistics: percentiles, the bounded reservoir, FPS and the summary shape."""
from __future__ import annotations

import time

import numpy as np
import pytest

from edgekit.runtime.stats import STAGES, RunStats, StageSamples, summarize


def test_summarize_matches_numpy_percentiles():
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, 3.0, size=1001)
    s = summarize(x)
    assert s["n"] == 1001
    for p in (50, 90, 99):
        assert s[f"p{p}"] == pytest.approx(np.percentile(x, p))
    assert s["min"] == pytest.approx(x.min()) and s["max"] == pytest.approx(x.max())
    assert s["mean"] == pytest.approx(x.mean())


def test_summarize_empty_is_zeros_not_nan():
    s = summarize([])
    assert s["n"] == 0 and all(v == 0 for k, v in s.items() if k != "n")


def test_reservoir_keeps_exact_count_mean_max_and_unbiased_percentiles():
    st = StageSamples(capacity=500, seed=1)
    values = np.concatenate([np.full(5000, 1.0), np.full(5000, 3.0)])  # a shift halfway through
    for v in values:
        st.add(float(v))
    s = st.summary()
    assert st.samples.size == 500  # memory stays bounded
    assert s["n"] == 10_000 and s["mean"] == pytest.approx(2.0) and s["max"] == 3.0
    # A reservoir keeps early and late samples alike: about half of each.
    share_late = float(np.mean(st.samples == 3.0))
    assert 0.4 < share_late < 0.6


def test_run_stats_summary_has_every_stage_and_counts():
    rs = RunStats()
    for i in range(10):
        rs.add_frame({"capture": 1.0, "preprocess": 2.0, "invoke": 3.0 + i, "postprocess": 0.5})
    rs.dropped, rs.skipped = 4, 2
    time.sleep(0.01)
    rs.stop()
    d = rs.to_dict()
    assert d["frames"] == 10 and d["dropped"] == 4 and d["skipped"] == 2
    assert set(d["latency_ms"]) == {*STAGES, "total"}
    assert d["latency_ms"]["invoke"]["p50"] == pytest.approx(7.5)
    assert d["latency_ms"]["total"]["min"] == pytest.approx(6.5)
    assert 0 < d["fps"] <= 10 / 0.01
    frozen = rs.elapsed_s
    time.sleep(0.01)
    assert rs.elapsed_s == frozen  # stop() freezes the clock
