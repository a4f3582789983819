"""Bench profiles (default / MLPerf single-stream) and the honest labels of the report."""
from __future__ import annotations

import copy

import pytest

from edgekit.bench.measure import PROFILES, BenchConfig
from edgekit.bench.report import memory_note, mlperf_rows
from edgekit.bench.schema import validate, validation_errors
from edgekit.errors import ConfigError
from test_bench_gate import artifact, result


def test_mlperf_profile_follows_the_single_stream_rules():
    c = BenchConfig.for_profile("mlperf")
    assert (c.runs, c.min_seconds, c.profile) == (1024, 60.0, "mlperf")
    assert c.max_seconds >= c.min_seconds and PROFILES["mlperf"].headline == "p90"
    assert c.to_dict()["profile"] == "mlperf"
    # More is allowed; less is not an MLPerf run.
    assert BenchConfig.for_profile("mlperf", runs=5000, repeats=3).runs == 5000
    with pytest.raises(ConfigError, match=r"--profile mlperf needs >= 1024 runs and >= 60 s per repeat; received --runs 100"):
        BenchConfig.for_profile("mlperf", runs=100)
    with pytest.raises(ConfigError, match="min-seconds 10"):
        BenchConfig(runs=2000, min_seconds=10, profile="mlperf")


def test_default_profile_is_benchmark_models_and_binds_nothing():
    c = BenchConfig.for_profile("default", runs=None, min_seconds=0)
    assert (c.runs, c.min_seconds, c.profile) == (50, 0, "default")
    assert BenchConfig() == BenchConfig.for_profile()
    with pytest.raises(ConfigError, match="unknown bench profile 'fast'; expected one of: default, mlperf"):
        BenchConfig.for_profile("fast")


def test_results_record_the_profile_and_old_results_still_read():
    doc = result(artifact("cpu:int8", [10.0]))
    assert "profile" not in doc["config"]  # written before profiles: still valid
    doc["config"]["profile"] = "mlperf"
    assert validation_errors(doc) == []
    doc["config"]["profile"] = "quick"
    assert any("profile" in e for e in validation_errors(doc))


def _with_queries(row: dict, n: int, fps: float) -> dict:
    row = copy.deepcopy(row)
    for rep in row["repeats"]:
        rep["latency_ms"]["n"] = n
        rep["fps"] = fps
    return row


def test_mlperf_table_says_which_rows_meet_the_rules():
    ok = _with_queries(artifact("cpu:int8", [10.0, 10.0]), 2048, 20.0)  # 102.4 s each
    few = _with_queries(artifact("cpu:fp32", [20.0, 20.0]), 600, 5.0)  # 120 s but 600 queries
    short = _with_queries(artifact("gpu:fp16", [1.0, 1.0]), 5000, 100.0)  # 50 s
    header, body = mlperf_rows(validate(result(ok, few, short)))
    assert header == ["variant", "queries", "seconds", "p90 ms (result)", "valid"]
    by_name = {row[0]: row for row in body}
    assert by_name["cpu:int8"][1:3] == ["2,048", "102.4"] and by_name["cpu:int8"][4] == "yes"
    assert by_name["cpu:fp32"][4].startswith("no") and by_name["gpu:fp16"][4].startswith("no")
    assert float(by_name["cpu:int8"][3]) == pytest.approx(ok["latency_ms"]["p90"], abs=0.05)


def test_memory_note_says_what_the_rss_column_measures():
    doc = result(artifact("cpu:int8", [10.0]))
    assert "includes everything else the process held" in memory_note(doc)  # an old result: unknown
    doc["environment_after"]["tensorflow_loaded"] = True
    note = memory_note(validate(doc))
    assert "TensorFlow was loaded in it" in note and "cpu:int8 +5 MB" in note
    doc["environment_after"]["tensorflow_loaded"] = False
    assert "TensorFlow was not loaded" in memory_note(validate(doc))
