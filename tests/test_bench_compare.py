"""--compare's arithmetic: ratios against fp32, the accuracy budget, the recommendation per target."""
from __future__ import annotations

import pytest

from edgekit.bench.compare import compare_rows, top1
from test_bench_gate import artifact


def row(name: str, p50: float, bytes_: int, acc: float | None, kind: str = "artifact") -> dict:
    r = artifact(name, [p50 / 1.05], bytes_=bytes_, top1=acc)  # the helper's repeat p50 is 1.05 x its argument
    r["kind"] = kind
    return r


ROWS = [
    row("cpu:fp32", 20.0, 4000, 0.950),
    row("cpu:int8", 10.0, 1000, 0.945),
    row("cpu:int8_pruned", 8.0, 700, 0.920),
    row("gpu:fp16", 15.0, 2000, 0.950),
]


def test_ratios_against_fp32():
    c = compare_rows(ROWS, [])
    assert c["reference"] == "cpu:fp32"
    by = {r["name"]: r for r in c["rows"]}
    assert by["cpu:fp32"]["speedup_p50"] == 1.0
    assert by["cpu:int8"]["speedup_p50"] == pytest.approx(2.0)
    assert by["cpu:int8"]["size_ratio"] == pytest.approx(4.0)
    assert by["cpu:int8_pruned"]["accuracy_delta_pts"] == pytest.approx(-3.0)


def test_recommendation_is_the_fastest_within_budget():
    c = compare_rows(ROWS, [{"variant": "float", "top1": 0.950}], accuracy_budget=1.0)
    assert c["reference_accuracy"] == 0.950
    assert c["recommended"] == {"cpu": "cpu:int8", "gpu": "gpu:fp16"}  # pruned is faster but 3 pts worse
    wide = compare_rows(ROWS, [{"variant": "float", "top1": 0.950}], accuracy_budget=5.0)
    assert wide["recommended"]["cpu"] == "cpu:int8_pruned"


def test_nothing_within_budget_recommends_nothing_and_says_so():
    rows = [row("cpu:fp32", 20.0, 4000, 0.90), row("cpu:int8", 10.0, 1000, 0.80)]
    c = compare_rows(rows, [{"variant": "float", "top1": 0.99}], accuracy_budget=1.0)
    assert c["recommended"] == {}
    assert any("nothing recommended" in n for n in c["notes"])


def test_without_accuracy_the_fastest_is_recommended_with_a_note():
    rows = [row("cpu:fp32", 20.0, 4000, None), row("cpu:int8", 10.0, 1000, None)]
    c = compare_rows(rows, [])
    assert c["recommended"] == {"cpu": "cpu:int8"}
    assert c["reference_accuracy"] is None
    assert any("no accuracy recorded" in n for n in c["notes"])


def test_without_fp32_there_are_no_ratios_but_peers_can_stand_in():
    rows = [row("cpu:int8", 10.0, 1000, 0.95)]
    c = compare_rows(rows, [])
    assert c["reference"] is None and c["rows"][0]["speedup_p50"] is None
    assert any("reference" in n for n in c["notes"])
    peer = row("peer:tflite-default", 25.0, 4100, None, kind="peer")
    peer["target"] = None
    c = compare_rows(rows + [peer], [])
    assert c["reference"] == "peer:tflite-default"
    assert c["recommended"] == {"cpu": "cpu:int8"}  # peers are compared, never recommended


def test_top1_reads_the_shapes_the_build_side_writes():
    assert top1({"top1": 0.9, "n": 10}) == 0.9
    assert top1({"accuracy": 0.8}) == 0.8
    assert top1(0.7) == 0.7
    assert top1(None) is None and top1({"macro_f1": 0.5}) is None and top1(True) is None


def test_a_blocked_build_side_is_named_before_the_missing_model(monkeypatch, tmp_path):
    """quickstart's bench runs where sys.modules['tensorflow'] is None: the peers must say TensorFlow, not --model."""
    import sys

    from edgekit.bench.peers import PEERS, _missing, peer_subjects

    monkeypatch.setitem(sys.modules, "tensorflow", None)
    assert _missing("tensorflow", "json") == ["tensorflow"]
    subjects = peer_subjects(None, None, backend=None, threads=1, workdir=tmp_path)
    assert len(subjects) == len(PEERS)
    assert all(s.open is None and "TensorFlow" in s.reason for s in subjects), [s.reason for s in subjects]

