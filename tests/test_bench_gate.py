"""The regression gate: regressions caught, budgets respected, noise recognised, odd inputs refused."""
from __future__ import annotations

import pytest

from edgekit.bench.gate import SpreadTooWideError, gate, parse_threshold
from edgekit.bench.schema import SCHEMA_ID, SCHEMA_VERSION, validate
from edgekit.bench.stats import latency_summary, median_summary, spread
from edgekit.errors import ConfigError, GateError

ENV = {
    "cpu_model": "Cortex-A72", "cpu_cores_logical": 4, "cpu_cores_physical": 4, "cpu_cores_usable": 4,
    "cpu_freq_mhz": 1800.0, "governor": "performance", "temperature_c": 51.0, "load_average": [0.1, 0.1, 0.1],
    "memory_total_mb": 3792.0, "device_model": "Raspberry Pi 4 Model B Rev 1.4", "os": "Linux", "kernel": "6.1",
    "machine": "aarch64", "python": "3.11.2", "edgekit": "0.1.0", "numpy": "2.4.0", "opencv": None,
    "backend": "ai_edge_litert", "backend_version": "2.3.0",
}


def artifact(name: str, p50s: list[float], *, bytes_: int = 1000, top1: float | None = 0.95) -> dict:
    """A result row whose repeats have the given p50s (each repeat: p50 ± 10 %)."""
    target, variant = name.split(":")
    summaries = [latency_summary([p * 0.9, p, p * 1.1, p * 1.2]) for p in p50s]
    return {
        "name": name, "kind": "artifact", "status": "ok", "reason": None, "target": target, "variant": variant,
        "file": f"{target}_{variant}.tflite", "bytes": bytes_, "accuracy": None if top1 is None else {"top1": top1},
        "requested": "cpu", "accelerator": "cpu", "via": "CPU, 4 threads", "threads": 4, "backend": "ai_edge_litert 2.3.0",
        "fallback": None, "init_ms": 3.0, "integrity_ms": 0.1, "first_ms": 9.0, "latency_ms": median_summary(summaries),
        "stages_ms": {}, "fps": 100.0, "rss_peak_mb": 50.0, "rss_increase_mb": 5.0,
        "repeats": [{"init_ms": 3.0, "first_ms": 9.0, "latency_ms": s, "fps": 100.0, "rss_peak_mb": 50.0} for s in summaries],
        "spread": {"p50": spread(s["p50"] for s in summaries), "p90": spread(s["p90"] for s in summaries)},
        "samples_ms": [], "notes": [],
    }


def result(*rows: dict, mode: str = "frames", env: dict | None = None) -> dict:
    doc = {
        "schema": SCHEMA_ID, "schema_version": SCHEMA_VERSION, "created": "2025-01-01T00:00:00+00:00",
        "edgekit_version": "0.1.0", "bundle": {"path": "bundle", "source_model": {}, "created": None}, "mode": mode,
        "config": {"runs": 50, "warmup": 1, "warmup_seconds": 0.5, "min_seconds": 1.0, "max_seconds": 150.0, "repeats": 3,
                   "threads": None, "frame_size": None, "source": None, "targets": None, "compare": False, "accuracy_budget": 1.0},
        "environment": dict(env or ENV), "environment_after": {"temperature_c": None, "cpu_freq_mhz": None, "load_average": None},
        "results": list(rows), "comparison": None, "gate": None,
    }
    return validate(doc)  # the helper itself must build schema-valid results


BASE = result(artifact("cpu:int8", [10.0, 10.1, 9.9]), artifact("cpu:fp32", [20.0, 20.2, 19.8], bytes_=4000))


def statuses(g) -> dict:
    return {(r.name, r.metric): r.status for r in g.rows}


def test_within_budget_passes():
    cur = result(artifact("cpu:int8", [10.5, 10.4, 10.6]), artifact("cpu:fp32", [20.5, 20.4, 20.6], bytes_=4000))
    g = gate(cur, BASE, 0.10)
    assert g.outcome == "pass" and g.exit_code == 0
    assert statuses(g)[("cpu:int8", "latency_p50_ms")] == "pass"
    assert {r.metric for r in g.rows} == {"latency_p50_ms", "latency_p90_ms", "bytes", "top1"}
    g.raise_for_outcome()  # no error


def test_latency_regression_fails_with_exit_1_and_names_the_row():
    cur = result(artifact("cpu:int8", [12.5, 12.4, 12.6]), artifact("cpu:fp32", [20.0, 20.1, 19.9], bytes_=4000))
    g = gate(cur, BASE, 0.10, baseline_name="old.json")
    assert g.outcome == "regressed" and g.exit_code == 1
    assert statuses(g)[("cpu:int8", "latency_p50_ms")] == "regressed"
    assert statuses(g)[("cpu:fp32", "latency_p50_ms")] == "pass"
    assert [r.name for r in g.failing] == ["cpu:int8", "cpu:int8"]  # p50 and p90
    with pytest.raises(GateError) as e:
        g.raise_for_outcome()
    assert e.value.exit_code == 1 and not isinstance(e.value, SpreadTooWideError)
    assert "cpu:int8 latency_p50_ms" in str(e.value) and "+25.0%" in str(e.value) and "old.json" in str(e.value)


def test_noisy_repeats_are_too_wide_to_judge_with_exit_3():
    cur = result(artifact("cpu:int8", [10.0, 13.0, 9.0]), artifact("cpu:fp32", [20.0, 20.1, 19.9], bytes_=4000))
    g = gate(cur, BASE, 0.10)
    row = next(r for r in g.rows if (r.name, r.metric) == ("cpu:int8", "latency_p50_ms"))
    assert row.spread == pytest.approx(0.4) and row.status == "too_noisy"
    assert g.outcome == "too_noisy" and g.exit_code == 3
    with pytest.raises(SpreadTooWideError, match="spread too wide to judge") as e:
        g.raise_for_outcome()
    assert e.value.exit_code == 3 and isinstance(e.value, GateError)


def test_a_change_far_beyond_the_noise_is_still_a_regression():
    cur = result(artifact("cpu:int8", [30.0, 39.0, 27.0]), artifact("cpu:fp32", [20.0, 20.1, 19.9], bytes_=4000))
    g = gate(cur, BASE, 0.10)
    assert statuses(g)[("cpu:int8", "latency_p50_ms")] == "regressed"  # +200 % vs a 40 % spread
    assert g.outcome == "regressed"


def test_deterministic_regressions_win_over_noise():
    cur = result(artifact("cpu:int8", [10.0, 13.0, 9.0], bytes_=1300), artifact("cpu:fp32", [20.0, 20.1, 19.9], bytes_=4000))
    g = gate(cur, BASE, 0.10)
    assert statuses(g)[("cpu:int8", "bytes")] == "regressed"
    assert statuses(g)[("cpu:int8", "latency_p50_ms")] == "too_noisy"
    assert g.outcome == "regressed" and g.exit_code == 1


def test_accuracy_drop_regresses_and_improvements_are_marked():
    cur = result(artifact("cpu:int8", [7.0, 7.1, 6.9], top1=0.80), artifact("cpu:fp32", [20.0, 20.1, 19.9], bytes_=4000))
    g = gate(cur, BASE, 0.10)
    assert statuses(g)[("cpu:int8", "top1")] == "regressed"  # 0.95 -> 0.80 is -15.8 %
    assert statuses(g)[("cpu:int8", "latency_p50_ms")] == "improved"


def test_exact_threshold_is_within_budget():
    cur = result(artifact("cpu:int8", [11.0, 11.11, 10.89]), artifact("cpu:fp32", [20.0, 20.2, 19.8], bytes_=4400))
    g = gate(cur, BASE, 0.10)
    assert statuses(g)[("cpu:fp32", "bytes")] == "pass"  # +10.0 % exactly


def test_missing_artifacts_and_no_overlap():
    cur = result(artifact("cpu:int8", [10.0, 10.1, 9.9]))
    g = gate(cur, BASE, 0.10)
    assert statuses(g)[("cpu:fp32", "latency_p50_ms")] == "not_measured"
    assert g.outcome == "pass"
    with pytest.raises(GateError, match="nothing to compare"):
        gate(result(artifact("gpu:fp16", [5.0, 5.0, 5.0])), BASE, 0.10)


def test_mode_mismatch_is_refused_and_environment_changes_warned():
    with pytest.raises(ConfigError, match="not comparable"):
        gate(result(artifact("cpu:int8", [10.0, 10.0, 10.0]), mode="end_to_end"), BASE, 0.10)
    other = dict(ENV, cpu_model="AMD EPYC", device_model=None)
    g = gate(result(artifact("cpu:int8", [10.0, 10.1, 9.9]), env=other), BASE, 0.10)
    assert any("cpu_model differs" in w for w in g.warnings)


def test_single_runs_warn_that_noise_was_not_measured():
    one = result(artifact("cpu:int8", [10.0]))
    g = gate(result(artifact("cpu:int8", [10.2])), one, 0.10)
    assert g.outcome == "pass" and any("noise was not measured" in w for w in g.warnings)


def test_gate_result_is_schema_valid_inside_a_result():
    cur = result(artifact("cpu:int8", [12.5, 12.4, 12.6]))
    cur["gate"] = gate(cur, BASE, 0.10).to_dict()
    validate(cur)
    assert cur["gate"]["exit_code"] == 1


@pytest.mark.parametrize("text, value", [("10%", 0.10), ("10", 0.10), ("7.5 %", 0.075), ("0%", 0.0), (" 25% ", 0.25)])
def test_parse_threshold(text, value):
    assert parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["ten", "-5%", "%", "", "1000%", "nan", "inf"])
def test_parse_threshold_rejects(text):
    with pytest.raises(ConfigError, match="percentage"):
        parse_threshold(text)
